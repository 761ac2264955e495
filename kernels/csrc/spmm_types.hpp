// Plain data shared by the dispatcher and the per-ISA translation units.
//
// The per-ISA files (spmm_avx2.cpp, spmm_avx512.cpp, spmm_scalar.cpp) are compiled with different target
// flags, so they include this header only: no standard-library templates, whose out-of-line copies the
// linker could pick from an AVX-512 object for a baseline caller.
#pragma once

#include <cstdint>

namespace pruneofa {

struct SpmmProblem {
    const float* x = nullptr;  // [tokens, in_features], row-major
    float* y = nullptr;        // [tokens, out_features], row-major
    int64_t tokens = 0;
    int64_t in_features = 0;
    int64_t out_features = 0;
    const int32_t* row_ptr = nullptr;     // [out_features + 1], offsets in blocks
    const int32_t* col_idx = nullptr;     // [n_blocks], first input column of each block
    bool int8 = false;                    // which of values_f32 / values_i8 holds the values
    const float* values_f32 = nullptr;    // [n_blocks * block] when !int8
    const int8_t* values_i8 = nullptr;    // [n_blocks * block] when int8, dequantized by `scales`
    const float* scales = nullptr;        // [out_features], required with values_i8
    const float* bias = nullptr;          // [out_features] or null
    int block = 1;                        // 1, 2, 4 or 8 columns per block
    int activation = 0;                   // 0: none, 1: GELU (erf), applied after the bias
    // Split output (several layers on one input, e.g. Q, K and V): when part_rows > 0, output rows
    // [i * part_rows, (i + 1) * part_rows) go to y_parts[i], each [tokens, part_rows] row-major, and `y` is
    // unused. part_rows must divide out_features and be a multiple of 16 (the store unit).
    float* const* y_parts = nullptr;
    int64_t part_rows = 0;
};

enum : int { kActivationNone = 0, kActivationGeluErf = 1 };

// The per-ISA entry points (spmm_<isa>.cpp), each compiled with its own target flags.
struct TileArgs {
    const SpmmProblem* p;
    const float* xt;    // one transposed activation tile: [in_features][w_pad]
    int64_t t0;         // its first token
    int64_t w_valid;    // its tokens
    int64_t w_pad;      // row stride of xt: w_valid rounded up to the ISA's lanes
    int64_t row_begin;  // a multiple of 16
    int64_t row_end;
};
namespace isa_scalar {
int lanes();
void transpose_in(const float* x, int64_t in_features, int64_t w_valid, int64_t w_pad, float* xt);
void rows(const TileArgs& a);
void rows_to_tile(const TileArgs& a, float* ht);
}  // namespace isa_scalar
namespace isa_avx2 {
int lanes();
void transpose_in(const float* x, int64_t in_features, int64_t w_valid, int64_t w_pad, float* xt);
void rows(const TileArgs& a);
void rows_to_tile(const TileArgs& a, float* ht);
}  // namespace isa_avx2
namespace isa_avx512 {
int lanes();
void transpose_in(const float* x, int64_t in_features, int64_t w_valid, int64_t w_pad, float* xt);
void rows(const TileArgs& a);
void rows_to_tile(const TileArgs& a, float* ht);
}  // namespace isa_avx512

}  // namespace pruneofa
