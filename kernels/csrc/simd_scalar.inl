// The FP32 vector type of the scalar path and its int32 lanes, included inside that path's anonymous
// namespace by its translation units (spmm_scalar.cpp and the INT8 kernels built with the same or wider flags).
struct Simd {
    static constexpr int L = 8;
    struct V {
        float v[L];
    };
    static V zero() {
        V r;
        for (int i = 0; i < L; ++i) r.v[i] = 0.0f;
        return r;
    }
    static V load(const float* p) {
        V r;
        for (int i = 0; i < L; ++i) r.v[i] = p[i];
        return r;
    }
    static void store(float* p, const V& a) {
        for (int i = 0; i < L; ++i) p[i] = a.v[i];
    }
    static V set1(float x) {
        V r;
        for (int i = 0; i < L; ++i) r.v[i] = x;
        return r;
    }
    static V fmadd(const V& a, const V& b, const V& c) {
        V r;
        for (int i = 0; i < L; ++i) r.v[i] = a.v[i] * b.v[i] + c.v[i];
        return r;
    }
    static V add(const V& a, const V& b) {
        V r;
        for (int i = 0; i < L; ++i) r.v[i] = a.v[i] + b.v[i];
        return r;
    }
    static V mul(const V& a, const V& b) {
        V r;
        for (int i = 0; i < L; ++i) r.v[i] = a.v[i] * b.v[i];
        return r;
    }
    static V div(const V& a, const V& b) {
        V r;
        for (int i = 0; i < L; ++i) r.v[i] = a.v[i] / b.v[i];
        return r;
    }
    static V min(const V& a, const V& b) {
        V r;
        for (int i = 0; i < L; ++i) r.v[i] = a.v[i] < b.v[i] ? a.v[i] : b.v[i];
        return r;
    }
    static V max(const V& a, const V& b) {
        V r;
        for (int i = 0; i < L; ++i) r.v[i] = a.v[i] > b.v[i] ? a.v[i] : b.v[i];
        return r;
    }
};

// The int32 lanes beside it (as many as Simd::L), for the INT8-compute kernels (spmm_int8.inl).
struct SimdI {
    static constexpr int L = Simd::L;
    struct I {
        int32_t v[L];
    };
    static I zero() { return set1(0); }
    static I load(const void* p) {
        I r;
        __builtin_memcpy(r.v, p, sizeof r.v);
        return r;
    }
    static I set1(int32_t x) {
        I r;
        for (int i = 0; i < L; ++i) r.v[i] = x;
        return r;
    }
    static I add(const I& a, const I& b) {
        I r;
        for (int i = 0; i < L; ++i) r.v[i] = a.v[i] + b.v[i];
        return r;
    }
    static I sub(const I& a, const I& b) {
        I r;
        for (int i = 0; i < L; ++i) r.v[i] = a.v[i] - b.v[i];
        return r;
    }
    static I mullo(const I& a, const I& b) {
        I r;
        for (int i = 0; i < L; ++i) r.v[i] = a.v[i] * b.v[i];
        return r;
    }
    static I min(const I& a, const I& b) {
        I r;
        for (int i = 0; i < L; ++i) r.v[i] = a.v[i] < b.v[i] ? a.v[i] : b.v[i];
        return r;
    }
    static I max(const I& a, const I& b) {
        I r;
        for (int i = 0; i < L; ++i) r.v[i] = a.v[i] > b.v[i] ? a.v[i] : b.v[i];
        return r;
    }
    static void store(void* p, const I& a) { __builtin_memcpy(p, a.v, sizeof a.v); }
    static I or_(const I& a, const I& b) {
        I r;
        for (int i = 0; i < L; ++i) r.v[i] = a.v[i] | b.v[i];
        return r;
    }
    template <int S>
    static I shl(const I& a) {  // on the unsigned bits (a byte shifted into the sign bit is no overflow)
        I r;
        for (int i = 0; i < L; ++i) r.v[i] = int32_t(uint32_t(a.v[i]) << S);
        return r;
    }
    static I round(const Simd::V& a) {  // to nearest even, as cvtps_epi32 under the default MXCSR
        I r;
        for (int i = 0; i < L; ++i) r.v[i] = int32_t(__builtin_rintf(a.v[i]));
        return r;
    }
    static Simd::V to_float(const I& a) {
        Simd::V r;
        for (int i = 0; i < L; ++i) r.v[i] = float(a.v[i]);
        return r;
    }
    // Lanes holding 0..255 as L / 4 packed quads (lane 4q + b in byte b of dst[q * ws]).
    static void store_quads(const I& q, uint32_t* dst, int64_t ws) {
        for (int qd = 0; qd < L / 4; ++qd) {
            uint32_t packed = 0;
            for (int b = 0; b < 4; ++b) packed |= uint32_t(q.v[qd * 4 + b]) << (8 * b);
            dst[qd * ws] = packed;
        }
    }
};
