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
    // Heads' layout of a split output (attention's Q, K and V): when head_dim > 0 (only with part_rows > 0),
    // tokens are [batch][seq_len] and each part is written as [batch, part_rows / head_dim, seq_len,
    // head_dim] row-major, what BERT's Reshape + Transpose(0, 2, 1, 3) of a [batch, seq_len, part_rows]
    // output makes, so those nodes go. head_dim divides part_rows; seq_len divides tokens.
    int64_t head_dim = 0;
    int64_t seq_len = 0;
    // 4 x 1 blocks (block_rows = 4, block = 1, FP32 values): four output rows share each column index, so
    // one loaded activation vector feeds four FMAs. row_ptr then has out_features / 4 + 1 entries (offsets
    // in blocks, per group of 4 rows) and values [n_blocks * 4] hold the 4 rows' weights of each block.
    int block_rows = 1;
    // INT8 compute (spmm_int8.inl): with act_quant != kActQuantNone the activations are quantized to
    // unsigned integers with a zero point (per token, or the static act_scale / act_zero_point), the
    // weights must be INT8 1 x 4 blocks (block = 4, columns 4-aligned, entries past in_features zero) with
    // per-row scales, products are summed in int32 and each output dequantized once:
    // (acc - zp * row_sum[n]) * scales[n] * act_scale + bias.
    int act_quant = 0;
    float act_scale = 0.0f;        // static: the 256-level (u8) step
    int32_t act_zero_point = 0;    // static: the u8 value of 0.0, 0..255
    const int32_t* row_sums = nullptr;  // optional [out_features]: sum of each row's INT8 values
    // INT8: the largest |value| (-1: not known, then computed per call where the route needs it; the avx2
    // route quantizes activations to 8 bits only when it is at most 64).
    int32_t weight_abs_max = -1;
    // Static INT8 compute only: [in_features] factors applied to X before quantization, q = quantize(x *
    // act_multiplier[k]) (SmoothQuant's per-channel Multiply in front of NNCF's FakeQuantize, folded into
    // the op so that no pass over X runs for it and an FFN pair still fuses); null: none.
    const float* act_multiplier = nullptr;
};

enum : int { kActQuantNone = 0, kActQuantDynamic = 1, kActQuantStatic = 2 };

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

// The INT8-compute kernels (spmm_int8.inl), one translation unit per instruction route: scalar (the
// reference), avx2 (vpmaddubsw + vpmaddwd on 7-bit activations; avx2_w7 on 8-bit ones for weights within
// [-64, 64]), avxvnni (256-bit vpdpbusd) and
// avx512vnni (512-bit vpdpbusd). quantize: a token-major tile; quantize_transposed: a transposed FP32 tile
// (a fused pair's intermediate, ht[i][token]); rows: outputs stored token-major; rows_to_tile: outputs into
// a transposed FP32 tile (a fused pair's first layer).
struct Q8Tile {
    const uint32_t* xq;   // [ceil(in_features / 4)][w_pad]: 4 consecutive u8 inputs of one token per lane
    const float* scale;   // [w_pad] each token's activation step (0 in padding lanes)
    const int32_t* zero;  // [w_pad] each token's zero point (0 in padding lanes)
    const int32_t* row_sums;  // [out_features]
};
// Each route's entry points (levels: the largest quantized activation it takes, 255 or 127).
#define PRUNEOFA_Q8_ROUTE_DECLARATIONS(route)                                                                    \
    namespace route {                                                                                           \
    int lanes();                                                                                                \
    int levels();                                                                                               \
    void quantize(const SpmmProblem& p, const float* x, int64_t w_valid, int64_t w_pad, uint32_t* xq,           \
                  float* scale, int32_t* zero);                                                                 \
    void rows(const TileArgs& a, const Q8Tile& q);                                                              \
    void quantize_transposed(const SpmmProblem& p, const float* ht, int64_t w_valid, int64_t w_pad,             \
                             uint32_t* xq, float* scale, int32_t* zero);                                        \
    void rows_to_tile(const TileArgs& a, const Q8Tile& q, float* ht);                                           \
    }
PRUNEOFA_Q8_ROUTE_DECLARATIONS(q8_scalar)
PRUNEOFA_Q8_ROUTE_DECLARATIONS(q8_avx2)     // 7-bit activations
PRUNEOFA_Q8_ROUTE_DECLARATIONS(q8_avx2_w7)  // the avx2 route on 8-bit activations: weights within [-64, 64]
PRUNEOFA_Q8_ROUTE_DECLARATIONS(q8_avxvnni)
PRUNEOFA_Q8_ROUTE_DECLARATIONS(q8_avx512vnni)
#undef PRUNEOFA_Q8_ROUTE_DECLARATIONS

}  // namespace pruneofa
