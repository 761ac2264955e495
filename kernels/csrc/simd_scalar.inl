// The FP32 vector type of the scalar path, included inside that path's anonymous namespace by its
// translation units (spmm_scalar.cpp and the INT8 kernels built with the same or wider flags).
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
