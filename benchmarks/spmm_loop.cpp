// The sparse kernel's inner loop alone, outside OpenVINO: pruneofa::spmm on random CSR matrices of the
// BERT Linear shapes, fastest of N calls (robust to a shared machine). Built and run by
// benchmarks/spmm_loop.sh; used for the tuning notes in docs/kernels.md ("Tuning").
// Usage: spmm_loop [threads=1] [sparsity=0.9] [tokens=128] [isa=avx512]
// Environment: ZEROCOL=m maps every column index to (column mod m): m = 1 keeps the activation rows the
// loop reads in L1, which separates loop cost from cache misses. PRUNEOFA_KERNELS_TILE as for the op.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>
#include <algorithm>
#include "spmm.hpp"
using namespace pruneofa;
class ThreadsParallel final : public Parallel {
public:
    explicit ThreadsParallel(int n) : n_(n) {}
    int concurrency() const override { return n_; }
    void run(int64_t n, const std::function<void(int64_t)>& body) const override {
        std::vector<std::thread> th;
        for (int w = 1; w < n_; ++w) th.emplace_back([&, w] { for (int64_t i = w; i < n; i += n_) body(i); });
        for (int64_t i = 0; i < n; i += n_) body(i);
        for (auto& t : th) t.join();
    }
private:
    int n_;
};
int main(int argc, char** argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    double sp = argc > 2 ? atof(argv[2]) : 0.9;
    int64_t T = argc > 3 ? atoll(argv[3]) : 128;
    const char* isan = argc > 4 ? argv[4] : "avx512";
    Isa isa; parse_isa(isan, &isa);
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1, 1);
    int64_t shapes[][2] = {{384, 384}, {384, 1536}, {1536, 384}, {768, 768}, {768, 3072}, {3072, 768}};
    double total = 0;
    for (auto& s : shapes) {
        int64_t K = s[0], N = s[1];
        std::vector<int32_t> rp{0}, ci; std::vector<float> vf, bias(N);
        for (int64_t n = 0; n < N; ++n) { for (int64_t k = 0; k < K; ++k) if (u(rng) * 0.5f + 0.5f >= sp) { ci.push_back(k); vf.push_back(u(rng)); } rp.push_back(ci.size()); bias[n] = u(rng); }
        if (getenv("ZEROCOL") && atoi(getenv("ZEROCOL")) > 0) for (auto& c : ci) c = c % atoi(getenv("ZEROCOL"));
        std::vector<float> x(T * K), y(T * N);
        for (auto& v : x) v = u(rng);
        SpmmProblem p; p.x = x.data(); p.y = y.data(); p.tokens = T; p.in_features = K; p.out_features = N;
        p.row_ptr = rp.data(); p.col_idx = ci.data(); p.values_f32 = vf.data(); p.bias = bias.data(); p.block = 1;
        ThreadsParallel tp(threads); SerialParallel sp1(1);
        const Parallel& par = threads > 1 ? (const Parallel&)tp : (const Parallel&)sp1;
        double best = 1e9;
        int reps = std::max<int64_t>(5, 200000000 / (ci.size() * T + 1));
        for (int r = 0; r < reps; ++r) {
            auto t0 = std::chrono::steady_clock::now();
            spmm(p, isa, par);
            double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
            best = std::min(best, us);
        }
        double vfma = double(ci.size()) * T / 16.0;
        if (K <= 1536 && N <= 1536) total += best;
        printf("%5lld->%-5lld T=%lld nnz=%zu  %8.1f us  %.2f GvFMA/s(16-lane)\n", (long long)K, (long long)N, (long long)T, ci.size(), best, vfma / best / 1e3);
    }
    printf("MiniLM layer set (1x each): %.1f us\n", total);
}
