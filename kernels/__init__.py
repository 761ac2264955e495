"""Sparse-aware CPU execution: an OpenVINO extension with a sparse Linear operation, and the rewrite that uses it.

A pruned BERT runs no faster in OpenVINO, ONNX Runtime or PyTorch on CPUs without AMX: their GEMMs
multiply the zeros. This package adds ``SparseLinear`` (opset ``pruneofa``), a C++ OpenVINO operation
computing ``Y = X · Wᵀ + bias`` from a (block-)CSR weight, FP32 or INT8 values with per-row scales,
with AVX-512 / AVX2 / scalar kernels chosen by CPU detection, threaded in OpenVINO's own TBB arena (and
INT8 compute on 1 x 4 INT8 blocks with quantized activations, FP32 4 x 1 blocks: docs/kernels.md); and
two fused forms the rewrite makes: ``SparseLinearPair`` (an FFN's up and down layers, the intermediate
kept in per-thread tiles) and ``SparseLinearSplit`` (Q, K and V in one pass, three outputs).

Public API::

    from pruneofa import kernels

    compiled, report = kernels.compile_sparse(core, "model/openvino_model.xml",
                                              {"INFERENCE_NUM_THREADS": 2}, mode="auto")
    print(report.summary())              # one line; report.to_dict() is JSON-able

    report = kernels.rewrite(model, mode="auto"|"on"|"off")   # ov.Model in place -> SparseReport
    kernels.register(core)               # add the extension to an ov.Core (idempotent) -> bool
    kernels.specialize(model, report)    # a rewritten model reshaped to static inputs: Q/K/V in heads' layout
    kernels.available(); kernels.library_path(); kernels.isa()   # "avx512" | "avx2" | "scalar" | None
    kernels.int8_route(); kernels.int8_levels()   # "avx512vnni" | "avxvnni" | "avx2" | "scalar"; 255 | 127
    kernels.save_sparse_ir(model, path); kernels.read_sparse_ir(core, path)   # IR with the op
    kernels.dense_weight(node)           # a SparseLinear's weight as dense [out, in] (accounting)
    kernels.dense_weights(node)          # {layer name: [out, in]} for every op type (pairs, splits)

- Build: ``python -m pruneofa.kernels.build`` (CMake against the installed openvino wheel) into
  ``$PRUNEOFA_KERNELS_CACHE`` or ``~/.cache/pruneofa/kernels/<key>``; the key hashes sources, OpenVINO
  version and compiler. If no library is cached, the first use builds it; without a compiler (or on a
  failed build) one warning is logged and everything runs dense.
- ``mode="auto"`` replaces a layer when its sparsity reaches the crossover measured for its sparse format
  against what OpenVINO would run dense (FP32, bf16 or INT8), its shape and the ISA (``crossover.json``
  or ``$PRUNEOFA_KERNELS_CROSSOVER``, written by ``benchmarks/kernels_layers.py``); ``"on"`` replaces
  every eligible layer; ``"off"`` none. Environment: ``PRUNEOFA_KERNELS_ISA=scalar|avx2|avx512`` forces a kernel path,
  ``PRUNEOFA_KERNELS_DISABLE=1`` disables the kernels, ``PRUNEOFA_KERNELS_LIBRARY`` names a prebuilt library,
  ``PRUNEOFA_KERNELS_TILE=<tokens>`` forces the token-tile width (else it follows the L2 size read at load;
  ``PRUNEOFA_KERNELS_CACHE_SIZES=l1d,l2`` fakes those sizes).
- The ops check every constant against their attributes when a model is read: a malformed or tampered IR
  is refused then, with one line naming the op and the problem, never read out of bounds.

Details and measurements: docs/kernels.md.
"""

from pruneofa.kernels import library
from pruneofa.kernels.api import compile_sparse, read_sparse_ir, save_sparse_ir
from pruneofa.kernels.formats import SparseWeight, densify, pack, quantize_rows
from pruneofa.kernels.library import ActQuant, available, int8_levels, int8_route, isa, library_path, register
from pruneofa.kernels.rewrite import (
    LayerDecision,
    SparseReport,
    dense_weight,
    dense_weights,
    layer_weights,
    rewrite,
    sparse_nodes,
    specialize,
)

__all__ = [
    "ActQuant",
    "LayerDecision",
    "SparseReport",
    "SparseWeight",
    "available",
    "compile_sparse",
    "dense_weight",
    "dense_weights",
    "int8_levels",
    "int8_route",
    "layer_weights",
    "densify",
    "isa",
    "library",
    "library_path",
    "pack",
    "quantize_rows",
    "read_sparse_ir",
    "register",
    "rewrite",
    "save_sparse_ir",
    "sparse_nodes",
    "specialize",
]
