// INT8 compute: u8 activations (with a zero point) × s8 weights in 1 x 4 blocks, int32 sums, one
// dequantization per output. Written once, compiled per instruction route (spmm_q8_<route>.cpp).
//
// Included by a route's translation unit inside its namespace (q8_<route>), after the anonymous-namespace
// `Simd` (FP32 vectors) and `SimdI` (int32 lanes) of its width (simd_<isa>.inl) and a `Route` struct that
// holds all that differs between routes:
//   static constexpr int kLevels (largest activation value: 255, or 127 where the route's dot product
//   would saturate on 8 bits); dot4(acc, a, w) = acc + per int32 lane the sum of the 4 products u8(a) x s8(w).
// The kernel goes into the same anonymous namespace (an AVX-512 copy of an inline function must never be
// picked by the linker for a baseline caller; see spmm_types.hpp), followed by the route's entry points
// (spmm_types.hpp, q8_<route>).
//
// The tile layout: xq[k / 4][token] holds inputs 4q .. 4q + 3 of one token, one byte each, in one 32-bit
// lane, so one loaded vector and one broadcast 4-byte weight block feed 4 multiply-adds per token.
// Quantization is per token (its own min / max, so results do not depend on the tile width or the thread
// count) or static (one scale and zero point from a calibrated FakeQuantize).

namespace {

#include "spmm_kernel.inl"

// One activation: clamp(rint(x * inv) + zero, 0, kLevels), as the vector code computes it (the float is
// clamped before the conversion, NaN to the low end, as max_ps / min_ps do).
inline uint32_t quantize_one(float x, float inv, int32_t zero) {
    float v = x * inv;
    v = v > -1024.0f ? v : -1024.0f;
    v = v < 1024.0f ? v : 1024.0f;
    int32_t q = int32_t(__builtin_rintf(v)) + zero;
    q = q < 0 ? 0 : (q > Route::kLevels ? Route::kLevels : q);
    return uint32_t(q);
}

// Input i of a row as the op quantizes it: times act_multiplier[i] where the layer has one (static INT8
// compute with SmoothQuant's factors folded), one rounding, the same in the vector code.
inline float scaled_input(const SpmmProblem& p, const float* row, int64_t i) {
    return p.act_multiplier != nullptr ? row[i] * p.act_multiplier[i] : row[i];
}
inline typename Simd::V scaled_inputs(const SpmmProblem& p, const float* row, int64_t i) {
    return p.act_multiplier != nullptr ? Simd::mul(Simd::load(row + i), Simd::load(p.act_multiplier + i))
                                       : Simd::load(row + i);
}

// Simd::L activations (the values in `v`) as quantize_one computes each, in int32 lanes.
inline typename SimdI::I quantize_lanes(typename Simd::V v, typename Simd::V inv, typename SimdI::I zero) {
    v = Simd::mul(v, inv);
    v = Simd::min(Simd::max(v, Simd::set1(-1024.0f)), Simd::set1(1024.0f));
    const typename SimdI::I q = SimdI::add(SimdI::round(v), zero);
    return SimdI::min(SimdI::max(q, SimdI::zero()), SimdI::set1(Route::kLevels));
}

// A token's step and zero point from its range (0 always included, so zero is exact): step =
// (hi - lo) / kLevels, zero = rint(-lo / step); 1 and 0 for an all-zero (or non-finite) token.
inline void token_range_params(float lo, float hi, float* step, int32_t* zero) {
    lo = lo < 0.0f ? lo : 0.0f;
    hi = hi > 0.0f ? hi : 0.0f;
    float s = (hi - lo) / float(Route::kLevels);
    if (!(s > 0.0f) || !(s < 3.0e38f)) s = 1.0f;
    float z = __builtin_rintf(-lo / s);
    z = z > 0.0f ? z : 0.0f;
    z = z < float(Route::kLevels) ? z : float(Route::kLevels);
    *step = s;
    *zero = int32_t(z);
}

// The static parameters on this route: the u8 step and zero point as given, or on a 7-bit route the same
// range over 128 levels (step x 255 / 127, zero point rescaled and rounded).
inline void static_params(const SpmmProblem& p, float* step, int32_t* zero) {
    if (Route::kLevels == 255) {
        *step = p.act_scale;
        *zero = p.act_zero_point;
        return;
    }
    *step = p.act_scale * (255.0f / float(Route::kLevels));
    float z = __builtin_rintf(float(p.act_zero_point) * (float(Route::kLevels) / 255.0f));
    z = z > 0.0f ? z : 0.0f;
    *zero = int32_t(z < float(Route::kLevels) ? z : float(Route::kLevels));
}

// A token's step and zero point: static, or from its own range.
inline void token_params(const SpmmProblem& p, const float* row, float* step, int32_t* zero) {
    using Vec = typename Simd::V;
    constexpr int L = Simd::L;
    if (p.act_quant == kActQuantStatic) {
        static_params(p, step, zero);
        return;
    }
    const int64_t k = p.in_features, kv = k / L * L;
    float lo = 0.0f, hi = 0.0f;
    if (kv > 0) {
        Vec vlo = Simd::load(row), vhi = vlo;
        for (int64_t i = L; i < kv; i += L) {
            const Vec v = Simd::load(row + i);
            vlo = Simd::min(vlo, v);
            vhi = Simd::max(vhi, v);
        }
        alignas(64) float a[L], b[L];
        Simd::store(a, vlo);
        Simd::store(b, vhi);
        for (int i = 0; i < L; ++i) {
            lo = a[i] < lo ? a[i] : lo;
            hi = b[i] > hi ? b[i] : hi;
        }
    }
    for (int64_t i = kv; i < k; ++i) {
        lo = row[i] < lo ? row[i] : lo;
        hi = row[i] > hi ? row[i] : hi;
    }
    token_range_params(lo, hi, step, zero);
}

// The quads of one token from quad `from` on (the inputs no full vector covers), one at a time.
inline void quantize_tail(const SpmmProblem& p, const float* row, float inv, int32_t zp, int64_t from, uint32_t* xq,
                          int64_t ws, int64_t t) {
    const int64_t k = p.in_features, kq = (k + 3) / 4;
    for (int64_t qd = from; qd < kq; ++qd) {
        uint32_t packed = 0;
        for (int b = 0; b < 4; ++b) {
            const int64_t i = qd * 4 + b;
            packed |= (i < k ? quantize_one(scaled_input(p, row, i), inv, zp) : uint32_t(zp)) << (8 * b);
        }
        xq[qd * ws + t] = packed;
    }
}

// Quantizes tokens [0, w_valid) of a tile (x: [w_valid][in_features] row-major) into xq ([kq][ws], kq =
// ceil(in_features / 4); inputs past in_features hold the zero point), each token's step and zero point
// into scale / zero; padding lanes hold 0.
inline void quantize_tile(const SpmmProblem& p, const float* x, int64_t w_valid, int64_t ws, uint32_t* xq,
                          float* scale, int32_t* zero) {
    constexpr int L = Simd::L;
    const int64_t k = p.in_features, kq = (k + 3) / 4, kv = k / L * L;
    int64_t t = 0;
#if defined(PRUNEOFA_AVX2_TRANSPOSE)
    // Eight tokens at a time: each token's quads written contiguously into a small buffer, then moved
    // into the tile with 8 x 8 32-bit transposes (a scattered 32-bit store per quad cost more).
    constexpr int64_t kChunk = 64;  // quads per buffer row
    alignas(64) uint32_t buf[8 * kChunk];
    for (; t + 8 <= w_valid; t += 8) {
        float inv[8];
        for (int r = 0; r < 8; ++r) {
            token_params(p, x + (t + r) * k, &scale[t + r], &zero[t + r]);
            inv[r] = 1.0f / scale[t + r];
        }
        for (int64_t q0 = 0; q0 < kv / 4; q0 += kChunk) {
            const int64_t nq = min64(kChunk, kv / 4 - q0);  // a multiple of L / 4
            for (int r = 0; r < 8; ++r) {
                const float* row = x + (t + r) * k;
                const typename Simd::V vinv = Simd::set1(inv[r]);
                const typename SimdI::I vzero = SimdI::set1(zero[t + r]);
                for (int64_t i = 0; i < nq * 4; i += L)
                    SimdI::store_quads_contiguous(quantize_lanes(scaled_inputs(p, row, q0 * 4 + i), vinv, vzero),
                                                  buf + r * kChunk + i / 4);
            }
            const int64_t n8 = nq / 8 * 8;
            for (int64_t qq = 0; qq < n8; qq += 8)
                transpose8_block(reinterpret_cast<const float*>(buf + qq), kChunk,
                                 reinterpret_cast<float*>(xq + (q0 + qq) * ws + t), ws);
            for (int64_t qq = n8; qq < nq; ++qq)
                for (int r = 0; r < 8; ++r) xq[(q0 + qq) * ws + t + r] = buf[r * kChunk + qq];
        }
        for (int r = 0; r < 8; ++r)
            quantize_tail(p, x + (t + r) * k, inv[r], zero[t + r], kv / 4, xq, ws, t + r);
    }
#endif
    for (; t < w_valid; ++t) {
        const float* row = x + t * k;
        token_params(p, row, &scale[t], &zero[t]);
        const float inv = 1.0f / scale[t];
        const typename Simd::V vinv = Simd::set1(inv);
        const typename SimdI::I vzero = SimdI::set1(zero[t]);
        for (int64_t i = 0; i < kv; i += L)
            SimdI::store_quads(quantize_lanes(scaled_inputs(p, row, i), vinv, vzero), xq + (i / 4) * ws + t, ws);
        quantize_tail(p, row, inv, zero[t], kv / 4, xq, ws, t);
    }
    for (int64_t tt = w_valid; tt < ws; ++tt) {
        scale[tt] = 0.0f;
        zero[tt] = 0;
        for (int64_t qd = 0; qd < kq; ++qd) xq[qd * ws + tt] = 0;
    }
}

// Quantizes a transposed FP32 tile (ht[i][token] for i < in_features, row stride ws: a fused pair's
// intermediate) into xq as quantize_tile quantizes the same values token-major, so the result has the same
// bits: each token's step and zero point from its own range (token_range_params on the same min / max, 0
// included) or static, the same rounding, the zero point past in_features, 0 in the padding lanes. Here the
// lanes are tokens: one vector min / max per input row, 4 quantized rows packed into each 32-bit lane.
inline void quantize_transposed_tile(const SpmmProblem& p, const float* ht, int64_t w_valid, int64_t ws,
                                     uint32_t* xq, float* scale, int32_t* zero) {
    using Vec = typename Simd::V;
    using I = typename SimdI::I;
    constexpr int L = Simd::L;
    const int64_t k = p.in_features, kq = (k + 3) / 4;
    if (p.act_quant == kActQuantStatic) {
        float s;
        int32_t z;
        static_params(p, &s, &z);
        for (int64_t t = 0; t < ws; ++t) {
            scale[t] = s;
            zero[t] = z;
        }
    } else {
        for (int64_t t0 = 0; t0 < ws; t0 += L) {
            Vec lo = Simd::zero(), hi = Simd::zero();
            for (int64_t i = 0; i < k; ++i) {
                const Vec v = Simd::load(ht + i * ws + t0);
                lo = Simd::min(lo, v);
                hi = Simd::max(hi, v);
            }
            alignas(64) float a[L], b[L];
            Simd::store(a, lo);
            Simd::store(b, hi);
            for (int j = 0; j < L; ++j) token_range_params(a[j], b[j], &scale[t0 + j], &zero[t0 + j]);
        }
    }
    for (int64_t t0 = 0; t0 < ws; t0 += L) {
        alignas(64) float inv[L];
        for (int j = 0; j < L; ++j) inv[j] = 1.0f / scale[t0 + j];
        const Vec vinv = Simd::load(inv);
        const I vzero = SimdI::load(zero + t0);
        const float* col = ht + t0;
        // Here a row's lanes are tokens, so its multiplier is one broadcast factor (the same product).
        auto row = [&](int64_t i) {
            if (i >= k) return vzero;
            const Vec v = Simd::load(col + i * ws);
            return quantize_lanes(p.act_multiplier != nullptr ? Simd::mul(v, Simd::set1(p.act_multiplier[i])) : v,
                                  vinv, vzero);
        };
        for (int64_t qd = 0; qd < kq; ++qd) {
            const int64_t i = qd * 4;
            const I low = SimdI::or_(row(i), SimdI::shl<8>(row(i + 1)));
            const I high = SimdI::or_(SimdI::shl<16>(row(i + 2)), SimdI::shl<24>(row(i + 3)));
            SimdI::store(xq + qd * ws + t0, SimdI::or_(low, high));
        }
    }
    for (int64_t t = w_valid; t < ws; ++t) {
        scale[t] = 0.0f;
        zero[t] = 0;
        for (int64_t qd = 0; qd < kq; ++qd) xq[qd * ws + t] = 0;
    }
}

// One output row for V vectors of tokens with S independent accumulator sets (as row_pass in
// spmm_kernel.inl), dequantized, bias added: out[token] = (acc - zero[token] * row_sum) * scale[token] *
// w_scale + bias.
template <int V, int S>
inline void q8_row_pass(const SpmmProblem& p, int64_t n, const uint32_t* xq, const float* tscale,
                        const int32_t* tzero, int32_t row_sum, int64_t ws, float* out) {
    using I = typename SimdI::I;
    constexpr int L = Simd::L;
    I acc[S][V];
    for (int s = 0; s < S; ++s)
        for (int v = 0; v < V; ++v) acc[s][v] = SimdI::zero();
    const int32_t* cols = p.col_idx;
    const int8_t* vals = p.values_i8;
    const int32_t jb = p.row_ptr[n], je = p.row_ptr[n + 1];
    int32_t j = jb;
    for (; j + S <= je; j += S) {
        for (int s = 0; s < S; ++s) {
            const uint32_t* xr = xq + int64_t(cols[j + s] / 4) * ws;
            int32_t w4;
            __builtin_memcpy(&w4, vals + int64_t(j + s) * 4, 4);
            const I w = SimdI::set1(w4);
            for (int v = 0; v < V; ++v) acc[s][v] = Route::dot4(acc[s][v], SimdI::load(xr + v * L), w);
        }
    }
    for (; j < je; ++j) {
        const uint32_t* xr = xq + int64_t(cols[j] / 4) * ws;
        int32_t w4;
        __builtin_memcpy(&w4, vals + int64_t(j) * 4, 4);
        const I w = SimdI::set1(w4);
        for (int v = 0; v < V; ++v) acc[0][v] = Route::dot4(acc[0][v], SimdI::load(xr + v * L), w);
    }
    for (int s = 1; s < S; ++s)
        for (int v = 0; v < V; ++v) acc[0][v] = SimdI::add(acc[0][v], acc[s][v]);
    const typename Simd::V bias = Simd::set1(p.bias != nullptr ? p.bias[n] : 0.0f);
    if (p.act_quant == kActQuantStatic) {
        // One step and zero point for every token (static_params): zero x row_sum and step x weight scale
        // are the row's constants, so each vector costs a subtraction, a conversion and one FMA (padding
        // lanes get finite values that are never stored).
        const I offset = SimdI::set1(tzero[0] * row_sum);
        const typename Simd::V step = Simd::set1(tscale[0] * p.scales[n]);
        for (int v = 0; v < V; ++v)
            Simd::store(out + v * L, Simd::fmadd(SimdI::to_float(SimdI::sub(acc[0][v], offset)), step, bias));
        return;
    }
    const I rs = SimdI::set1(row_sum);
    const typename Simd::V w_scale = Simd::set1(p.scales[n]);
    for (int v = 0; v < V; ++v) {
        const I centered = SimdI::sub(acc[0][v], SimdI::mullo(SimdI::load(tzero + v * L), rs));
        const typename Simd::V f = Simd::mul(SimdI::to_float(centered), Simd::load(tscale + v * L));
        Simd::store(out + v * L, Simd::fmadd(f, w_scale, bias));
    }
}

inline void q8_row_all(const SpmmProblem& p, int64_t n, const Q8Tile& q, int64_t ws, float* out) {
    constexpr int L = Simd::L;
    const int32_t rs = q.row_sums[n];
    int64_t v0 = 0;
    int64_t nv = ws / L;
    for (; nv >= 8; nv -= 8, v0 += 8)
        q8_row_pass<8, 1>(p, n, q.xq + v0 * L, q.scale + v0 * L, q.zero + v0 * L, rs, ws, out + v0 * L);
    if (nv >= 4) {
        q8_row_pass<4, 2>(p, n, q.xq + v0 * L, q.scale + v0 * L, q.zero + v0 * L, rs, ws, out + v0 * L);
        nv -= 4;
        v0 += 4;
    }
    if (nv >= 2) {
        q8_row_pass<2, 4>(p, n, q.xq + v0 * L, q.scale + v0 * L, q.zero + v0 * L, rs, ws, out + v0 * L);
        nv -= 2;
        v0 += 2;
    }
    if (nv >= 1) q8_row_pass<1, 4>(p, n, q.xq + v0 * L, q.scale + v0 * L, q.zero + v0 * L, rs, ws, out + v0 * L);
}

// A fused pair's first layer (as rows_to_tile_impl, spmm_kernel.inl): rows [row_begin, row_end) straight
// into the transposed FP32 tile ht[n][token] (stride w_pad), bias and activation applied: the values
// q8_rows_impl would store token-major.
inline void q8_rows_to_tile_impl(const TileArgs& a, const Q8Tile& q, float* ht) {
    const SpmmProblem& p = *a.p;
    const int64_t ws = a.w_pad;
    for (int64_t n = a.row_begin; n < a.row_end; ++n) {
        q8_row_all(p, n, q, ws, ht + n * ws);
        apply_activation(p.activation, ht + n * ws, ws);
    }
}

// As rows_impl (spmm_kernel.inl): groups of 16 rows, activation, transposed store (split outputs too).
inline void q8_rows_impl(const TileArgs& a, const Q8Tile& q) {
    constexpr int L = Simd::L;
    const SpmmProblem& p = *a.p;
    alignas(64) float ybuf[kGroup * 8 * L];
    const int64_t ws = a.w_pad;
    for (int64_t n0 = a.row_begin; n0 < a.row_end; n0 += kGroup) {
        const int rows = int(min64(kGroup, a.row_end - n0));
        for (int r = 0; r < rows; ++r) q8_row_all(p, n0 + r, q, ws, ybuf + r * ws);
        apply_activation(p.activation, ybuf, rows * ws);
        store_group(p, ybuf, ws, rows, n0, a.t0, a.w_valid);
    }
}

}  // namespace

int lanes() { return Simd::L; }
int levels() { return Route::kLevels; }
void quantize(const SpmmProblem& p, const float* x, int64_t w_valid, int64_t w_pad, uint32_t* xq, float* scale,
              int32_t* zero) {
    quantize_tile(p, x, w_valid, w_pad, xq, scale, zero);
}
void rows(const TileArgs& a, const Q8Tile& q) { q8_rows_impl(a, q); }
void quantize_transposed(const SpmmProblem& p, const float* ht, int64_t w_valid, int64_t w_pad, uint32_t* xq,
                         float* scale, int32_t* zero) {
    quantize_transposed_tile(p, ht, w_valid, w_pad, xq, scale, zero);
}
void rows_to_tile(const TileArgs& a, const Q8Tile& q, float* ht) { q8_rows_to_tile_impl(a, q, ht); }
