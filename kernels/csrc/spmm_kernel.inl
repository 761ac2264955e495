// The sparse × dense kernel, written once and compiled per ISA.
//
// Included by spmm_<isa>.cpp inside an anonymous namespace, after a `Simd` struct that provides
//   using V; static constexpr int L (lanes); zero(); load(p); store(p, v); set1(x); fmadd(a, b, c) = a*b + c;
//   add(a, b).
// Design (after XNNPACK's f32-spmm): the dense dimension (tokens) is the one vectorized. A tile of
// activations is transposed to xt[k][token] (w_pad tokens per row, kept in L2); for each output row and
// each stored weight w at column k, `w * xt[k][:]` is accumulated into vector registers (at most 4 vectors
// of tokens x 2 sets). Sixteen output rows are finished together (scale, bias, activation), then stored transposed into Y[t][n]: 16
// floats = one full 64-byte line per token (8-row groups wrote half lines and cost more than the math at
// high sparsity).
// Only <cstdint> and intrinsics here: see spmm_types.hpp on why. Simd also provides mul, div, min, max
// (for the fused GELU).

constexpr int kGroup = 16;  // output rows stored together (two 8x8 transposes per 8 tokens)

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// One pass over a row's stored blocks for V vectors of tokens, S independent accumulator sets (to hide
// FMA latency when V is small), B columns per block, INT8 or FP32 values.
template <int V, int S, int B, bool I8>
inline void row_pass(const SpmmProblem& p, int32_t jb, int32_t je, const float* xt, int64_t ws, float* out,
                     typename Simd::V scale, typename Simd::V bias) {
    using Vec = typename Simd::V;
    constexpr int L = Simd::L;
    Vec acc[S][V];
    for (int s = 0; s < S; ++s)
        for (int v = 0; v < V; ++v) acc[s][v] = Simd::zero();
    const int32_t* cols = p.col_idx;
    const float* vf = p.values_f32;
    const int8_t* vi = p.values_i8;
    int32_t j = jb;
    for (; j + S <= je; j += S) {
        for (int s = 0; s < S; ++s) {
            const float* xr = xt + int64_t(cols[j + s]) * ws;
            for (int b = 0; b < B; ++b) {
                const int64_t at = int64_t(j + s) * B + b;
                const Vec w = Simd::set1(I8 ? float(vi[at]) : vf[at]);
                for (int v = 0; v < V; ++v) acc[s][v] = Simd::fmadd(w, Simd::load(xr + b * ws + v * L), acc[s][v]);
            }
        }
    }
    for (; j < je; ++j) {
        const float* xr = xt + int64_t(cols[j]) * ws;
        for (int b = 0; b < B; ++b) {
            const int64_t at = int64_t(j) * B + b;
            const Vec w = Simd::set1(I8 ? float(vi[at]) : vf[at]);
            for (int v = 0; v < V; ++v) acc[0][v] = Simd::fmadd(w, Simd::load(xr + b * ws + v * L), acc[0][v]);
        }
    }
    for (int s = 1; s < S; ++s)
        for (int v = 0; v < V; ++v) acc[0][v] = Simd::add(acc[0][v], acc[s][v]);
    // Epilogue in registers: dequantization scale (INT8 values) and bias.
    for (int v = 0; v < V; ++v) Simd::store(out + v * L, I8 ? Simd::fmadd(acc[0][v], scale, bias) : Simd::add(acc[0][v], bias));
}

template <int B, bool I8>
inline void row_all(const SpmmProblem& p, int64_t n, const float* xt, int64_t ws, float* out) {
    constexpr int L = Simd::L;
    const int32_t jb = p.row_ptr[n], je = p.row_ptr[n + 1];
    const typename Simd::V scale = Simd::set1(I8 ? p.scales[n] : 1.0f);
    const typename Simd::V bias = Simd::set1(p.bias != nullptr ? p.bias[n] : 0.0f);
    int64_t v0 = 0;
    int64_t nv = ws / L;
    // Two accumulator sets in every pass: each token's sum is then formed in the same order whatever its
    // place in the tile and the tile's width, so outputs do not depend on the tiling or the thread count
    // (spmm_dispatch.cpp splits tokens between threads at any multiple of the lanes).
    for (; nv >= 4; nv -= 4, v0 += 4) row_pass<4, 2, B, I8>(p, jb, je, xt + v0 * L, ws, out + v0 * L, scale, bias);
    if (nv >= 2) {
        row_pass<2, 2, B, I8>(p, jb, je, xt + v0 * L, ws, out + v0 * L, scale, bias);
        nv -= 2;
        v0 += 2;
    }
    if (nv >= 1) row_pass<1, 2, B, I8>(p, jb, je, xt + v0 * L, ws, out + v0 * L, scale, bias);
}

inline void store_transposed_generic(const float* ybuf, int64_t ws, int rows, int64_t t_begin, int64_t t_end,
                                     float* y, int64_t ld) {
    for (int64_t t = t_begin; t < t_end; ++t)
        for (int r = 0; r < rows; ++r) y[t * ld + r] = ybuf[r * ws + t];
}

inline void transpose_in_generic(const float* x, int64_t k_begin, int64_t k_end, int64_t t_begin, int64_t t_end,
                                 int64_t ld, int64_t ws, float* xt) {
    for (int64_t t = t_begin; t < t_end; ++t)
        for (int64_t k = k_begin; k < k_end; ++k) xt[k * ws + t] = x[t * ld + k];
}

#if defined(PRUNEOFA_AVX2_TRANSPOSE)
inline void transpose8(__m256& r0, __m256& r1, __m256& r2, __m256& r3, __m256& r4, __m256& r5, __m256& r6,
                       __m256& r7) {
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    r0 = _mm256_permute2f128_ps(s0, s4, 0x20);
    r1 = _mm256_permute2f128_ps(s1, s5, 0x20);
    r2 = _mm256_permute2f128_ps(s2, s6, 0x20);
    r3 = _mm256_permute2f128_ps(s3, s7, 0x20);
    r4 = _mm256_permute2f128_ps(s0, s4, 0x31);
    r5 = _mm256_permute2f128_ps(s1, s5, 0x31);
    r6 = _mm256_permute2f128_ps(s2, s6, 0x31);
    r7 = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// dst[i * ld_dst + j] = src[j * ld_src + i] for an 8x8 block.
inline void transpose8_block(const float* src, int64_t ld_src, float* dst, int64_t ld_dst) {
    __m256 r0 = _mm256_loadu_ps(src + 0 * ld_src), r1 = _mm256_loadu_ps(src + 1 * ld_src);
    __m256 r2 = _mm256_loadu_ps(src + 2 * ld_src), r3 = _mm256_loadu_ps(src + 3 * ld_src);
    __m256 r4 = _mm256_loadu_ps(src + 4 * ld_src), r5 = _mm256_loadu_ps(src + 5 * ld_src);
    __m256 r6 = _mm256_loadu_ps(src + 6 * ld_src), r7 = _mm256_loadu_ps(src + 7 * ld_src);
    transpose8(r0, r1, r2, r3, r4, r5, r6, r7);
    _mm256_storeu_ps(dst + 0 * ld_dst, r0);
    _mm256_storeu_ps(dst + 1 * ld_dst, r1);
    _mm256_storeu_ps(dst + 2 * ld_dst, r2);
    _mm256_storeu_ps(dst + 3 * ld_dst, r3);
    _mm256_storeu_ps(dst + 4 * ld_dst, r4);
    _mm256_storeu_ps(dst + 5 * ld_dst, r5);
    _mm256_storeu_ps(dst + 6 * ld_dst, r6);
    _mm256_storeu_ps(dst + 7 * ld_dst, r7);
}

inline void store_transposed(const float* ybuf, int64_t ws, int rows, int64_t w_valid, float* y, int64_t ld) {
    const int64_t t8 = w_valid / 8 * 8;
    int done = 0;
    if (rows == 16) {
        for (int64_t t = 0; t < t8; t += 8) {
            transpose8_block(ybuf + t, ws, y + t * ld, ld);
            transpose8_block(ybuf + 8 * ws + t, ws, y + t * ld + 8, ld);
        }
        done = 16;
    } else if (rows >= 8) {
        for (int64_t t = 0; t < t8; t += 8) transpose8_block(ybuf + t, ws, y + t * ld, ld);
        done = 8;
    }
    if (done > 0) store_transposed_generic(ybuf, ws, rows, t8, w_valid, y, ld);  // token tail
    if (done < rows) store_transposed_generic(ybuf + done * ws, ws, rows - done, 0, w_valid, y + done, ld);
}

inline void transpose_in_impl(const float* x, int64_t k_total, int64_t w_valid, int64_t ws, float* xt) {
    const int64_t t8 = w_valid / 8 * 8, k8 = k_total / 8 * 8;
    for (int64_t t = 0; t < t8; t += 8)
        for (int64_t k = 0; k < k8; k += 8) transpose8_block(x + t * k_total + k, k_total, xt + k * ws + t, ws);
    transpose_in_generic(x, k8, k_total, 0, t8, k_total, ws, xt);
    transpose_in_generic(x, 0, k_total, t8, w_valid, k_total, ws, xt);
}
#else
inline void store_transposed(const float* ybuf, int64_t ws, int rows, int64_t w_valid, float* y, int64_t ld) {
    store_transposed_generic(ybuf, ws, rows, 0, w_valid, y, ld);
}

inline void transpose_in_impl(const float* x, int64_t k_total, int64_t w_valid, int64_t ws, float* xt) {
    transpose_in_generic(x, 0, k_total, 0, w_valid, k_total, ws, xt);
}
#endif

inline void transpose_in_padded(const float* x, int64_t k_total, int64_t w_valid, int64_t ws, float* xt) {
    transpose_in_impl(x, k_total, w_valid, ws, xt);
    for (int64_t k = 0; k < k_total; ++k)
        for (int64_t t = w_valid; t < ws; ++t) xt[k * ws + t] = 0.0f;
}

// GELU(x) = x/2 (1 + erf(x / sqrt 2)) with a rational erf on [-4, 4] (outside it erf is +-1 in FP32):
// the odd/even minimax polynomials Eigen and XLA use for float erf, max error 4.2e-7, no exp needed.
inline typename Simd::V gelu_erf(typename Simd::V x) {
    using Vec = typename Simd::V;
    const Vec z = Simd::max(Simd::min(Simd::mul(x, Simd::set1(0.70710678118654752f)), Simd::set1(4.0f)),
                            Simd::set1(-4.0f));
    const Vec z2 = Simd::mul(z, z);
    Vec p = Simd::fmadd(z2, Simd::set1(-2.72614225801306e-10f), Simd::set1(2.77068142495902e-08f));
    p = Simd::fmadd(z2, p, Simd::set1(-2.10102402082508e-06f));
    p = Simd::fmadd(z2, p, Simd::set1(-5.69250639462346e-05f));
    p = Simd::fmadd(z2, p, Simd::set1(-7.34990630326855e-04f));
    p = Simd::fmadd(z2, p, Simd::set1(-2.95459980854025e-03f));
    p = Simd::fmadd(z2, p, Simd::set1(-1.60960333262415e-02f));
    p = Simd::mul(z, p);
    Vec q = Simd::fmadd(z2, Simd::set1(-1.45660718464996e-05f), Simd::set1(-2.13374055278905e-04f));
    q = Simd::fmadd(z2, q, Simd::set1(-1.68282697438203e-03f));
    q = Simd::fmadd(z2, q, Simd::set1(-7.37332916720468e-03f));
    q = Simd::fmadd(z2, q, Simd::set1(-1.42647390514189e-02f));
    const Vec erf = Simd::div(p, q);
    const Vec half_x = Simd::mul(x, Simd::set1(0.5f));
    return Simd::fmadd(half_x, erf, half_x);
}

inline void apply_activation(int activation, float* buf, int64_t count) {
    if (activation != kActivationGeluErf) return;
    for (int64_t i = 0; i < count; i += Simd::L) Simd::store(buf + i, gelu_erf(Simd::load(buf + i)));
}

// Stores a group of `rows` (at most kGroup) output rows from n0 on, for tokens [t0, t0 + w_valid), from
// ybuf ([rows][ws]) into the output, token-major: one output, a split output's part (a group never
// straddles two parts: part_rows is a multiple of kGroup), or a part in the heads' layout, where a
// sequence's tokens of one head are contiguous rows of head_dim: stored one head's share of the group and
// one sequence's stretch of the tile at a time.
inline void store_group(const SpmmProblem& p, const float* ybuf, int64_t ws, int rows, int64_t n0, int64_t t0,
                        int64_t w_valid) {
    const int64_t part = p.part_rows > 0 ? n0 / p.part_rows : 0;
    float* y = p.part_rows > 0 ? p.y_parts[part] : p.y;
    const int64_t ld = p.part_rows > 0 ? p.part_rows : p.out_features;
    const int64_t col = n0 - part * ld;
    if (p.head_dim <= 0) {
        store_transposed(ybuf, ws, rows, w_valid, y + t0 * ld + col, ld);
        return;
    }
    const int64_t d = p.head_dim, heads = ld / d, seq = p.seq_len;
    for (int r = 0; r < rows;) {
        const int64_t head = (col + r) / d, j = (col + r) % d;
        const int count = int(min64(rows - r, d - j));
        for (int64_t t = 0; t < w_valid;) {
            const int64_t token = t0 + t, batch = token / seq, position = token % seq;
            const int64_t stretch = min64(w_valid - t, seq - position);
            store_transposed(ybuf + r * ws + t, ws, count, stretch,
                             y + ((batch * heads + head) * seq + position) * d + j, d);
            t += stretch;
        }
        r += count;
    }
}

template <int B, bool I8>
void rows_impl(const TileArgs& a) {
    constexpr int L = Simd::L;
    const SpmmProblem& p = *a.p;
    alignas(64) float ybuf[kGroup * 8 * L];
    const int64_t ws = a.w_pad;
    for (int64_t n0 = a.row_begin; n0 < a.row_end; n0 += kGroup) {
        const int rows = int(min64(kGroup, a.row_end - n0));
        for (int r = 0; r < rows; ++r) row_all<B, I8>(p, n0 + r, a.xt, ws, ybuf + r * ws);
        apply_activation(p.activation, ybuf, rows * ws);
        store_group(p, ybuf, ws, rows, n0, a.t0, a.w_valid);
    }
}

// A block width and value type as a type (this file's own, not std::integral_constant: see
// spmm_types.hpp on standard-library templates in the per-ISA objects).
template <int B, bool I8>
struct Layout {
    static constexpr int block = B;
    static constexpr bool int8 = I8;
};

// Calls kernel(Layout<block, int8>()) for the problem's block width and value type: the one place that
// turns them into template arguments.
template <typename Kernel>
void with_layout(const SpmmProblem& p, const Kernel& kernel) {
    switch (p.block * 2 + (p.int8 ? 1 : 0)) {
        case 2: kernel(Layout<1, false>()); break;
        case 3: kernel(Layout<1, true>()); break;
        case 4: kernel(Layout<2, false>()); break;
        case 5: kernel(Layout<2, true>()); break;
        case 8: kernel(Layout<4, false>()); break;
        case 9: kernel(Layout<4, true>()); break;
        case 16: kernel(Layout<8, false>()); break;
        case 17: kernel(Layout<8, true>()); break;
        default: break;  // rejected by validate()
    }
}

#include "spmm_rows4x1.inl"

inline void rows_dispatch(const TileArgs& a) {
    if (a.p->block_rows == 4) return rows4_impl(a);
    with_layout(*a.p, [&](auto layout) { rows_impl<decltype(layout)::block, decltype(layout)::int8>(a); });
}

// The first layer of a fused pair: rows [row_begin, row_end) of one tile written straight into the
// transposed tile `ht` (row n at ht + n * w_pad), the activation applied while the row is in L1. That
// tile is the second layer's input as it is, so the intermediate is never stored to memory in token-major
// order nor transposed back. Padding lanes (tokens >= w_valid) hold act(bias): they only ever reach
// padding lanes of the output, which are not stored.
template <int B, bool I8>
void rows_to_tile_impl(const TileArgs& a, float* ht) {
    const SpmmProblem& p = *a.p;
    const int64_t ws = a.w_pad;
    for (int64_t n = a.row_begin; n < a.row_end; ++n) {
        row_all<B, I8>(p, n, a.xt, ws, ht + n * ws);
        apply_activation(p.activation, ht + n * ws, ws);
    }
}

inline void rows_to_tile_dispatch(const TileArgs& a, float* ht) {
    if (a.p->block_rows == 4) return rows4_to_tile_impl(a, ht);
    with_layout(*a.p, [&](auto layout) {
        rows_to_tile_impl<decltype(layout)::block, decltype(layout)::int8>(a, ht);
    });
}
