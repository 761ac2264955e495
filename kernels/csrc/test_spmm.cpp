// Standalone check of every ISA path this CPU runs against a naive reference on random problems:
// shapes that straddle tiles and row groups, 0-100 % sparsity, empty rows, blocks, INT8 values.
// No OpenVINO or TBB here, so it builds in seconds with -fsanitize=address,undefined.
// Usage: test_spmm [cases]   (exit status 0 when every case matches)
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "spmm.hpp"

using namespace pruneofa;

namespace {

struct Case {
    int64_t t, k, n;
    int block;
    double sparsity;
    bool int8, bias;
    int activation = kActivationNone;
};

struct Csr {
    std::vector<int32_t> row_ptr, col_idx;
    std::vector<float> vf, scales, bias;
    std::vector<int8_t> vi;
};

Csr make(const Case& c, std::mt19937& rng) {
    Csr m;
    std::uniform_real_distribution<float> u(-1.0f, 1.0f), keep(0.0f, 1.0f);
    std::uniform_int_distribution<int> q(-127, 127);
    const int64_t slots = c.k / c.block;
    m.row_ptr.push_back(0);
    for (int64_t n = 0; n < c.n; ++n) {
        const bool empty_row = (n % 5 == 3);  // some rows hold nothing at all
        for (int64_t s = 0; s < slots; ++s) {
            if (empty_row || keep(rng) < c.sparsity) continue;
            m.col_idx.push_back(static_cast<int32_t>(s * c.block));
            for (int b = 0; b < c.block; ++b) {
                if (c.int8)
                    m.vi.push_back(static_cast<int8_t>(q(rng)));
                else
                    m.vf.push_back(u(rng));
            }
        }
        m.row_ptr.push_back(static_cast<int32_t>(m.col_idx.size()));
        m.scales.push_back(0.01f + 0.02f * keep(rng));
        m.bias.push_back(u(rng));
    }
    return m;
}

SpmmProblem problem_of(const Case& c, const Csr& m) {
    SpmmProblem p;
    p.tokens = c.t;
    p.in_features = c.k;
    p.out_features = c.n;
    p.row_ptr = m.row_ptr.data();
    p.col_idx = m.col_idx.data();
    p.int8 = c.int8;
    p.values_f32 = c.int8 ? nullptr : m.vf.data();
    p.values_i8 = c.int8 ? m.vi.data() : nullptr;
    p.scales = c.int8 ? m.scales.data() : nullptr;
    p.bias = c.bias ? m.bias.data() : nullptr;
    p.block = c.block;
    p.activation = c.activation;
    return p;
}

bool run_case(const Case& c, std::mt19937& rng, Isa isa, int workers) {
    Csr m = make(c, rng);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(c.t * c.k));
    for (auto& v : x) v = u(rng);
    std::vector<float> y(static_cast<size_t>(c.t * c.n), std::nanf(""));
    SpmmProblem p = problem_of(c, m);
    p.x = x.data();
    p.y = y.data();
    if (const char* err = validate(p, static_cast<int64_t>(m.col_idx.size()))) {
        std::printf("invalid problem: %s\n", err);
        return false;
    }
    spmm(p, isa, SerialParallel(workers));
    for (int64_t t = 0; t < c.t; ++t) {
        for (int64_t n = 0; n < c.n; ++n) {
            double acc = 0.0, mag = 0.0;
            for (int32_t j = m.row_ptr[n]; j < m.row_ptr[n + 1]; ++j) {
                for (int b = 0; b < c.block; ++b) {
                    const size_t at = static_cast<size_t>(j) * c.block + b;
                    const double w = c.int8 ? double(m.vi[at]) * m.scales[n] : double(m.vf[at]);
                    const double term = w * x[static_cast<size_t>(t * c.k + m.col_idx[j] + b)];
                    acc += term;
                    mag += std::fabs(term);
                }
            }
            if (c.bias) acc += m.bias[n];
            if (c.activation == kActivationGeluErf) {
                acc = 0.5 * acc * (1.0 + std::erf(acc / std::sqrt(2.0)));
                mag = mag + 1.0;  // the rational erf is good to ~5e-7 absolute
            }
            const double got = y[static_cast<size_t>(t * c.n + n)];
            if (!(std::fabs(got - acc) <= 1e-5 * mag + 1e-6)) {
                std::printf("MISMATCH isa=%s t=%lld k=%lld n=%lld block=%d sparsity=%.2f int8=%d bias=%d at "
                            "[%lld,%lld]: got %.7g want %.7g\n",
                            isa_name(isa), (long long)c.t, (long long)c.k, (long long)c.n, c.block, c.sparsity,
                            int(c.int8), int(c.bias), (long long)t, (long long)n, got, acc);
                return false;
            }
        }
    }
    return true;
}


// spmm_pair (fused or not, by the worker count) against two spmm calls: the same arithmetic, so the same
// bits (the two-call path is itself checked against the reference above).
bool run_pair(const Case& c1, const Case& c2, std::mt19937& rng, Isa isa, int workers) {
    const Csr m1 = make(c1, rng), m2 = make(c2, rng);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(c1.t * c1.k));
    for (auto& v : x) v = u(rng);
    std::vector<float> h(static_cast<size_t>(c1.t * c1.n)), want(static_cast<size_t>(c1.t * c2.n));
    std::vector<float> got(want.size(), std::nanf(""));
    SpmmProblem a = problem_of(c1, m1), b = problem_of(c2, m2);
    if (validate(a, static_cast<int64_t>(m1.col_idx.size())) || validate(b, static_cast<int64_t>(m2.col_idx.size())) ||
        validate_pair(a, b)) {
        std::printf("invalid pair problem\n");
        return false;
    }
    a.x = x.data();
    a.y = h.data();
    b.x = h.data();
    b.y = want.data();
    spmm(a, isa, SerialParallel(workers));
    spmm(b, isa, SerialParallel(workers));
    a.y = nullptr;
    b.x = nullptr;
    b.y = got.data();
    spmm_pair(a, b, isa, SerialParallel(workers));
    for (size_t i = 0; i < want.size(); ++i) {
        if (!(got[i] == want[i])) {
            std::printf("PAIR MISMATCH isa=%s t=%lld k=%lld h=%lld n=%lld workers=%d fused=%d at %zu: got %.7g want %.7g\n",
                        isa_name(isa), (long long)c1.t, (long long)c1.k, (long long)c1.n, (long long)c2.n, workers,
                        int(pair_fuses(a, isa, workers)), i, got[i], want[i]);
            return false;
        }
    }
    return true;
}

// A split output (part_rows > 0) against the same problem with one output: the same numbers, column
// blocks of the one output in the parts.
bool run_split(const Case& c, int parts, std::mt19937& rng, Isa isa, int workers) {
    const Csr m = make(c, rng);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(c.t * c.k));
    for (auto& v : x) v = u(rng);
    SpmmProblem p = problem_of(c, m);
    std::vector<float> whole(static_cast<size_t>(c.t * c.n));
    p.x = x.data();
    p.y = whole.data();
    if (validate(p, static_cast<int64_t>(m.col_idx.size()))) return false;
    spmm(p, isa, SerialParallel(workers));
    const int64_t rows = c.n / parts;
    std::vector<std::vector<float>> outs(static_cast<size_t>(parts),
                                         std::vector<float>(static_cast<size_t>(c.t * rows), std::nanf("")));
    std::vector<float*> ptrs;
    for (auto& o : outs) ptrs.push_back(o.data());
    p.y = nullptr;
    p.y_parts = ptrs.data();
    p.part_rows = rows;
    if (const char* err = validate(p, static_cast<int64_t>(m.col_idx.size()))) {
        std::printf("invalid split problem: %s\n", err);
        return false;
    }
    spmm(p, isa, SerialParallel(workers));
    for (int i = 0; i < parts; ++i)
        for (int64_t t = 0; t < c.t; ++t)
            for (int64_t r = 0; r < rows; ++r)
                if (!(outs[i][t * rows + r] == whole[t * c.n + i * rows + r])) {
                    std::printf("SPLIT MISMATCH isa=%s t=%lld n=%lld parts=%d\n", isa_name(isa), (long long)c.t,
                                (long long)c.n, parts);
                    return false;
                }
    return true;
}

}  // namespace

int run_extended_tests(int cases, const std::vector<Isa>& isas, int* runs);  // test_spmm_ext.cpp

int main(int argc, char** argv) {
    const int cases = argc > 1 ? std::atoi(argv[1]) : 150;
    std::mt19937 rng(1234);
    const int64_t ts[] = {1, 3, 8, 17, 64, 65, 129, 200};
    const int64_t ks[] = {1, 4, 5, 13, 64, 100};
    const int64_t ns[] = {1, 7, 8, 9, 33};
    const int blocks[] = {1, 2, 4, 8};
    const double sparsities[] = {0.0, 0.5, 0.9, 0.99, 1.0};
    int failures = 0, run = 0;
    std::vector<Isa> isas;
    for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512})
        if (isa_supported(isa)) isas.push_back(isa);
    for (int i = 0; i < cases; ++i) {
        Case c{ts[rng() % 8], ks[rng() % 6], ns[rng() % 5], blocks[rng() % 4], sparsities[rng() % 5],
               rng() % 2 == 0, rng() % 3 != 0, static_cast<int>(rng() % 2)};
        const int workers = 1 + static_cast<int>(rng() % 3);
        for (Isa isa : isas) {
            std::mt19937 local(static_cast<unsigned>(i));
            failures += run_case(c, local, isa, workers) ? 0 : 1;
            ++run;
        }
    }
    // Tile-width overrides, including one that is not a multiple of the lanes.
    for (int tile : {8, 24, 1000}) {
        set_tile_tokens(tile);
        for (Isa isa : isas) {
            std::mt19937 local(static_cast<unsigned>(tile));
            failures += run_case({150, 40, 17, 1, 0.7, false, true, kActivationGeluErf}, local, isa, 2) ? 0 : 1;
            ++run;
        }
    }
    set_tile_tokens(0);
    // Fused pairs: both layers' formats independent, token counts giving 1..7 tiles (fused or not).
    int pairs = 0;
    for (int i = 0; i < cases / 3 + 1; ++i) {
        const int64_t t = ts[rng() % 8], k = ks[rng() % 6], h = ns[rng() % 5] * 4, n = ns[rng() % 5];
        Case c1{t, k, h, blocks[rng() % 4], sparsities[rng() % 5], rng() % 2 == 0, rng() % 3 != 0,
                static_cast<int>(rng() % 2)};
        Case c2{t, h, n, 1 << (rng() % 3), sparsities[rng() % 5], rng() % 2 == 0, rng() % 3 != 0, kActivationNone};
        if (c1.k % c1.block != 0) c1.block = 1;
        const int workers = 1 + static_cast<int>(rng() % 3);
        for (Isa isa : isas) {
            std::mt19937 local(static_cast<unsigned>(1000 + i));
            failures += run_pair(c1, c2, local, isa, workers) ? 0 : 1;
            ++run;
            ++pairs;
        }
    }
    std::printf("test_spmm: %d of them fused pairs\n", pairs);
    // Split outputs (Q, K and V in one pass): 1..3 parts of 16 or 32 rows.
    for (int i = 0; i < cases / 6 + 1; ++i) {
        const int parts = 1 + static_cast<int>(rng() % 3);
        Case c{ts[rng() % 8], ks[rng() % 6], int64_t(parts) * (16 << (rng() % 2)), blocks[rng() % 4],
               sparsities[rng() % 5], rng() % 2 == 0, rng() % 3 != 0, static_cast<int>(rng() % 2)};
        const int workers = 1 + static_cast<int>(rng() % 3);
        for (Isa isa : isas) {
            std::mt19937 local(static_cast<unsigned>(5000 + i));
            failures += run_split(c, parts, local, isa, workers) ? 0 : 1;
            ++run;
        }
    }
    {  // a part size that is not a multiple of 16 is refused
        SpmmProblem p;
        p.out_features = 24;
        p.part_rows = 12;
        float* none[2] = {nullptr, nullptr};
        p.y_parts = none;
        if (validate(p, 0) == nullptr) {
            std::printf("a 12-row part was accepted\n");
            ++failures;
        }
    }
    failures += run_extended_tests(cases, isas, &run);  // INT8 compute, 4 x 1 blocks
    std::printf("test_spmm: %d runs over ISAs:", run);
    for (Isa isa : isas) std::printf(" %s (int8: %s)", isa_name(isa), q8_route_name(isa));
    std::printf("; %d failures\n", failures);
    return failures == 0 ? 0 : 1;
}
