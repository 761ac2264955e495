// 4 x 1 blocks (SpmmProblem::block_rows = 4): four output rows share each column index, so one loaded
// activation vector feeds four FMAs (the CSR loop loads one per FMA and is bound by those loads:
// docs/kernels.md). Included by spmm_kernel.inl; uses its Simd, apply_activation and store_transposed.

// Rows [4 rb, 4 rb + 4) for V vectors of tokens: out + r * out_stride receives row 4 rb + r.
template <int V>
inline void row4_pass(const SpmmProblem& p, int64_t rb, const float* xt, int64_t ws, float* out, int64_t out_stride) {
    using Vec = typename Simd::V;
    constexpr int L = Simd::L;
    Vec acc[4][V];
    for (int r = 0; r < 4; ++r)
        for (int v = 0; v < V; ++v) acc[r][v] = Simd::zero();
    const int32_t jb = p.row_ptr[rb], je = p.row_ptr[rb + 1];
    for (int32_t j = jb; j < je; ++j) {
        const float* xr = xt + int64_t(p.col_idx[j]) * ws;
        const float* w = p.values_f32 + int64_t(j) * 4;
        Vec x[V];
        for (int v = 0; v < V; ++v) x[v] = Simd::load(xr + v * L);
        for (int r = 0; r < 4; ++r) {
            const Vec wr = Simd::set1(w[r]);
            for (int v = 0; v < V; ++v) acc[r][v] = Simd::fmadd(wr, x[v], acc[r][v]);
        }
    }
    for (int r = 0; r < 4; ++r) {
        const Vec bias = Simd::set1(p.bias != nullptr ? p.bias[rb * 4 + r] : 0.0f);
        for (int v = 0; v < V; ++v) Simd::store(out + r * out_stride + v * L, Simd::add(acc[r][v], bias));
    }
}

// All token vectors of one row block, at most 4 (AVX-512) or 2 (8-lane paths) at a time, so the 4 x V
// accumulators stay in registers.
inline void row4_all(const SpmmProblem& p, int64_t rb, const float* xt, int64_t ws, float* out, int64_t out_stride) {
    constexpr int L = Simd::L;
    constexpr int kMax = L >= 16 ? 4 : 2;
    int64_t v0 = 0;
    int64_t nv = ws / L;
    for (; nv >= kMax; nv -= kMax, v0 += kMax) row4_pass<kMax>(p, rb, xt + v0 * L, ws, out + v0 * L, out_stride);
    if (kMax > 2 && nv >= 2) {
        row4_pass<2>(p, rb, xt + v0 * L, ws, out + v0 * L, out_stride);
        nv -= 2;
        v0 += 2;
    }
    if (nv >= 1) row4_pass<1>(p, rb, xt + v0 * L, ws, out + v0 * L, out_stride);
}

// As rows_impl, for 4 x 1 blocks (row_begin and row_end are multiples of 4: out_features is).
inline void rows4_impl(const TileArgs& a) {
    constexpr int L = Simd::L;
    const SpmmProblem& p = *a.p;
    alignas(64) float ybuf[kGroup * 8 * L];
    const int64_t ws = a.w_pad;
    for (int64_t n0 = a.row_begin; n0 < a.row_end; n0 += kGroup) {
        const int rows = int(min64(kGroup, a.row_end - n0));
        for (int r = 0; r < rows; r += 4) row4_all(p, (n0 + r) / 4, a.xt, ws, ybuf + r * ws, ws);
        apply_activation(p.activation, ybuf, rows * ws);
        store_group(p, ybuf, ws, rows, n0, a.t0, a.w_valid);
    }
}

// As rows_to_tile_impl, for 4 x 1 blocks.
inline void rows4_to_tile_impl(const TileArgs& a, float* ht) {
    const SpmmProblem& p = *a.p;
    const int64_t ws = a.w_pad;
    for (int64_t rb = a.row_begin / 4; rb < a.row_end / 4; ++rb) {
        row4_all(p, rb, a.xt, ws, ht + rb * 4 * ws, ws);
        apply_activation(p.activation, ht + rb * 4 * ws, 4 * ws);
    }
}
