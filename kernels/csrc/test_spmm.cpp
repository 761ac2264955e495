// Standalone check of every ISA path this CPU runs against a naive reference on random problems:
// shapes that straddle tiles and row groups, 0-100 % sparsity, empty rows, blocks, INT8 values.
// No OpenVINO or TBB here, so it builds in seconds with -fsanitize=address,undefined.
// Usage: test_spmm [cases]   (exit status 0 when every case matches)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "layer_layout.hpp"
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
                        int(pair_fuses(a, b, isa, workers)), i, got[i], want[i]);
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
    auto run = [&](const char* what) {
        if (const char* err = validate(p, static_cast<int64_t>(m.col_idx.size()))) {
            std::printf("invalid %s: %s\n", what, err);
            return false;
        }
        spmm(p, isa, SerialParallel(workers));
        return true;
    };
    if (!run("split problem")) return false;
    for (int i = 0; i < parts; ++i)
        for (int64_t t = 0; t < c.t; ++t)
            for (int64_t r = 0; r < rows; ++r)
                if (!(outs[i][t * rows + r] == whole[t * c.n + i * rows + r])) {
                    std::printf("SPLIT MISMATCH isa=%s t=%lld n=%lld parts=%d\n", isa_name(isa), (long long)c.t,
                                (long long)c.n, parts);
                    return false;
                }
    // The same parts in attention's heads' layout, [batch][heads][seq][head_dim], with sequences that end
    // inside a token tile: every value where the Reshape + Transpose(0, 2, 1, 3) would have put it.
    const int64_t d = c.t % 3 == 0 ? 8 : (c.t % 3 == 1 ? 16 : rows), heads = rows / d;  // 8: half a group
    for (const int64_t seq : {c.t, int64_t(1), c.t % 3 == 0 ? c.t / 3 : c.t}) {
        for (auto& o : outs) std::fill(o.begin(), o.end(), std::nanf(""));
        p.head_dim = d;
        p.seq_len = seq;
        if (!run("heads' layout")) return false;
        for (int i = 0; i < parts; ++i)
            for (int64_t t = 0; t < c.t; ++t)
                for (int64_t r = 0; r < rows; ++r) {
                    const int64_t b = t / seq, s = t % seq, h = r / d, j = r % d;
                    if (!(outs[i][((b * heads + h) * seq + s) * d + j] == whole[t * c.n + i * rows + r])) {
                        std::printf("HEADS MISMATCH isa=%s t=%lld n=%lld parts=%d seq=%lld\n", isa_name(isa),
                                    (long long)c.t, (long long)c.n, parts, (long long)seq);
                        return false;
                    }
                }
    }
    return true;
}

// The layout check the ops run when a model is read (layer_layout.hpp), on the tampered constants of the
// crafted-IR classes (tests/kernels/test_crafted_ir.py has the same classes as IR files): each must be
// refused with a message, and the untampered layout accepted. Then the boundary case col_idx + block == K
// runs through every ISA under the sanitizers (the last valid column is read, nothing past it).
int crafted_layouts(const std::vector<Isa>& isas) {
    std::mt19937 rng(77);
    const Case c{20, 40, 33, 4, 0.5, true, true};
    const Csr m = make(c, rng);
    auto layout_of = [&](const Csr& x) {
        LayerLayout l;
        l.in_features = c.k;
        l.out_features = c.n;
        l.block = c.block;
        l.has_bias = true;
        l.int8 = true;
        l.row_ptr = x.row_ptr.data();
        l.row_ptr_size = static_cast<int64_t>(x.row_ptr.size());
        l.col_idx = x.col_idx.data();
        l.col_idx_size = static_cast<int64_t>(x.col_idx.size());
        l.values_size = static_cast<int64_t>(x.vi.size());
        l.scales_size = static_cast<int64_t>(x.scales.size());
        l.bias_size = static_cast<int64_t>(x.bias.size());
        return l;
    };
    int failures = 0;
    if (!check_layout(layout_of(m)).empty()) {
        std::printf("CRAFTED: the sound layout was refused: %s\n", check_layout(layout_of(m)).c_str());
        ++failures;
    }
    struct Tamper {
        const char* name;
        void (*apply)(Csr&, LayerLayout&);
    };
    const Tamper tampers[] = {
        {"row_ptr not monotonic", [](Csr& x, LayerLayout&) { x.row_ptr[1] = x.row_ptr.back(); }},
        {"row_ptr[0] not 0", [](Csr& x, LayerLayout&) { x.row_ptr[0] = 1; }},
        {"row_ptr ends past the blocks", [](Csr& x, LayerLayout&) { x.row_ptr.back() += 5; }},
        {"col_idx = in_features", [](Csr& x, LayerLayout& l) { x.col_idx[x.col_idx.size() / 2] = int32_t(l.in_features); }},
        {"col_idx + block > in_features", [](Csr& x, LayerLayout& l) { x.col_idx[0] = int32_t(l.in_features - l.block + 1); }},
        {"col_idx negative", [](Csr& x, LayerLayout&) { x.col_idx[0] = -1; }},
        {"col_idx huge", [](Csr& x, LayerLayout&) { x.col_idx[0] = INT32_MAX; }},
        {"short row_ptr", [](Csr&, LayerLayout& l) { l.row_ptr_size -= 1; }},
        {"short col_idx", [](Csr&, LayerLayout& l) { l.col_idx_size -= 1; }},
        {"short values", [](Csr&, LayerLayout& l) { l.values_size -= 1; }},
        {"1-entry bias", [](Csr&, LayerLayout& l) { l.bias_size = 1; }},
        {"1-entry bias for 4M outputs", [](Csr&, LayerLayout& l) { l.out_features = 4 << 20; l.bias_size = 1; }},
        {"no bias with has_bias", [](Csr&, LayerLayout& l) { l.bias_size = -1; }},
        {"short scales", [](Csr&, LayerLayout& l) { l.scales_size -= 1; }},
        {"block 3", [](Csr&, LayerLayout& l) { l.block = 3; }},
        {"block 16", [](Csr&, LayerLayout& l) { l.block = 16; }},
        {"in_features 0", [](Csr&, LayerLayout& l) { l.in_features = 0; }},
        {"in_features negative", [](Csr&, LayerLayout& l) { l.in_features = -8; }},
        {"out_features 2^62", [](Csr&, LayerLayout& l) { l.out_features = int64_t(1) << 62; }},
    };
    for (const Tamper& t : tampers) {
        Csr x = m;
        LayerLayout l = layout_of(x);
        t.apply(x, l);
        l.row_ptr = x.row_ptr.data();  // the copy's (possibly tampered) arrays
        l.col_idx = x.col_idx.data();
        if (check_layout(l).empty()) {
            std::printf("CRAFTED: %s was accepted\n", t.name);
            ++failures;
        }
    }
    const int64_t bad_splits[][2] = {{96, 5}, {96, 0}, {96, 17}, {48, 2}};
    for (const auto& split : bad_splits)
        if (check_split(split[0], split[1]).empty()) {
            std::printf("CRAFTED: a split of %lld rows in %lld parts was accepted\n", (long long)split[0],
                        (long long)split[1]);
            ++failures;
        }
    if (!check_split(96, 3).empty() || !check_split(48, 1).empty()) {
        std::printf("CRAFTED: a sound split was refused\n");
        ++failures;
    }
    const int64_t bad_heads[][2] = {{48, 20}, {48, 32}, {48, -16}, {32, 64}};
    for (const auto& heads : bad_heads)
        if (check_heads(heads[0], heads[1]).empty()) {
            std::printf("CRAFTED: head_dim %lld for parts of %lld rows was accepted\n", (long long)heads[1],
                        (long long)heads[0]);
            ++failures;
        }
    if (!check_heads(48, 16).empty() || !check_heads(64, 64).empty() || !check_heads(48, 0).empty() ||
        !check_heads(32, 8).empty() || !check_heads(48, 24).empty()) {
        std::printf("CRAFTED: a sound head_dim was refused\n");
        ++failures;
    }
    // The last valid column of every row in use: read exactly up to in_features.
    Csr edge = m;
    for (auto& col : edge.col_idx) col = int32_t(c.k - c.block);
    if (!check_layout(layout_of(edge)).empty()) {
        std::printf("CRAFTED: col_idx + block == in_features was refused\n");
        ++failures;
    }
    std::vector<float> x(static_cast<size_t>(c.t * c.k), 1.0f), y(static_cast<size_t>(c.t * c.n));
    for (Isa isa : isas) {
        SpmmProblem p = problem_of(c, edge);
        p.x = x.data();
        p.y = y.data();
        if (validate(p, static_cast<int64_t>(edge.col_idx.size())) != nullptr) {
            std::printf("CRAFTED: validate refused the edge layout\n");
            ++failures;
        }
        spmm(p, isa, SerialParallel(2));
    }
    return failures;
}

// The compute attributes (layer_layout.hpp check_compute): a sound INT8 1 x 4 and a sound 4 x 1 layout are
// accepted, and each tampered attribute or length refused (the same classes as test_crafted_ir.py's).
int crafted_compute_layouts() {
    int failures = 0;
    const int32_t q8_rows[] = {0, 1, 2}, q8_cols[] = {0, 4}, r4_rows[] = {0, 1, 1}, r4_cols[] = {3};
    LayerLayout q8;
    q8.in_features = 8;
    q8.out_features = 2;
    q8.block = 4;
    q8.int8 = true;
    q8.compute.activation_quant = "dynamic";
    q8.row_ptr = q8_rows;
    q8.row_ptr_size = 3;
    q8.col_idx = q8_cols;
    q8.col_idx_size = 2;
    q8.values_size = 8;
    q8.scales_size = 2;
    LayerLayout r4;
    r4.in_features = 8;
    r4.out_features = 8;
    r4.compute.block_rows = 4;
    r4.row_ptr = r4_rows;
    r4.row_ptr_size = 3;
    r4.col_idx = r4_cols;
    r4.col_idx_size = 1;
    r4.values_size = 4;
    LayerLayout q8_static = q8, q8_padded = q8;
    q8_static.compute.activation_quant = "static";
    q8_static.compute.activation_scale = 0.05f;
    q8_static.compute.activation_zero_point = 255;
    q8_padded.in_features = 6;  // the last block runs past K (zero-padded): allowed for INT8 compute
    static const float factors[8] = {1.0f, 2.0f, 0.5f, 1.0f, 3.0f, 1.0f, 0.25f, 1.0f};
    static const float nan_factors[8] = {1.0f, 1.0f, 1.0f, NAN, 1.0f, 1.0f, 1.0f, 1.0f};
    LayerLayout q8_scaled = q8_static;  // SmoothQuant's per-input factors folded (input_scale)
    q8_scaled.compute.input_scale = true;
    q8_scaled.input_scale = factors;
    q8_scaled.input_scale_size = 8;
    for (const LayerLayout* sound : {&q8, &q8_static, &q8_padded, &r4, &q8_scaled})
        if (!check_layout(*sound).empty()) {
            std::printf("CRAFTED: a sound compute layout was refused: %s\n", check_layout(*sound).c_str());
            ++failures;
        }
    struct Tamper {
        const char* name;
        const LayerLayout* base;
        void (*apply)(LayerLayout&);
    };
    static const int32_t misaligned[] = {0, 2};
    const Tamper tampers[] = {
        {"4x1 with an N + 1 row_ptr", &r4, [](LayerLayout& l) { l.row_ptr_size = l.out_features + 1; }},
        {"4x1 with out_features 6", &r4, [](LayerLayout& l) { l.out_features = 6; }},
        {"4x1 with 1 value per block", &r4, [](LayerLayout& l) { l.values_size = 1; }},
        {"4x1 with INT8 compute", &r4, [](LayerLayout& l) { l.compute.activation_quant = "dynamic"; }},
        {"4x1 with block 2", &r4, [](LayerLayout& l) { l.block = 2; }},
        {"block_rows 2", &r4, [](LayerLayout& l) { l.compute.block_rows = 2; }},
        {"activation_quant fast", &q8, [](LayerLayout& l) { l.compute.activation_quant = "fast"; }},
        {"static scale -1", &q8_static, [](LayerLayout& l) { l.compute.activation_scale = -1.0f; }},
        {"static scale 0", &q8_static, [](LayerLayout& l) { l.compute.activation_scale = 0.0f; }},
        {"static scale NaN", &q8_static, [](LayerLayout& l) { l.compute.activation_scale = std::nanf(""); }},
        {"static scale inf", &q8_static, [](LayerLayout& l) { l.compute.activation_scale = INFINITY; }},
        {"static zero point 300", &q8_static, [](LayerLayout& l) { l.compute.activation_zero_point = 300; }},
        {"static zero point -1", &q8_static, [](LayerLayout& l) { l.compute.activation_zero_point = -1; }},
        {"INT8 compute with block 2", &q8, [](LayerLayout& l) { l.block = 2; l.values_size = 4; }},
        {"INT8 compute on f32 values", &q8, [](LayerLayout& l) { l.int8 = false; l.scales_size = -1; }},
        {"INT8 compute over 65536 inputs", &q8, [](LayerLayout& l) { l.in_features = 70000; }},
        {"INT8 compute column not 4-aligned", &q8, [](LayerLayout& l) { l.col_idx = misaligned; }},
        {"INT8 compute column at K", &q8_padded, [](LayerLayout& l) { l.in_features = 4; }},
        {"input_scale of 7 for 8 inputs", &q8_scaled, [](LayerLayout& l) { l.input_scale_size = 7; }},
        {"input_scale of 9 for 8 inputs", &q8_scaled, [](LayerLayout& l) { l.input_scale_size = 9; }},
        {"input_scale missing", &q8_scaled, [](LayerLayout& l) { l.input_scale_size = -1; }},
        {"input_scale with a NaN", &q8_scaled, [](LayerLayout& l) { l.input_scale = nan_factors; }},
        {"input_scale on dynamic compute", &q8_scaled, [](LayerLayout& l) { l.compute.activation_quant = "dynamic"; }},
        {"input_scale input without the flag", &q8_scaled, [](LayerLayout& l) { l.compute.input_scale = false; }},
    };
    for (const Tamper& t : tampers) {
        LayerLayout l = *t.base;
        t.apply(l);
        if (check_layout(l).empty()) {
            std::printf("CRAFTED: %s was accepted\n", t.name);
            ++failures;
        }
    }
    return failures;
}

// The same problem on 1 worker and on `workers` (tokens split between them at multiples of the lanes),
// and with every tile width: the same bits.
bool run_thread_split(const Case& c, std::mt19937& rng, Isa isa, int workers) {
    const Csr m = make(c, rng);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(c.t * c.k));
    for (auto& v : x) v = u(rng);
    std::vector<float> one(static_cast<size_t>(c.t * c.n)), many(one.size(), std::nanf(""));
    SpmmProblem p = problem_of(c, m);
    p.x = x.data();
    p.y = one.data();
    spmm(p, isa, SerialParallel(1));
    for (int tile : {0, 16, 32, 64}) {
        set_tile_tokens(tile);
        p.y = many.data();
        spmm(p, isa, SerialParallel(workers));
        for (size_t i = 0; i < one.size(); ++i)
            if (!(one[i] == many[i])) {
                std::printf("THREAD SPLIT MISMATCH isa=%s t=%lld k=%lld n=%lld workers=%d tile=%d at %zu\n",
                            isa_name(isa), (long long)c.t, (long long)c.k, (long long)c.n, workers, tile, i);
                set_tile_tokens(0);
                return false;
            }
    }
    set_tile_tokens(0);
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
    // Outputs independent of the thread count and tile width (tokens 1..200, 2..6 workers).
    for (int i = 0; i < cases / 5 + 1; ++i) {
        Case c{ts[rng() % 8], ks[rng() % 6], ns[rng() % 5], blocks[rng() % 4], sparsities[rng() % 4],
               rng() % 2 == 0, rng() % 3 != 0, static_cast<int>(rng() % 2)};
        c.t = 1 + static_cast<int64_t>(rng() % 200);
        const int workers = 2 + static_cast<int>(rng() % 5);
        for (Isa isa : isas) {
            std::mt19937 local(static_cast<unsigned>(9000 + i));
            failures += run_thread_split(c, local, isa, workers) ? 0 : 1;
            ++run;
        }
    }
    failures += crafted_layouts(isas);
    failures += crafted_compute_layouts();
    failures += run_extended_tests(cases, isas, &run);  // INT8 compute, 4 x 1 blocks
    std::printf("test_spmm: %d runs over ISAs:", run);
    for (Isa isa : isas) std::printf(" %s (int8: %s)", isa_name(isa), q8_route_name(isa));
    std::printf("; %d failures\n", failures);
    return failures == 0 ? 0 : 1;
}
