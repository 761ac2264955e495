// The FP32 vector type of the avx2 path and its int32 lanes, included inside that path's anonymous
// namespace by its translation units (spmm_avx2.cpp and the INT8 kernels built with the same or wider flags).
struct Simd {
    using V = __m256;
    static constexpr int L = 8;
    static V zero() { return _mm256_setzero_ps(); }
    static V load(const float* p) { return _mm256_loadu_ps(p); }
    static void store(float* p, V a) { _mm256_storeu_ps(p, a); }
    static V set1(float x) { return _mm256_set1_ps(x); }
    static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    static V add(V a, V b) { return _mm256_add_ps(a, b); }
    static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
    static V div(V a, V b) { return _mm256_div_ps(a, b); }
    static V min(V a, V b) { return _mm256_min_ps(a, b); }
    static V max(V a, V b) { return _mm256_max_ps(a, b); }
};

// The int32 lanes beside it (as many as Simd::L), for the INT8-compute kernels (spmm_int8.inl).
struct SimdI {
    using I = __m256i;
    static I zero() { return _mm256_setzero_si256(); }
    static I load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
    static I set1(int32_t x) { return _mm256_set1_epi32(x); }
    static I add(I a, I b) { return _mm256_add_epi32(a, b); }
    static I sub(I a, I b) { return _mm256_sub_epi32(a, b); }
    static I mullo(I a, I b) { return _mm256_mullo_epi32(a, b); }
    static I min(I a, I b) { return _mm256_min_epi32(a, b); }
    static I max(I a, I b) { return _mm256_max_epi32(a, b); }
    static void store(void* p, I a) { _mm256_storeu_si256(static_cast<__m256i*>(p), a); }
    static I or_(I a, I b) { return _mm256_or_si256(a, b); }
    template <int S>
    static I shl(I a) {
        return _mm256_slli_epi32(a, S);
    }
    static I round(__m256 v) { return _mm256_cvtps_epi32(v); }  // to nearest even (the default MXCSR)
    static __m256 to_float(I a) { return _mm256_cvtepi32_ps(a); }
    // Lanes holding 0..255 as bytes, in the low 8 bytes of the result.
    static __m128i bytes(I q) {
        const __m128i words = _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        return _mm_packus_epi16(words, words);
    }
    // Those bytes as L / 4 packed quads at dst, dst + ws (the transposed INT8 tile), or dst, dst + 1.
    static void store_quads(I q, uint32_t* dst, int64_t ws) {
        const __m128i b = bytes(q);
        dst[0] = uint32_t(_mm_cvtsi128_si32(b));
        dst[ws] = uint32_t(_mm_extract_epi32(b, 1));
    }
    static void store_quads_contiguous(I q, uint32_t* dst) {
        _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), bytes(q));
    }
};
