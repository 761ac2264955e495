// The FP32 vector type of the avx512 path and its int32 lanes, included inside that path's anonymous
// namespace by its translation units (spmm_avx512.cpp and the INT8 kernels built with the same or wider flags).
struct Simd {
    using V = __m512;
    static constexpr int L = 16;
    static V zero() { return _mm512_setzero_ps(); }
    static V load(const float* p) { return _mm512_loadu_ps(p); }
    static void store(float* p, V a) { _mm512_storeu_ps(p, a); }
    static V set1(float x) { return _mm512_set1_ps(x); }
    static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    static V add(V a, V b) { return _mm512_add_ps(a, b); }
    static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
    static V div(V a, V b) { return _mm512_div_ps(a, b); }
    static V min(V a, V b) { return _mm512_min_ps(a, b); }
    static V max(V a, V b) { return _mm512_max_ps(a, b); }
};

// The int32 lanes beside it (as many as Simd::L), for the INT8-compute kernels (spmm_int8.inl).
struct SimdI {
    using I = __m512i;
    static I zero() { return _mm512_setzero_si512(); }
    static I load(const void* p) { return _mm512_loadu_si512(p); }
    static I set1(int32_t x) { return _mm512_set1_epi32(x); }
    static I add(I a, I b) { return _mm512_add_epi32(a, b); }
    static I sub(I a, I b) { return _mm512_sub_epi32(a, b); }
    static I mullo(I a, I b) { return _mm512_mullo_epi32(a, b); }
    static I min(I a, I b) { return _mm512_min_epi32(a, b); }
    static I max(I a, I b) { return _mm512_max_epi32(a, b); }
    static void store(void* p, I a) { _mm512_storeu_si512(p, a); }
    static I or_(I a, I b) { return _mm512_or_si512(a, b); }
    template <int S>
    static I shl(I a) {
        return _mm512_slli_epi32(a, S);
    }
    static I round(__m512 v) { return _mm512_cvtps_epi32(v); }  // to nearest even (the default MXCSR)
    static __m512 to_float(I a) { return _mm512_cvtepi32_ps(a); }
    // Lanes holding 0..255 as the 16 bytes of the result.
    static __m128i bytes(I q) { return _mm512_cvtepi32_epi8(q); }
    // Those bytes as L / 4 packed quads at dst, dst + ws, ... (the transposed INT8 tile), or dst, dst + 1, ...
    static void store_quads(I q, uint32_t* dst, int64_t ws) {
        const __m128i b = bytes(q);
        dst[0] = uint32_t(_mm_cvtsi128_si32(b));
        dst[ws] = uint32_t(_mm_extract_epi32(b, 1));
        dst[2 * ws] = uint32_t(_mm_extract_epi32(b, 2));
        dst[3 * ws] = uint32_t(_mm_extract_epi32(b, 3));
    }
    static void store_quads_contiguous(I q, uint32_t* dst) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), bytes(q));
    }
};
