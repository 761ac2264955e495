// `Parallel` over the TBB arena the caller runs in. OpenVINO's CPU plugin calls evaluate() inside its
// per-stream arena, so INFERENCE_NUM_THREADS and NUM_STREAMS hold for the kernel too (OpenMP would
// compete with those threads instead).
#pragma once

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include "spmm.hpp"

namespace pruneofa {

class ArenaParallel final : public Parallel {
public:
    int concurrency() const override { return tbb::this_task_arena::max_concurrency(); }
    void run(int64_t n, const std::function<void(int64_t)>& body) const override {
        if (n <= 1) {
            if (n == 1) body(0);
            return;
        }
        tbb::parallel_for(
            tbb::blocked_range<int64_t>(0, n, 1),
            [&](const tbb::blocked_range<int64_t>& r) {
                for (int64_t i = r.begin(); i != r.end(); ++i) body(i);
            },
            tbb::static_partitioner());
    }
};

}  // namespace pruneofa
