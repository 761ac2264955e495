#include "layer_layout.hpp"

#include <cmath>

namespace pruneofa {
namespace {

std::string length_error(const char* what, int64_t got, const char* want_what, int64_t want) {
    if (got < 0) return std::string(what) + " is missing";
    return std::string(what) + " holds " + std::to_string(got) + " entries, " + want_what + " " + std::to_string(want);
}

}  // namespace

std::string check_attributes(int64_t in_features, int64_t out_features, int64_t block) {
    if (block != 1 && block != 2 && block != 4 && block != 8)
        return "block must be 1, 2, 4 or 8, got " + std::to_string(block);
    if (in_features < 1 || in_features > kMaxFeatures)
        return "in_features must be in [1, " + std::to_string(kMaxFeatures) + "], got " + std::to_string(in_features);
    if (out_features < 1 || out_features > kMaxFeatures)
        return "out_features must be in [1, " + std::to_string(kMaxFeatures) + "], got " +
               std::to_string(out_features);
    return {};
}

int act_quant_code(const std::string& mode) {
    if (mode == "none") return kActQuantNone;
    if (mode == "dynamic") return kActQuantDynamic;
    if (mode == "static") return kActQuantStatic;
    return -1;
}

const char* check_compute(int64_t in_features, int64_t out_features, int64_t block, bool int8, int64_t block_rows,
                          int act_quant, float act_scale, int64_t act_zero_point) {
    if (block_rows != 1 && block_rows != 4) return "block_rows must be 1 or 4";
    if (act_quant != kActQuantNone && act_quant != kActQuantDynamic && act_quant != kActQuantStatic)
        return "activation_quant must be \"none\", \"dynamic\" or \"static\"";
    if (block_rows == 4 && (block != 1 || int8 || act_quant != kActQuantNone || out_features % 4 != 0))
        return "4 x 1 blocks (block_rows 4) need block 1, f32 values, activation_quant \"none\" and out_features "
               "a multiple of 4";
    if (act_quant == kActQuantNone) return nullptr;
    if (block != 4 || !int8) return "INT8 compute (activation_quant dynamic / static) needs i8 values in 1 x 4 blocks";
    if (in_features > kMaxInt8Features) return "INT8 compute takes at most 65536 inputs (int32 sums)";
    if (act_quant == kActQuantStatic &&
        (!std::isfinite(act_scale) || !(act_scale > 0.0f) || act_zero_point < 0 || act_zero_point > 255))
        return "static activation quantization needs a finite activation_scale > 0 and an activation_zero_point "
               "in 0..255";
    return nullptr;
}

const char* check_structure(const int32_t* row_ptr, int64_t out_features, const int32_t* col_idx, int64_t n_blocks,
                            int64_t in_features, int64_t block, int64_t* at, bool quads) {
    int64_t where = 0;
    const char* err = nullptr;
    if (row_ptr == nullptr || (n_blocks > 0 && col_idx == nullptr)) {
        err = "row_ptr / col_idx missing";
    } else if (row_ptr[0] != 0) {
        err = "row_ptr[0] must be 0";
    } else {
        for (int64_t n = 0; n < out_features && err == nullptr; ++n)
            if (row_ptr[n + 1] < row_ptr[n]) {
                err = "row_ptr must be non-decreasing";
                where = n + 1;
            }
        if (err == nullptr && row_ptr[out_features] != n_blocks) {
            err = "row_ptr's last entry must equal the number of blocks in col_idx";
            where = out_features;
        }
        for (int64_t j = 0; j < n_blocks && err == nullptr && !quads; ++j)
            if (col_idx[j] < 0 || int64_t(col_idx[j]) + block > in_features) {
                err = "a column index is out of range (col_idx must be >= 0 and col_idx + block <= in_features)";
                where = j;
            }
        for (int64_t j = 0; j < n_blocks && err == nullptr && quads; ++j)
            if (col_idx[j] < 0 || col_idx[j] % 4 != 0 || int64_t(col_idx[j]) >= in_features) {
                err = "a column index is out of range (INT8 compute's col_idx must be a multiple of 4 in "
                      "[0, in_features))";
                where = j;
            }
    }
    if (at != nullptr) *at = where;
    return err;
}

std::string check_layout(const LayerLayout& l) {
    std::string err = check_attributes(l.in_features, l.out_features, l.block);
    if (!err.empty()) return err;
    const LayerCompute& c = l.compute;
    const int quant = act_quant_code(c.activation_quant);
    if (quant < 0) return "activation_quant must be \"none\", \"dynamic\" or \"static\", got \"" + c.activation_quant + "\"";
    if (const char* e = check_compute(l.in_features, l.out_features, l.block, l.int8, c.block_rows, quant,
                                      c.activation_scale, c.activation_zero_point))
        return std::string(e) + ", got block_rows " + std::to_string(c.block_rows) + ", block " +
               std::to_string(l.block) + ", out_features " + std::to_string(l.out_features) + ", scale " +
               std::to_string(c.activation_scale) + ", zero point " + std::to_string(c.activation_zero_point);
    const int64_t n = l.out_features;
    const int64_t groups = n / c.block_rows;
    if (l.row_ptr_size != groups + 1)
        return length_error("row_ptr", l.row_ptr_size, "out_features / block_rows + 1 is", groups + 1);
    if (l.col_idx_size < 0) return "col_idx is missing";
    if (l.col_idx_size > INT32_MAX) return "col_idx holds more blocks than an i32 row_ptr can address";
    const int64_t values = l.col_idx_size * l.block * c.block_rows;  // <= 2^31 * 8: no overflow
    if (l.values_size != values)
        return length_error("values", l.values_size, "col_idx's blocks x block x block_rows are", values);
    if (l.int8 && l.scales_size != n) return length_error("scales", l.scales_size, "out_features is", n);
    if (!l.int8 && l.scales_size >= 0) return "scales are only for i8 values";
    if (l.has_bias && l.bias_size != n) return length_error("bias", l.bias_size, "out_features is", n);
    if (!l.has_bias && l.bias_size >= 0) return "a bias input without has_bias";
    if (c.input_scale) {
        if (quant != kActQuantStatic) return "input_scale needs activation_quant \"static\"";
        if (l.input_scale_size != l.in_features)
            return length_error("input_scale", l.input_scale_size, "in_features is", l.in_features);
        for (int64_t i = 0; i < l.input_scale_size; ++i)
            if (!std::isfinite(l.input_scale[i]))
                return "input_scale must be finite: input_scale[" + std::to_string(i) + "] is not";
    } else if (l.input_scale_size >= 0) {
        return "an input_scale input without input_scale";
    }
    int64_t at = 0;
    if (const char* e = check_structure(l.row_ptr, groups, l.col_idx, l.col_idx_size, l.in_features, l.block, &at,
                                        quant != kActQuantNone)) {
        std::string msg = e;
        if (msg.rfind("row_ptr[0]", 0) == 0)
            msg += ", got " + std::to_string(l.row_ptr[0]);
        else if (msg.rfind("row_ptr must", 0) == 0)
            msg += ": row_ptr[" + std::to_string(at) + "] = " + std::to_string(l.row_ptr[at]) + " after " +
                   std::to_string(l.row_ptr[at - 1]);
        else if (msg.rfind("row_ptr's last", 0) == 0)
            msg += ": " + std::to_string(l.row_ptr[at]) + " vs " + std::to_string(l.col_idx_size);
        else if (msg.rfind("a column", 0) == 0)
            msg += ": col_idx[" + std::to_string(at) + "] = " + std::to_string(l.col_idx[at]) + ", block " +
                   std::to_string(l.block) + ", in_features " + std::to_string(l.in_features);
        return msg;
    }
    return {};
}

std::string check_heads(int64_t part_rows, int64_t head_dim) {
    if (head_dim == 0) return {};
    if (head_dim < 0 || part_rows % head_dim != 0)
        return "head_dim must be 0 or divide each part's " + std::to_string(part_rows) + " rows, got " +
               std::to_string(head_dim);
    return {};
}

std::string check_split(int64_t out_features, int64_t parts) {
    if (parts < 1 || parts > kMaxParts)
        return "parts must be in [1, " + std::to_string(kMaxParts) + "], got " + std::to_string(parts);
    if (out_features % parts != 0 || (out_features / parts) % 16 != 0)
        return "parts must divide out_features into multiples of 16 rows, got " + std::to_string(parts) +
               " parts of " + std::to_string(out_features);
    return {};
}

}  // namespace pruneofa
