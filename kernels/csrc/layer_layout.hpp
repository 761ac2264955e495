// Whether one sparse layer's constants can be computed without reading out of bounds: every length
// against the attributes, row_ptr's structure, every column index. No OpenVINO here, so the sanitizer
// driver (test_spmm.cpp) checks the same function the ops run when a model is read.
//
// Why it matters: OpenVINO Model Server loads these IRs with --cpu_extension, so an IR is untrusted input
// and the kernel indexes X, values, scales and bias through these constants without further checks.
#pragma once

#include <cstdint>
#include <string>

namespace pruneofa {

// Bounds on the attributes: large enough for any transformer layer, small enough that no product the
// kernel forms (K x tile floats, N + 1 offsets, n_blocks x block values) overflows int64 or size_t.
constexpr int64_t kMaxFeatures = int64_t(1) << 24;
constexpr int64_t kMaxParts = 16;

// One layer's constants as the op sees them; a length of -1 means the input is absent.
struct LayerLayout {
    int64_t in_features = 0;   // K
    int64_t out_features = 0;  // N
    int64_t block = 1;
    bool has_bias = false;
    bool int8 = false;  // i8 values, then scales are required
    const int32_t* row_ptr = nullptr;
    int64_t row_ptr_size = -1;
    const int32_t* col_idx = nullptr;
    int64_t col_idx_size = -1;
    int64_t values_size = -1;
    int64_t scales_size = -1;
    int64_t bias_size = -1;
};

// The attributes alone: features in [1, kMaxFeatures], block 1, 2, 4 or 8. Empty when sound, else one
// sentence naming the first problem.
std::string check_attributes(int64_t in_features, int64_t out_features, int64_t block);

// Everything: the attributes, each constant's length (row_ptr N + 1, values n_blocks x block, scales and
// bias N), then the structure (check_structure). Empty when sound, else one sentence.
std::string check_layout(const LayerLayout& layout);

// row_ptr [N + 1] starts at 0, never decreases and ends at n_blocks; every col_idx is >= 0 and
// col_idx + block <= K. O(N + n_blocks). nullptr when sound, else a fixed message, and `*at` (when not
// null) the offending row or block index.
const char* check_structure(const int32_t* row_ptr, int64_t out_features, const int32_t* col_idx, int64_t n_blocks,
                            int64_t in_features, int64_t block, int64_t* at = nullptr);

// A split output: parts in [1, kMaxParts], dividing out_features into parts of a multiple of 16 rows (the
// kernel's store unit never straddles two outputs).
std::string check_split(int64_t out_features, int64_t parts);

}  // namespace pruneofa
