// The sanitizer driver's cases for INT8 compute (1 x 4 INT8 blocks, quantized activations) and 4 x 1 FP32
// blocks: every ISA path this CPU runs against a naive reference that quantizes the same way, plus edge
// values (all-255 activations x all-127 / -128 weights), empty rows, all-zero matrices, odd K, token
// counts off the tile, split outputs, pairs, and malformed problems that must be refused.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "spmm.hpp"

using namespace pruneofa;

namespace {

struct Q8Case {
    int64_t t, k, n;
    double sparsity;
    bool bias;
    int activation;
    int quant;           // kActQuantDynamic or kActQuantStatic
    // 0 random, 1 all 127, 2 all -128, 3 all 64, 4 all -64 (the avx2 route's 8-bit-activation limit),
    // 5 random within [-64, 64] (NNCF's overflow fix)
    int weight_edge = 0;
    int x_edge = 0;       // 0 random, 1 all equal to the top of the range
};

struct Q8Weights {
    std::vector<int32_t> row_ptr, col_idx;
    std::vector<int8_t> values;
    std::vector<float> scales, bias;
};

Q8Weights make_q8(const Q8Case& c, std::mt19937& rng) {
    Q8Weights m;
    std::uniform_real_distribution<float> u(-1.0f, 1.0f), keep(0.0f, 1.0f);
    std::uniform_int_distribution<int> q(-128, 127), q7(-64, 64);
    m.row_ptr.push_back(0);
    for (int64_t n = 0; n < c.n; ++n) {
        const bool empty_row = (n % 5 == 3);
        for (int64_t col = 0; col < c.k; col += 4) {
            if (empty_row || keep(rng) < c.sparsity) continue;
            m.col_idx.push_back(static_cast<int32_t>(col));
            for (int b = 0; b < 4; ++b) {
                static const int kEdge[] = {0, 127, -128, 64, -64};
                const int e = c.weight_edge;
                int8_t v = static_cast<int8_t>(e >= 1 && e <= 4 ? kEdge[e] : e == 5 ? q7(rng) : q(rng));
                if (col + b >= c.k) v = 0;  // padding past in_features is zero (formats.py writes it so)
                m.values.push_back(v);
            }
        }
        m.row_ptr.push_back(static_cast<int32_t>(m.col_idx.size()));
        m.scales.push_back(0.001f + 0.01f * keep(rng));
        m.bias.push_back(u(rng));
    }
    return m;
}

SpmmProblem q8_problem(const Q8Case& c, const Q8Weights& m) {
    SpmmProblem p;
    p.tokens = c.t;
    p.in_features = c.k;
    p.out_features = c.n;
    p.row_ptr = m.row_ptr.data();
    p.col_idx = m.col_idx.data();
    p.int8 = true;
    p.values_i8 = m.values.data();
    p.scales = m.scales.data();
    p.bias = c.bias ? m.bias.data() : nullptr;
    p.block = 4;
    p.activation = c.activation;
    p.act_quant = c.quant;
    p.act_scale = 0.02f;
    p.act_zero_point = 100;
    return p;
}

double gelu(double v) { return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); }

// The reference quantization (written apart from spmm_int8.inl on purpose): per token or static.
void reference_quantize(const SpmmProblem& p, const float* row, int levels, std::vector<int>* q, float* step_out,
                        int* zero_out) {
    float step;
    int zero;
    if (p.act_quant == kActQuantStatic) {
        if (levels == 255) {
            step = p.act_scale;
            zero = p.act_zero_point;
        } else {
            step = p.act_scale * (255.0f / float(levels));
            zero = int(std::min<float>(float(levels), std::max(0.0f, std::nearbyint(float(p.act_zero_point) *
                                                                                        (float(levels) / 255.0f)))));
        }
    } else {
        float lo = 0.0f, hi = 0.0f;
        for (int64_t i = 0; i < p.in_features; ++i) {
            lo = std::min(lo, row[i]);
            hi = std::max(hi, row[i]);
        }
        step = (hi - lo) / float(levels);
        if (!(step > 0.0f)) step = 1.0f;
        zero = int(std::min<float>(float(levels), std::max(0.0f, std::nearbyint(-lo / step))));
    }
    const float inv = 1.0f / step;
    q->assign(static_cast<size_t>(p.in_features), 0);
    for (int64_t i = 0; i < p.in_features; ++i) {
        const float v = std::min(1024.0f, std::max(-1024.0f, row[i] * inv));
        (*q)[static_cast<size_t>(i)] = std::min(levels, std::max(0, int(std::nearbyint(v)) + zero));
    }
    *step_out = step;
    *zero_out = zero;
}

bool check_q8(const Q8Case& c, const Q8Weights& m, const std::vector<float>& x, const std::vector<float>& y,
              Isa isa) {
    SpmmProblem p = q8_problem(c, m);
    const int levels = q8_levels_for(p, isa);
    std::vector<int> q;
    for (int64_t t = 0; t < c.t; ++t) {
        float step;
        int zero;
        reference_quantize(p, x.data() + t * c.k, levels, &q, &step, &zero);
        for (int64_t n = 0; n < c.n; ++n) {
            int64_t acc = 0, mag = 0;
            for (int32_t j = m.row_ptr[n]; j < m.row_ptr[n + 1]; ++j)
                for (int b = 0; b < 4; ++b) {
                    const int64_t col = m.col_idx[j] + b;
                    const int64_t w = m.values[static_cast<size_t>(j) * 4 + b];
                    const int64_t a = (col < c.k ? q[static_cast<size_t>(col)] : zero) - zero;
                    acc += w * a;
                    mag += std::llabs(w * a);
                }
            double want = double(acc) * step * m.scales[n] + (c.bias ? m.bias[n] : 0.0);
            double tol = 1e-5 * (double(mag) * step * m.scales[n] + std::fabs(c.bias ? m.bias[n] : 0.0)) + 1e-6;
            if (c.activation == kActivationGeluErf) {
                want = gelu(want);
                tol += 1e-6 * (std::fabs(want) + 1.0);
            }
            const double got = y[static_cast<size_t>(t * c.n + n)];
            if (!(std::fabs(got - want) <= tol)) {
                std::printf("Q8 MISMATCH isa=%s route=%s t=%lld k=%lld n=%lld sparsity=%.2f quant=%d edge=%d/%d at "
                            "[%lld,%lld]: got %.7g want %.7g\n",
                            isa_name(isa), q8_route_name(isa), (long long)c.t, (long long)c.k, (long long)c.n,
                            c.sparsity, c.quant, c.weight_edge, c.x_edge, (long long)t, (long long)n, got, want);
                return false;
            }
        }
    }
    return true;
}

std::vector<float> make_x(const Q8Case& c, std::mt19937& rng) {
    std::uniform_real_distribution<float> u(-3.0f, 5.0f);
    std::vector<float> x(static_cast<size_t>(c.t * c.k));
    for (auto& v : x) v = c.x_edge ? (c.quant == kActQuantStatic ? 0.02f * 155.0f : 2.5f) : u(rng);
    return x;
}

bool run_q8(const Q8Case& c, std::mt19937& rng, Isa isa, int workers) {
    const Q8Weights m = make_q8(c, rng);
    const std::vector<float> x = make_x(c, rng);
    std::vector<float> y(static_cast<size_t>(c.t * c.n), std::nanf(""));
    SpmmProblem p = q8_problem(c, m);
    p.x = x.data();
    p.y = y.data();
    if (const char* err = validate(p, static_cast<int64_t>(m.col_idx.size()))) {
        std::printf("invalid q8 problem: %s\n", err);
        return false;
    }
    std::vector<int32_t> sums(static_cast<size_t>(c.n));
    if (c.n % 2 == 0) {  // both the precomputed and the on-the-fly row sums
        row_sums_of(p, sums.data());
        p.row_sums = sums.data();
    }
    spmm(p, isa, SerialParallel(workers));
    return check_q8(c, m, x, y, isa);
}

// A q8 split output equals the unsplit one; a pair of q8 layers equals two calls.
bool run_q8_split(const Q8Case& c, int parts, std::mt19937& rng, Isa isa, int workers) {
    const Q8Weights m = make_q8(c, rng);
    const std::vector<float> x = make_x(c, rng);
    SpmmProblem p = q8_problem(c, m);
    std::vector<float> whole(static_cast<size_t>(c.t * c.n));
    p.x = x.data();
    p.y = whole.data();
    spmm(p, isa, SerialParallel(workers));
    const int64_t rows = c.n / parts;
    std::vector<std::vector<float>> outs(static_cast<size_t>(parts), std::vector<float>(static_cast<size_t>(c.t * rows)));
    std::vector<float*> ptrs;
    for (auto& o : outs) ptrs.push_back(o.data());
    p.y = nullptr;
    p.y_parts = ptrs.data();
    p.part_rows = rows;
    if (validate(p, static_cast<int64_t>(m.col_idx.size())) != nullptr) return false;
    spmm(p, isa, SerialParallel(workers));
    for (int i = 0; i < parts; ++i)
        for (int64_t t = 0; t < c.t; ++t)
            for (int64_t r = 0; r < rows; ++r)
                if (!(outs[i][t * rows + r] == whole[t * c.n + i * rows + r])) {
                    std::printf("Q8 SPLIT MISMATCH isa=%s t=%lld n=%lld\n", isa_name(isa), (long long)c.t, (long long)c.n);
                    return false;
                }
    return check_q8(c, m, x, whole, isa);
}

bool run_q8_pair(const Q8Case& c1, const Q8Case& c2, std::mt19937& rng, Isa isa, int workers) {
    const Q8Weights m1 = make_q8(c1, rng), m2 = make_q8(c2, rng);
    const std::vector<float> x = make_x(c1, rng);
    std::vector<float> h(static_cast<size_t>(c1.t * c1.n)), want(static_cast<size_t>(c1.t * c2.n)), got(want.size());
    SpmmProblem a = q8_problem(c1, m1), b = q8_problem(c2, m2);
    if (validate(a, static_cast<int64_t>(m1.col_idx.size())) || validate(b, static_cast<int64_t>(m2.col_idx.size())) ||
        validate_pair(a, b))
        return false;
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
    for (size_t i = 0; i < want.size(); ++i)
        if (!(got[i] == want[i])) {
            std::printf("Q8 PAIR MISMATCH isa=%s at %zu\n", isa_name(isa), i);
            return false;
        }
    return check_q8(c1, m1, x, h, isa);
}

// A fused INT8 pair (both layers INT8 compute: quantize, up layer into a transposed FP32 tile, that tile
// quantized per token or statically, down layer) against two spmm calls, on `workers` and at every forced
// tile width: the same bits; with one worker (or enough tokens) the pair must fuse.
bool run_q8_pair_fused(const Q8Case& c1, const Q8Case& c2, std::mt19937& rng, Isa isa, int workers) {
    const Q8Weights m1 = make_q8(c1, rng), m2 = make_q8(c2, rng);
    const std::vector<float> x = make_x(c1, rng);
    std::vector<float> h(static_cast<size_t>(c1.t * c1.n)), want(static_cast<size_t>(c1.t * c2.n));
    SpmmProblem a = q8_problem(c1, m1), b = q8_problem(c2, m2);
    if (validate(a, static_cast<int64_t>(m1.col_idx.size())) || validate(b, static_cast<int64_t>(m2.col_idx.size())) ||
        validate_pair(a, b))
        return false;
    // (on avx2 a layer whose weights fit 7 bits takes 8-bit activations: a pair mixing the two runs unfused)
    if (workers == 1 && q8_levels_for(a, isa) == q8_levels_for(b, isa) && !pair_fuses(a, b, isa, 1)) {
        std::printf("Q8 PAIR NOT FUSED isa=%s t=%lld on one worker\n", isa_name(isa), (long long)c1.t);
        return false;
    }
    a.x = x.data();
    a.y = h.data();
    b.x = h.data();
    b.y = want.data();
    spmm(a, isa, SerialParallel(1));
    spmm(b, isa, SerialParallel(1));
    a.y = nullptr;
    b.x = nullptr;
    for (int tile : {0, 16, 32, 64}) {
        set_tile_tokens(tile);
        std::vector<float> got(want.size(), std::nanf(""));
        b.y = got.data();
        spmm_pair(a, b, isa, SerialParallel(workers));
        set_tile_tokens(0);
        for (size_t i = 0; i < want.size(); ++i)
            if (!(got[i] == want[i])) {
                std::printf("Q8 FUSED PAIR MISMATCH isa=%s t=%lld k=%lld h=%lld n=%lld quant=%d/%d workers=%d "
                            "fused=%d tile=%d at %zu: got %.9g want %.9g\n",
                            isa_name(isa), (long long)c1.t, (long long)c1.k, (long long)c1.n, (long long)c2.n,
                            c1.quant, c2.quant, workers, int(pair_fuses(a, b, isa, workers)), tile, i, got[i],
                            want[i]);
                return false;
            }
    }
    return true;
}

// ---- 4 x 1 FP32 blocks -----------------------------------------------------------------------------

struct Rows4 {
    std::vector<int32_t> row_ptr, col_idx;
    std::vector<float> values, bias;
};

Rows4 make_rows4(int64_t k, int64_t n, double sparsity, std::mt19937& rng) {
    Rows4 m;
    std::uniform_real_distribution<float> u(-1.0f, 1.0f), keep(0.0f, 1.0f);
    m.row_ptr.push_back(0);
    for (int64_t rb = 0; rb < n / 4; ++rb) {
        for (int64_t col = 0; col < k; ++col) {
            if (rb % 4 == 2 || keep(rng) < sparsity) continue;  // some row blocks empty
            m.col_idx.push_back(static_cast<int32_t>(col));
            for (int r = 0; r < 4; ++r) m.values.push_back(u(rng));
        }
        m.row_ptr.push_back(static_cast<int32_t>(m.col_idx.size()));
    }
    for (int64_t i = 0; i < n; ++i) m.bias.push_back(u(rng));
    return m;
}

SpmmProblem rows4_problem(int64_t t, int64_t k, int64_t n, const Rows4& m, bool bias, int activation) {
    SpmmProblem p;
    p.tokens = t;
    p.in_features = k;
    p.out_features = n;
    p.row_ptr = m.row_ptr.data();
    p.col_idx = m.col_idx.data();
    p.values_f32 = m.values.data();
    p.bias = bias ? m.bias.data() : nullptr;
    p.block = 1;
    p.block_rows = 4;
    p.activation = activation;
    return p;
}

bool run_rows4(int64_t t, int64_t k, int64_t n, double sparsity, bool bias, int activation, std::mt19937& rng, Isa isa,
               int workers) {
    const Rows4 m = make_rows4(k, n, sparsity, rng);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(t * k)), y(static_cast<size_t>(t * n), std::nanf(""));
    for (auto& v : x) v = u(rng);
    SpmmProblem p = rows4_problem(t, k, n, m, bias, activation);
    p.x = x.data();
    p.y = y.data();
    if (const char* err = validate(p, static_cast<int64_t>(m.col_idx.size()))) {
        std::printf("invalid 4x1 problem: %s\n", err);
        return false;
    }
    spmm(p, isa, SerialParallel(workers));
    for (int64_t tt = 0; tt < t; ++tt)
        for (int64_t row = 0; row < n; ++row) {
            double acc = 0.0, mag = 0.0;
            const int64_t rb = row / 4, r = row % 4;
            for (int32_t j = m.row_ptr[rb]; j < m.row_ptr[rb + 1]; ++j) {
                const double term = double(m.values[static_cast<size_t>(j) * 4 + r]) * x[tt * k + m.col_idx[j]];
                acc += term;
                mag += std::fabs(term);
            }
            if (bias) acc += m.bias[row];
            if (activation == kActivationGeluErf) {
                acc = gelu(acc);
                mag += 1.0;
            }
            const double got = y[tt * n + row];
            if (!(std::fabs(got - acc) <= 1e-5 * mag + 1e-6)) {
                std::printf("4x1 MISMATCH isa=%s t=%lld k=%lld n=%lld at [%lld,%lld]: got %.7g want %.7g\n",
                            isa_name(isa), (long long)t, (long long)k, (long long)n, (long long)tt, (long long)row,
                            got, acc);
                return false;
            }
        }
    return true;
}

// A fused pair whose first layer is 4 x 1 against two separate calls (same bits).
bool run_rows4_pair(int64_t t, int64_t k, int64_t h, std::mt19937& rng, Isa isa, int workers) {
    const Rows4 m1 = make_rows4(k, h, 0.7, rng), m2 = make_rows4(h, 8, 0.5, rng);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(t * k)), mid(static_cast<size_t>(t * h)), want(static_cast<size_t>(t * 8));
    std::vector<float> got(want.size());
    for (auto& v : x) v = u(rng);
    SpmmProblem a = rows4_problem(t, k, h, m1, true, kActivationGeluErf), b = rows4_problem(t, h, 8, m2, true, 0);
    a.x = x.data();
    a.y = mid.data();
    b.x = mid.data();
    b.y = want.data();
    spmm(a, isa, SerialParallel(workers));
    spmm(b, isa, SerialParallel(workers));
    b.y = got.data();
    spmm_pair(a, b, isa, SerialParallel(workers));
    for (size_t i = 0; i < want.size(); ++i)
        if (!(got[i] == want[i])) {
            std::printf("4x1 PAIR MISMATCH isa=%s t=%lld at %zu\n", isa_name(isa), (long long)t, i);
            return false;
        }
    return true;
}

// `p` (y left unset) on 1 worker and on `workers` (tokens split at multiples of the lanes), and with every
// forced tile width: the same bits (INT8 compute: per-token quantization, int32 sums; 4 x 1: one FMA chain
// per output).
bool same_bits_across_workers(SpmmProblem p, Isa isa, int workers, const char* what) {
    std::vector<float> one(static_cast<size_t>(p.tokens * p.out_features)), many(one.size(), std::nanf(""));
    p.y = one.data();
    spmm(p, isa, SerialParallel(1));
    for (int tile : {0, 16, 32, 64}) {
        set_tile_tokens(tile);
        p.y = many.data();
        spmm(p, isa, SerialParallel(workers));
        set_tile_tokens(0);
        for (size_t i = 0; i < one.size(); ++i)
            if (!(one[i] == many[i])) {
                std::printf("%s THREAD SPLIT MISMATCH isa=%s t=%lld k=%lld n=%lld workers=%d tile=%d at %zu\n", what,
                            isa_name(isa), (long long)p.tokens, (long long)p.in_features, (long long)p.out_features,
                            workers, tile, i);
                return false;
            }
    }
    return true;
}

bool run_ext_thread_split(int64_t t, int64_t k, int64_t n, std::mt19937& rng, Isa isa, int workers) {
    const Q8Case c{t, k, n, 0.5, true, kActivationGeluErf, kActQuantDynamic};
    const Q8Weights m = make_q8(c, rng);
    const std::vector<float> x = make_x(c, rng);
    SpmmProblem p = q8_problem(c, m);
    p.x = x.data();
    bool ok = same_bits_across_workers(p, isa, workers, "Q8");
    const Rows4 r = make_rows4(k, 4 * n, 0.5, rng);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> xr(static_cast<size_t>(t * k));
    for (auto& v : xr) v = u(rng);
    SpmmProblem q = rows4_problem(t, k, 4 * n, r, true, kActivationGeluErf);
    q.x = xr.data();
    return same_bits_across_workers(q, isa, workers, "4x1") && ok;
}

// The token split the FP32 and INT8-compute paths share: as even as the lanes allow (100 tokens on 2
// threads: 48 + 52 on 8 and on 16 lanes, where whole 64-token tiles would give 64 + 36), every token once.
int token_plan_checks() {
    int failures = 0;
    for (int lanes : {8, 16}) {
        const TokenPlan plan(100, lanes, 64, 2);
        if (plan.token_groups != 2 || plan.begin(0) != 0 || plan.begin(1) != 48 || plan.end(1) != 100) {
            std::printf("TOKEN PLAN lanes=%d: groups %lld, second range from %lld\n", lanes,
                        (long long)plan.token_groups, (long long)plan.begin(1));
            ++failures;
        }
    }
    for (int64_t tokens : {1, 7, 17, 129, 200})
        for (int threads = 1; threads <= 6; ++threads) {
            const TokenPlan plan(tokens, 8, 32, threads);
            int64_t covered = 0;
            for (int64_t g = 0; g < plan.token_groups; ++g) covered += plan.end(g) - plan.begin(g);
            if (covered != tokens || plan.token_groups * plan.row_groups != threads) {
                std::printf("TOKEN PLAN tokens=%lld threads=%d covers %lld\n", (long long)tokens, threads,
                            (long long)covered);
                ++failures;
            }
        }
    return failures;
}

// Malformed problems: each must be refused by validate().
int refusals() {
    int failures = 0;
    const int32_t row_ptr1[] = {0, 1};
    const int8_t vi[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const float scales[] = {1.0f}, vf[8] = {};
    auto expect_refused = [&](const SpmmProblem& p, int64_t n_blocks, const char* what) {
        if (validate(p, n_blocks) == nullptr) {
            std::printf("accepted: %s\n", what);
            ++failures;
        }
    };
    SpmmProblem base;
    base.in_features = 8;
    base.out_features = 1;
    base.row_ptr = row_ptr1;
    base.int8 = true;
    base.values_i8 = vi;
    base.scales = scales;
    base.block = 4;
    base.act_quant = kActQuantDynamic;
    const int32_t misaligned[] = {2}, outside[] = {8}, negative[] = {-4}, ok[] = {4};
    SpmmProblem p = base;
    p.col_idx = ok;
    if (const char* err = validate(p, 1)) {
        std::printf("refused a valid problem: %s\n", err);
        ++failures;
    }
    p.col_idx = misaligned;
    expect_refused(p, 1, "a column not 4-aligned");
    p.col_idx = outside;
    expect_refused(p, 1, "a column past in_features");
    p.col_idx = negative;
    expect_refused(p, 1, "a negative column");
    p = base;
    p.col_idx = ok;
    p.block = 2;
    expect_refused(p, 1, "INT8 compute with block 2");
    p = base;
    p.col_idx = ok;
    p.int8 = false;
    p.values_f32 = vf;
    expect_refused(p, 1, "INT8 compute with FP32 values");
    p = base;
    p.col_idx = ok;
    p.act_quant = kActQuantStatic;
    p.act_scale = 0.0f;
    expect_refused(p, 1, "a static scale of 0");
    p.act_scale = 1.0f;
    p.act_zero_point = 256;
    expect_refused(p, 1, "a zero point of 256");
    p.act_zero_point = 0;
    p.act_scale = std::nanf("");
    expect_refused(p, 1, "a NaN static scale");
    p = base;
    p.col_idx = ok;
    p.act_quant = 7;
    expect_refused(p, 1, "an unknown quantization mode");
    p = base;
    p.col_idx = ok;
    p.scales = nullptr;
    expect_refused(p, 1, "INT8 compute without scales");
    p = base;
    p.col_idx = ok;
    p.in_features = 70000;
    expect_refused(p, 1, "INT8 compute over 65536 inputs");
    const int32_t bad_end[] = {0, 2};
    p = base;
    p.col_idx = ok;
    p.row_ptr = bad_end;
    expect_refused(p, 1, "row_ptr ending past the blocks");
    // 4 x 1
    const int32_t rp4[] = {0, 1, 1};
    SpmmProblem r4;
    r4.in_features = 8;
    r4.out_features = 8;
    r4.row_ptr = rp4;
    r4.col_idx = ok;
    r4.values_f32 = vf;
    r4.block_rows = 4;
    if (const char* err = validate(r4, 1)) {
        std::printf("refused a valid 4x1 problem: %s\n", err);
        ++failures;
    }
    SpmmProblem q = r4;
    q.out_features = 6;
    expect_refused(q, 1, "4x1 with out_features 6");
    q = r4;
    q.col_idx = outside;
    expect_refused(q, 1, "4x1 column past in_features");
    q = r4;
    q.block = 2;
    expect_refused(q, 1, "4x1 with block 2");
    q = r4;
    q.int8 = true;
    q.values_i8 = vi;
    q.scales = scales;
    expect_refused(q, 1, "4x1 with INT8 values");
    q = r4;
    q.act_quant = kActQuantDynamic;
    expect_refused(q, 1, "4x1 with INT8 compute");
    q = r4;
    q.block_rows = 2;
    expect_refused(q, 1, "block_rows 2");
    return failures;
}

}  // namespace

// Returns the number of failures; adds the number of runs to *runs.
int run_extended_tests(int cases, const std::vector<Isa>& isas, int* runs) {
    std::mt19937 rng(4321);
    int failures = refusals() + token_plan_checks();
    const int64_t ts[] = {1, 3, 8, 17, 64, 65, 129, 200};
    const int64_t ks[] = {1, 4, 5, 13, 20, 36, 64, 100, 257, 600};
    constexpr unsigned kKs = sizeof(ks) / sizeof(ks[0]);
    const int64_t ns[] = {1, 7, 8, 9, 33};
    const double sparsities[] = {0.0, 0.5, 0.9, 0.99, 1.0};
    for (int i = 0; i < cases; ++i) {
        Q8Case c{ts[rng() % 8], ks[rng() % kKs], ns[rng() % 5], sparsities[rng() % 5], rng() % 3 != 0,
                 static_cast<int>(rng() % 2), rng() % 3 == 0 ? kActQuantStatic : kActQuantDynamic};
        const int workers = 1 + static_cast<int>(rng() % 3);
        for (Isa isa : isas) {
            std::mt19937 local(static_cast<unsigned>(i));
            failures += run_q8(c, local, isa, workers) ? 0 : 1;
            ++*runs;
        }
    }
    // Edge values: the largest activation times the largest / most negative weight, dense rows.
    for (int quant : {kActQuantDynamic, kActQuantStatic})
        for (int edge : {1, 2, 3, 4, 5})
            for (int64_t k : {4, 257, 1024})
                for (Isa isa : isas) {
                    std::mt19937 local(static_cast<unsigned>(k + edge));
                    failures += run_q8({33, k, 16, 0.0, true, kActivationNone, quant, edge, 1}, local, isa, 2) ? 0 : 1;
                    ++*runs;
                }
    for (int i = 0; i < cases / 6 + 1; ++i) {
        const int parts = 1 + static_cast<int>(rng() % 3);
        Q8Case c{ts[rng() % 8], ks[rng() % kKs], int64_t(parts) * (16 << (rng() % 2)), sparsities[rng() % 5], true,
                 static_cast<int>(rng() % 2), kActQuantDynamic};
        Q8Case c2{c.t, c.n, ns[rng() % 5], 0.5, true, kActivationNone, kActQuantStatic};
        const int workers = 1 + static_cast<int>(rng() % 3);
        for (Isa isa : isas) {
            std::mt19937 local(static_cast<unsigned>(7000 + i));
            failures += run_q8_split(c, parts, local, isa, workers) ? 0 : 1;
            failures += run_q8_pair(c, c2, local, isa, workers) ? 0 : 1;
            *runs += 2;
        }
    }
    // Fused INT8 pairs: every pair of quantization modes, GELU or not between, hidden sizes off the quads.
    const int64_t hs[] = {1, 5, 16, 36, 100, 257};
    for (int i = 0; i < cases / 3 + 1; ++i) {
        const int64_t h = hs[rng() % 6];
        Q8Case c1{ts[rng() % 8], ks[rng() % kKs], h, sparsities[rng() % 5], rng() % 3 != 0,
                  static_cast<int>(rng() % 2), rng() % 2 == 0 ? kActQuantStatic : kActQuantDynamic};
        Q8Case c2{c1.t, h, ns[rng() % 5], sparsities[rng() % 4], rng() % 2 == 0, kActivationNone,
                  rng() % 2 == 0 ? kActQuantStatic : kActQuantDynamic};
        const int workers = 1 + static_cast<int>(rng() % 3);
        for (Isa isa : isas) {
            std::mt19937 local(static_cast<unsigned>(8000 + i));
            failures += run_q8_pair_fused(c1, c2, local, isa, workers) ? 0 : 1;
            ++*runs;
        }
    }
    for (int i = 0; i < cases / 2 + 1; ++i) {
        const int64_t t = ts[rng() % 8], k = ks[rng() % kKs], n = 4 * (1 + int64_t(rng() % 12));
        const double s = sparsities[rng() % 5];
        const bool bias = rng() % 2 == 0;
        const int act = static_cast<int>(rng() % 2), workers = 1 + static_cast<int>(rng() % 3);
        for (Isa isa : isas) {
            std::mt19937 local(static_cast<unsigned>(9000 + i));
            failures += run_rows4(t, k, n, s, bias, act, local, isa, workers) ? 0 : 1;
            failures += run_rows4_pair(t, k, 4 * n, local, isa, workers) ? 0 : 1;
            *runs += 2;
        }
    }
    for (int i = 0; i < cases / 10 + 1; ++i) {
        const int64_t t = 1 + int64_t(rng() % 200), k = ks[rng() % kKs], n = 4 * (1 + int64_t(rng() % 12));
        const int workers = 2 + static_cast<int>(rng() % 5);
        for (Isa isa : isas) {
            std::mt19937 local(static_cast<unsigned>(11000 + i));
            failures += run_ext_thread_split(t, k, n, local, isa, workers) ? 0 : 1;
            ++*runs;
        }
    }
    return failures;
}
