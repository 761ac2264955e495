"""The load-time graph rewrite: Linear layers with sparse constant weights become ``pruneofa.SparseLinear``.

Rules (applied to an ``ov.Model`` read from a standard IR or ONNX file; files on disk stay standard):
- A *Linear-like* node is a ``MatMul`` whose second input has rank 2 (attention's activation × activation
  MatMuls have rank 4 and are not listed). It is *eligible* when ``transpose_a`` is false, its activation
  is FP32 and its weight is a constant in one of the forms :mod:`pruneofa.kernels.weights` reads.
- A following ``Add`` of a constant [N] vector (the MatMul's only consumer) is fused as the bias, and a
  ``Gelu`` (erf) after it (its only consumer) as the activation: the dense plugin fuses both into its
  FullyConnected, and a separate Gelu node would cost the sparse model another pass over the activation
  (docs/kernels.md has the measurement).
- The format (:func:`formats.choose_layout`): INT8 values + per-row scales when the weight is stored that
  way (NNCF), else FP32; INT8 weights in 1 x 4 blocks run INT8 compute (``int8-1x4``); 4 x 1 blocks run
  ``block4x1`` (FP32); otherwise blocks of 2/4/8 along the input dimension when the zeros come in such
  blocks (:func:`formats.choose_block`), else CSR.
- INT8 compute quantizes the layer's activations: when a ``FakeQuantize`` (NNCF's PTQ / QAT IRs: 256
  levels, one scalar range, the same for input and output) feeds the MatMul, its range becomes the op's
  static ``activation_scale`` / ``activation_zero_point`` and the op reads the FakeQuantize's input (the
  FakeQuantize is folded, not run); otherwise each token is quantized over its own range (``dynamic``).
  SmoothQuant's per-input Multiply in front of that FakeQuantize (NNCF, ``model_type=TRANSFORMER``) is
  folded too, as the op's ``input_scale`` (``fold_smooth_quant``).
- Two replaced layers in a row (BERT's FFN: up with GELU, then down; the first's only consumer is the
  second) become one ``pruneofa.SparseLinearPair`` node: each thread carries its token tiles through both
  layers and the [tokens, 4H] intermediate is never stored (``fuse_pairs``; docs/kernels.md).
- Replaced layers that read the same activation (BERT's Q, K and V) with the same shape and format become
  one ``pruneofa.SparseLinearSplit`` node: their rows stacked into one matrix, computed in one pass over
  the activation (one transpose, one fork/join), the output split back into one tensor per layer
  (``fuse_siblings``; needs out_features a multiple of 16).
- ``mode="on"``: every eligible layer; ``"off"``: none; ``"auto"``: layers whose sparsity reaches the
  measured crossover of their sparse format against what OpenVINO would run instead (*dense kind*: INT8
  when a FakeQuantize feeds the activation, else bf16 or FP32 as the compile config's precision hint or
  the plugin's default says), for their shape and this CPU's kernel path (:mod:`pruneofa.kernels.crossover`,
  with its documented fallbacks where the table lacks that pair).
The report lists every Linear-like node with its decision and why (format, dense kind, threshold).
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from pruneofa.core.choices import KERNEL_MODES, KernelMode
from pruneofa.kernels import crossover as crossover_table
from pruneofa.kernels import formats, library
from pruneofa.kernels.attention import dequantize_attention
from pruneofa.kernels.weights import ConstWeight, NotConstant, read_bias, read_weight

Mode = KernelMode  # the kernel mode every component shares (pruneofa.core.choices)
OP_TYPE = "SparseLinear"
PAIR_OP_TYPE = "SparseLinearPair"
SPLIT_OP_TYPE = "SparseLinearSplit"
OP_TYPES = (OP_TYPE, PAIR_OP_TYPE, SPLIT_OP_TYPE)  # every operation the extension defines
OPSET = "pruneofa"


@dataclass
class LayerDecision:
    """What happened to one Linear-like node."""

    name: str
    in_features: int
    out_features: int
    sparsity: float | None  # share of exact zeros in the weight (None when not constant)
    format: (
        str | None
    )  # "csr", "block", "int8-csr", "int8-block", "int8-1x4", "block4x1" (chosen or would-be)
    block: int | None
    sparse: bool  # replaced by SparseLinear
    reason: str  # why (not) sparse
    bias_fused: bool = False
    activation_fused: str | None = None  # "gelu" when a following Gelu was fused
    crossover: float | None = None  # the table's sparsity threshold for this shape (auto mode)
    dense: str | None = None  # what OpenVINO would run instead: "fp32", "bf16" or "int8" (auto mode)
    weight_source: str | None = None  # "fp32", "fp16", "int8", "folded"
    fused_with: str | None = None  # the other layers of the fused node this one runs in (comma-separated)
    fused_kind: str | None = None  # "pair" (SparseLinearPair) or "split" (SparseLinearSplit)
    fused_node: str | None = None  # that node's name
    tile_tokens: int | None = None  # tokens per transposed activation tile for the node it runs in
    activation_quant: str | None = None  # INT8 compute: "static" (a folded FakeQuantize) or "dynamic"
    input_scale: bool = False  # static: SmoothQuant's per-input Multiply folded into the op too


@dataclass
class SparseReport:
    """Result of :func:`rewrite`: one entry per Linear-like node, and the setting it ran with."""

    mode: str
    isa: str | None
    kernels_available: bool
    layers: list[LayerDecision] = field(default_factory=list)
    # Where auto's thresholds come from: the table file or "given", and for this ISA its CPU, dense ISA and
    # date (None outside auto mode).
    table: dict[str, Any] | None = None
    # Why the tiles are as wide as they are: the caches read at load (library.CacheSizes.describe()) or
    # the PRUNEOFA_KERNELS_TILE override; None when nothing runs sparse.
    tiles: str | None = None
    # FakeQuantize nodes removed in front of attention's MatMuls (:mod:`pruneofa.kernels.attention`): the
    # attention runs in FP32 beside INT8-compute layers; 0 when nothing was removed.
    attention_fp32: int = 0
    # Transposes into attention's heads' layout folded into Q/K/V split nodes (:mod:`pruneofa.kernels.heads`;
    # static-shape models only); 0 when none.
    heads_layout: int = 0
    # Scalar Multiplies behind sparse nodes folded into their weights (:mod:`pruneofa.kernels.output_scale`:
    # attention's Q and K scaling); 0 when none.
    output_scales: int = 0

    @property
    def sparse_layers(self) -> list[LayerDecision]:
        return [layer for layer in self.layers if layer.sparse]

    @property
    def smooth_quant_folded(self) -> int:
        """How many sparse layers took SmoothQuant's per-input factors into the op (``input_scale``)."""
        return sum(1 for layer in self.sparse_layers if layer.input_scale)

    def summary(self) -> str:
        """One line: how many layers run sparse, in which formats, on which kernel path."""
        if self.mode == "off":
            return f"sparse kernels: off, {len(self.layers)} Linear layers run dense"
        if not self.kernels_available:
            return (
                f"sparse kernels: unavailable, {len(self.layers)} Linear layers run dense (mode={self.mode})"
            )
        formats_used: dict[str, int] = {}
        for layer in self.sparse_layers:
            formats_used[layer.format or "?"] = formats_used.get(layer.format or "?", 0) + 1
        detail = ", ".join(f"{count} {name}" for name, count in sorted(formats_used.items())) or "none"
        mean = np.mean([layer.sparsity or 0.0 for layer in self.sparse_layers]) if self.sparse_layers else 0.0
        pairs = sum(1 for layer in self.sparse_layers if layer.fused_kind == "pair") // 2
        groups = len({layer.fused_node for layer in self.sparse_layers if layer.fused_kind == "split"})
        fused = f"; {pairs} pairs fused" if pairs else ""
        fused += f"; {groups} shared-input groups fused" if groups else ""
        widths = sorted({layer.tile_tokens for layer in self.sparse_layers if layer.tile_tokens})
        if widths:
            span = f"{widths[0]}" if len(widths) == 1 else f"{widths[0]}-{widths[-1]}"
            fused += f"; tiles of {span} tokens, {self.tiles}"
        if self.attention_fp32:
            fused += f"; attention in FP32 ({self.attention_fp32} FakeQuantize removed)"
        if self.smooth_quant_folded:
            fused += f"; SmoothQuant factors folded into {self.smooth_quant_folded}"
        if self.heads_layout:
            fused += f"; Q/K/V written in the heads' layout ({self.heads_layout} Transposes removed)"
        if self.output_scales:
            fused += f"; {self.output_scales} scalar Multiplies folded into the weights"
        fused += self._table_note()
        return (
            f"sparse kernels ({self.isa}, mode={self.mode}): {len(self.sparse_layers)}/{len(self.layers)} Linear "
            f"layers sparse ({detail}; mean sparsity {mean:.1%}{fused})"
        )

    def _table_note(self) -> str:
        """Where auto decided from a crossover table measured on another CPU model: which, and how to
        measure this one's (nothing when no layer with zeros in it read a threshold: a dense model stays
        dense whatever the table says)."""
        table = self.table
        if not table or not table.get("cpu") or table.get("same_cpu", True):
            return ""
        if not any(layer.crossover is not None and (layer.sparsity or 0.0) > 0 for layer in self.layers):
            return ""
        there = f"{table['cpu']} [{' '.join(table.get('flags') or [])}]"
        here = f"{table.get('this_cpu')} [{' '.join(table.get('this_flags') or [])}]"
        return (
            f"; thresholds measured on {there}, not on this CPU ({here}): an estimate here "
            "('python benchmarks/kernels_layers.py' measures this CPU's)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "isa": self.isa,
            "kernels_available": self.kernels_available,
            "tiles": self.tiles,
            "attention_fp32": self.attention_fp32,
            "heads_layout": self.heads_layout,
            "output_scales": self.output_scales,
            "table": self.table,
            "summary": self.summary(),
            "layers": [asdict(layer) for layer in self.layers],
            "why": {layer.name: layer.reason for layer in self.layers},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _linear_like(op: Any) -> bool:
    if op.get_type_name() != "MatMul":
        return False
    rank = op.get_input_partial_shape(1).rank
    return rank.is_static and rank.get_length() == 2


def _features(op: Any) -> tuple[int, int]:
    shape = op.get_input_partial_shape(1)
    transpose_b = bool(op.get_attributes().get("transpose_b", False))
    dims = [d.get_length() if d.is_static else -1 for d in shape]
    n, k = (dims[0], dims[1]) if transpose_b else (dims[1], dims[0])
    return k, n


def _sole_consumer(
    op: Any, kind: str, live: set[str] | None = None, at_input: int | None = None
) -> Any | None:
    """The node of type ``kind`` that is ``op``'s only consumer, or None. ``live``: the unique names of the
    model's nodes, when a replaced node that Python still holds (and that stays connected to its inputs)
    must not count; ``at_input``: the consumer must read ``op`` at that input index."""
    targets = list(op.output(0).get_target_inputs())
    if live is not None:
        targets = [t for t in targets if t.get_node().get_name() in live]
    if len(targets) != 1 or (at_input is not None and targets[0].get_index() != at_input):
        return None
    consumer = targets[0].get_node()
    return consumer if consumer.get_type_name() == kind else None


def _gelu_erf(op: Any) -> Any | None:
    gelu = _sole_consumer(op, "Gelu")
    if gelu is None or str(gelu.get_attributes().get("approximation_mode", "ERF")).upper() != "ERF":
        return None
    return gelu


def _pack(weight: ConstWeight, bias: np.ndarray | None, layout: str) -> formats.SparseWeight:
    if layout == "int8-1x4":
        if weight.int8 is None or weight.scales is None:
            raise ValueError("the int8-1x4 layout needs INT8 weights with per-row scales")
        return formats.pack_int8_1x4(weight.int8, weight.scales, bias)
    if layout == "block4x1":
        return formats.pack_4x1(weight.dense, bias)
    if weight.int8 is not None:
        return formats.pack(weight.dense, bias=bias, int8=weight.int8, scales=weight.scales)
    return formats.pack(weight.dense, bias=bias)


def _layout(weight: ConstWeight, int8_compute: bool) -> str:
    """The format for ``weight``: :func:`formats.choose_layout`, or without INT8 compute the block-CSR
    formats only (``int8-1x4`` falls back to what :func:`formats.choose_block` picks)."""
    mask = (weight.int8 if weight.int8 is not None else weight.dense) != 0
    layout = formats.choose_layout(mask, int8=weight.int8 is not None)
    if layout == "int8-1x4" and not int8_compute:
        layout = "int8-csr" if formats.choose_block(mask) == 1 else "int8-block"
    return layout


def _scalar(output: Any) -> float | None:
    from pruneofa.kernels.weights import fold

    try:
        value = fold(output)
    except NotConstant:
        return None
    return float(value.reshape(-1)[0]) if value.size == 1 else None


def _smooth_quant_factors(value: Any, in_features: int) -> tuple[Any, np.ndarray] | None:
    """``value`` as x times constant per-input factors (SmoothQuant's Multiply, which NNCF puts in front of
    the FakeQuantize: shape [K] or [1, ..., 1, K]): x and the factors; else None."""
    from pruneofa.kernels.weights import fold

    node = value.get_node()
    if node.get_type_name() != "Multiply":
        return None
    for index in (1, 0):
        try:
            factors = fold(node.input_value(index))
        except NotConstant:
            continue
        if factors.size != in_features or factors.ndim < 1 or factors.shape[-1] != in_features:
            return None
        factors = np.ascontiguousarray(factors, dtype=np.float32).reshape(-1)
        other = node.input_value(1 - index)
        if not np.isfinite(factors).all() or other.get_element_type().get_type_name() != "f32":
            return None
        return other, factors
    return None


def _static_activation_quant(op: Any, fold_multiply: bool = True) -> tuple[Any, library.ActQuant] | None:
    """The FakeQuantize feeding ``op``'s activation as a static u8 quantization (its input, and the step /
    zero point), when it is one: 256 levels, one scalar range shared by input and output, zero on its
    integer grid (NNCF tunes ranges so); else None. With ``fold_multiply``, a SmoothQuant Multiply in front
    of the FakeQuantize goes into the op too (the op reads its input and applies the factors itself)."""
    fq = op.input_value(0).get_node()
    if fq.get_type_name() != "FakeQuantize" or int(fq.get_attributes().get("levels", 0)) != 256:
        return None
    il, ih, ol, oh = (_scalar(fq.input_value(i)) for i in range(1, 5))
    if il is None or ih is None or ol is None or oh is None or il != ol or ih != oh or not ih > il:
        return None
    step = np.float32((ih - il) / 255.0)
    zero = -il / float(step)
    if not np.isfinite(step) or step <= 0 or abs(zero - round(zero)) > 1e-3 or not 0 <= round(zero) <= 255:
        return None
    source, multiplier = fq.input_value(0), None
    smooth = _smooth_quant_factors(source, _features(op)[0]) if fold_multiply else None
    if smooth is not None:
        source, multiplier = smooth
    return source, library.ActQuant("static", float(step), int(round(zero)), multiplier)


def _create(kind: str, inputs: list[Any], attributes: dict[str, Any]) -> Any:
    """An extension node of ``kind`` (the loaded library's NodeFactory)."""
    return _Factory.get(str(library.library_path())).create(kind, inputs, attributes)


def specialize(model: Any, report: SparseReport) -> int:
    """What the rewrite does only at static shapes, for a rewritten model just reshaped to static inputs
    (the deploy runtime's static-shape copies): fold the heads' layout into its Q/K/V split nodes; the
    count goes into ``report``. Returns the Transposes removed."""
    from pruneofa.kernels.heads import fold_heads_layout  # it reads this module's op types

    removed = fold_heads_layout(model, _create)
    report.heads_layout = max(report.heads_layout, removed)
    return removed


class _Factory:
    """Creates SparseLinear nodes through OpenVINO's NodeFactory with the extension loaded (one per library)."""

    _instances: dict[str, Any] = {}

    @classmethod
    def get(cls, path: str) -> Any:
        if path not in cls._instances:
            from openvino.utils.node_factory import NodeFactory

            factory = NodeFactory()
            factory.add_extension(path)
            cls._instances[path] = factory
        return cls._instances[path]


def _constants(weight: formats.SparseWeight, name: str, quant: library.ActQuant | None = None) -> list[Any]:
    """The op's constant inputs for ``weight``: row_ptr, col_idx, values[, scales][, bias][, input_scale
    (``quant``'s multiplier)]."""
    import openvino.opset13 as ops

    arrays = [("row_ptr", weight.row_ptr), ("col_idx", weight.col_idx), ("values", weight.values)]
    if weight.scales is not None:
        arrays.append(("scales", weight.scales))
    if weight.bias is not None:
        arrays.append(("bias", weight.bias))
    if quant is not None and quant.multiplier is not None:
        arrays.append(("input_scale", quant.multiplier))
    outputs = []
    for suffix, array in arrays:
        const = ops.constant(np.ascontiguousarray(array))
        const.set_friendly_name(f"{name}/{suffix}")
        outputs.append(const.output(0))
    return outputs


def _compute_attributes(
    weight: formats.SparseWeight, quant: library.ActQuant | None, prefix: str = ""
) -> dict:
    quant = quant or library.ActQuant()
    return {
        f"{prefix}block_rows": weight.block_rows,
        f"{prefix}activation_quant": quant.mode,
        f"{prefix}activation_scale": float(quant.scale),
        f"{prefix}activation_zero_point": int(quant.zero_point),
        f"{prefix}input_scale": quant.multiplier is not None,
    }


def _copied_compute_attributes(attrs: dict, prefix: str) -> dict:
    """A SparseLinear node's layout / compute attributes under ``prefix`` (for a fused node)."""
    return {
        f"{prefix}block_rows": int(attrs.get("block_rows", 1)),
        f"{prefix}activation_quant": str(attrs.get("activation_quant", "none")),
        f"{prefix}activation_scale": float(attrs.get("activation_scale", 0.0)),
        f"{prefix}activation_zero_point": int(attrs.get("activation_zero_point", 0)),
        f"{prefix}input_scale": bool(attrs.get("input_scale", False)),
    }


def make_node(
    x: Any,
    weight: formats.SparseWeight,
    name: str = "sparse_linear",
    activation: str = "none",
    quant: library.ActQuant | None = None,
) -> Any:
    """A SparseLinear node over activation output ``x`` (constants made from ``weight``); ``activation``
    is "none" or "gelu" (erf), applied after the bias; ``quant``: INT8 compute (``int8-1x4`` weights)."""
    path = library.library_path()
    if path is None:
        raise RuntimeError("pruneofa kernels are not available")
    inputs = [x, *_constants(weight, name, quant)]
    node = _Factory.get(str(path)).create(
        OP_TYPE,
        inputs,
        {
            "in_features": weight.in_features,
            "out_features": weight.out_features,
            "block": weight.block,
            "has_bias": weight.bias is not None,
            "activation": activation,
            **_compute_attributes(weight, quant),
        },
    )
    node.set_friendly_name(name)
    return node


def _fuse_pairs(model: Any, report: SparseReport) -> int:
    """Merge every SparseLinear whose only consumer is another SparseLinear into one SparseLinearPair
    (in graph order, each node in at most one pair); returns how many pairs were made."""
    by_name = {layer.name: layer for layer in report.sparse_layers}
    used: set[str] = set()
    pairs = 0
    ops = model.get_ordered_ops()
    live = {op.get_name() for op in ops}
    for first in [op for op in ops if op.get_type_name() == OP_TYPE]:
        name = first.get_friendly_name()
        second = _sole_consumer(first, OP_TYPE, live, at_input=0)  # as its activation
        if name in used or second is None or second.get_friendly_name() in used:
            continue
        a, b = first.get_attributes(), second.get_attributes()
        inputs = [first.input_value(0)]
        inputs += [first.input_value(i) for i in range(1, first.get_input_size())]
        inputs += [second.input_value(i) for i in range(1, second.get_input_size())]
        node = _Factory.get(str(library.library_path())).create(
            PAIR_OP_TYPE,
            inputs,
            {
                "in_features": int(a["in_features"]),
                "hidden_features": int(a["out_features"]),
                "out_features": int(b["out_features"]),
                "first_block": int(a["block"]),
                "first_has_bias": bool(a["has_bias"]),
                "first_activation": str(a["activation"]),
                "second_block": int(b["block"]),
                "second_has_bias": bool(b["has_bias"]),
                "second_activation": str(b["activation"]),
                "first_name": name,
                "second_name": second.get_friendly_name(),
                **_copied_compute_attributes(a, "first_"),
                **_copied_compute_attributes(b, "second_"),
            },
        )
        node.set_friendly_name(f"{name}+{second.get_friendly_name()}")
        replace_output(second.output(0), node.output(0))
        used.update({name, second.get_friendly_name()})
        _record_fusion(by_name, [name, second.get_friendly_name()], "pair", node.get_friendly_name())
        pairs += 1
    return pairs


def _record_fusion(by_name: dict[str, LayerDecision], names: list[str], kind: str, node: str) -> None:
    for name in names:
        if name in by_name:
            by_name[name].fused_with = ", ".join(other for other in names if other != name)
            by_name[name].fused_kind = kind
            by_name[name].fused_node = node


MAX_SPLIT_PARTS = 16  # the op's limit


def _fuse_siblings(model: Any, report: SparseReport, packed: dict[str, formats.SparseWeight]) -> int:
    """Merge SparseLinear nodes that read the same activation, with equal shape, block, value type, bias
    and activation and out_features a multiple of 16, into SparseLinearSplit nodes; returns how many.
    ``packed``: each SparseLinear's weight as the rewrite packed it, by unique node name (not read back)."""
    by_name = {layer.name: layer for layer in report.sparse_layers}
    groups: dict[tuple, list[Any]] = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() != OP_TYPE:
            continue
        a = op.get_attributes()
        if int(a["out_features"]) % 16:
            continue
        source = op.input_value(0)
        key = (
            source.get_node().get_name(), source.get_index(), int(a["in_features"]), int(a["out_features"]),
            int(a["block"]), bool(a["has_bias"]), str(a["activation"]), op.get_input_element_type(3).get_type_name(),
            tuple(sorted(_copied_compute_attributes(a, "").items())), _input_scale(op).tobytes(),
        )  # fmt: skip
        groups.setdefault(key, []).append(op)
    made = 0
    for key, members in groups.items():
        for start in range(0, len(members), MAX_SPLIT_PARTS):
            chunk = members[start : start + MAX_SPLIT_PARTS]
            if len(chunk) < 2:
                continue
            names = [op.get_friendly_name() for op in chunk]
            stacked = formats.stack_rows([packed[op.get_name()] for op in chunk])
            compute = _copied_compute_attributes(chunk[0].get_attributes(), "")
            multiplier = _input_scale(chunk[0]) if compute["input_scale"] else None
            quant = library.ActQuant(
                compute["activation_quant"],
                compute["activation_scale"],
                compute["activation_zero_point"],
                multiplier,
            )
            node = make_split_node(
                chunk[0].input_value(0), stacked, len(chunk), names, activation=key[6], quant=quant
            )
            for i, op in enumerate(chunk):
                replace_output(op.output(0), node.output(i))
            _record_fusion(by_name, names, "split", node.get_friendly_name())
            made += 1
    return made


def _input_scale(op: Any) -> np.ndarray:
    """A SparseLinear's input_scale factors (its last input), empty when it has none."""
    from pruneofa.kernels.weights import fold

    if not bool(op.get_attributes().get("input_scale", False)):
        return np.zeros(0, np.float32)
    return np.asarray(fold(op.input_value(op.get_input_size() - 1)), np.float32).reshape(-1)


def make_split_node(
    x: Any,
    weight: formats.SparseWeight,
    parts: int,
    names: list[str],
    activation: str = "none",
    quant: library.ActQuant | None = None,
) -> Any:
    """A SparseLinearSplit node: ``weight`` holds ``parts`` layers' rows stacked (:func:`formats.stack_rows`)."""
    inputs = [x, *_constants(weight, "+".join(names), quant)]
    node = _Factory.get(str(library.library_path())).create(
        SPLIT_OP_TYPE,
        inputs,
        {
            "in_features": weight.in_features,
            "out_features": weight.out_features,
            "parts": parts,
            "block": weight.block,
            "has_bias": weight.bias is not None,
            "activation": activation,
            "names": "\n".join(names),
            **_compute_attributes(weight, quant),
        },
    )
    node.set_friendly_name("+".join(names))
    return node


def replace_output(old: Any, new: Any) -> None:
    """Every reader of the output ``old`` reads ``new`` instead, and ``new`` answers to ``old``'s tensor names
    too (a model output keeps its name); the fusions and folds all replace outputs this way."""
    names = set(old.get_names())
    old.replace(new)
    if names:
        new.get_tensor().add_names(names)


INT8_GEMM_REASON = crossover_table.INT8_GEMM_REASON  # part of the reason in the dense-int8 fallback


def _quantized_activation(op: Any) -> bool:
    """The MatMul's activation comes straight from a FakeQuantize (NNCF's INT8 PTQ/QAT IRs): OpenVINO then
    runs the layer as an INT8 GEMM, which the sparse kernel has to beat, not the FP32 one."""
    return op.input_value(0).get_node().get_type_name() == "FakeQuantize"


def _dense_kind(op: Any, precision: str) -> str:
    """What OpenVINO's CPU plugin runs for this MatMul: "int8" (a FakeQuantize feeds it), else "bf16" or
    "fp32" as the model's execution precision says."""
    if _quantized_activation(op):
        return "int8"
    return "bf16" if precision == "bf16" else "fp32"


def plugin_precision(hint: str | None) -> str:
    """The execution precision of a model compiled with INFERENCE_PRECISION_HINT ``hint``: the hint itself,
    or without one the CPU plugin's default (bf16 on CPUs with AVX512_BF16 or AMX, else f32)."""
    if hint:
        return _type_name(hint)
    return _default_precision()


def _type_name(value: Any) -> str:
    """ "bf16" / "f32" for an ``ov.Type`` or a string (any case)."""
    return str(value.get_type_name() if hasattr(value, "get_type_name") else value).lower()


@functools.lru_cache(maxsize=1)
def _default_precision() -> str:
    try:
        import openvino as ov

        return _type_name(ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT"))
    except Exception:  # no readable default: FP32, the slower dense side (its thresholds are the lower ones)
        return "f32"


def _table_provenance(table: dict | None, isa: str | None) -> dict[str, Any]:
    """Where auto's thresholds come from, and whether they were measured on this CPU model: a table is a
    measurement of one machine (its dense kernels and caches), so on another model its crossovers are an
    estimate, which :meth:`SparseReport.summary` says."""
    from pruneofa.core.cpu import detect_cpu

    source = "given" if table is not None else str(crossover_table.table_path())
    chosen = crossover_table.load_table() if table is None else crossover_table.normalise(table)
    about = chosen.get("tables", {}).get(isa or "", {})
    keep = ("cpu", "flags", "dense_isa", "measured", "command", "load_average")
    here = detect_cpu()
    same = crossover_table.measured_here(about, here)
    return {
        "source": source,
        "isa": isa,
        **{key: about.get(key) for key in keep},
        "this_cpu": here.model,
        "this_flags": sorted(here.flags),
        "same_cpu": same,
    }


def rewrite(
    model: Any,
    mode: Mode = "auto",
    table: dict | None = None,
    fuse_gelu: bool = True,
    int8_gemm: bool = False,
    fuse_pairs: bool = True,
    fuse_siblings: bool = True,
    int8_compute: bool = True,
    precision_hint: str | None = None,
    attention_fp32: bool = True,
    fold_smooth_quant: bool = True,
    fold_heads: bool = True,
    fold_scales: bool = True,
) -> SparseReport:
    """Replace sparse Linear layers of ``model`` (an ``ov.Model``, modified in place) and report every one.

    ``table``: a crossover table to use instead of the shipped one; ``fuse_gelu=False`` leaves Gelu nodes
    separate; ``fuse_pairs=False`` / ``fuse_siblings=False`` keep FFN pairs / layers on a shared input
    (Q, K, V) as separate nodes (to measure what the fusions buy).
    ``precision_hint``: the INFERENCE_PRECISION_HINT the model will be compiled with ("f32", "bf16"; None:
    the CPU plugin's default), which makes ``auto`` compare against dense bf16 or FP32 (layers whose
    activation a FakeQuantize feeds compare against dense INT8 whatever the hint).
    ``int8_gemm``: the CPU has INT8 dot-product instructions (VNNI or AMX); read only where the table has
    no entries against dense INT8, where ``auto`` then keeps FP32-compute layers whose activations are
    quantized dense (:data:`pruneofa.kernels.crossover.FALLBACKS`). ``int8_compute=False``: every layer computes in FP32
    (INT8 1 x 4 weights run as ``int8-block``, FakeQuantize nodes stay). ``attention_fp32``: where a layer
    runs INT8 compute, remove the FakeQuantize nodes in front of attention's MatMuls so that OpenVINO fuses
    the attention (:mod:`pruneofa.kernels.attention`); False keeps them. ``fold_smooth_quant``: a
    SmoothQuant Multiply (per-input factors) in front of a folded FakeQuantize goes into the op as its
    ``input_scale``, so no pass over the activations runs for it and the FFN pair still fuses; False leaves
    it in the graph. ``fold_heads``: on a static-shape model, a Q/K/V split node writes attention's heads'
    layout itself and the Reshape + Transpose behind it go (:mod:`pruneofa.kernels.heads`; a dynamic model
    gets it in its static copies, :func:`specialize`); False keeps them. ``fold_scales``: a Multiply by a
    scalar constant behind a sparse node's output (attention's Q and K scaling, behind Reshape/Transpose)
    goes into the node's weights and bias (:mod:`pruneofa.kernels.output_scale`); False keeps it. With the
    kernels unavailable (no
    compiler, failed build) nothing changes and the report says so.
    """
    if mode not in KERNEL_MODES:
        raise ValueError(f"mode must be 'auto', 'on' or 'off', got {mode!r}")
    have = mode != "off" and library.available()
    isa = library.isa() if have else None
    report = SparseReport(mode=mode, isa=isa, kernels_available=have)
    precision = "f32"
    if mode == "auto" and have:
        report.table = _table_provenance(table, isa)
        precision = plugin_precision(precision_hint)
    packed: dict[str, formats.SparseWeight] = {}
    for op in model.get_ordered_ops():
        if not _linear_like(op):
            continue
        k, n = _features(op)
        decision = LayerDecision(
            name=op.get_friendly_name(), in_features=k, out_features=n, sparsity=None, format=None, block=None,
            sparse=False, reason="",
        )  # fmt: skip
        report.layers.append(decision)
        if op.get_attributes().get("transpose_a", False):
            decision.reason = "transpose_a is not supported"
            continue
        x_type = op.get_input_element_type(0).get_type_name()
        if x_type != "f32":
            decision.reason = f"activations are {x_type}, not f32"
            continue
        try:
            weight = read_weight(op)
        except NotConstant as exc:
            decision.reason = f"weight is not constant ({exc})"
            continue
        except Exception as exc:  # an unexpected pattern must never break loading
            decision.reason = f"unsupported weight pattern ({type(exc).__name__}: {exc})"
            continue
        decision.weight_source = weight.source
        decision.sparsity = formats.sparsity(weight.dense)
        decision.format = _layout(weight, int8_compute)
        mask = (weight.int8 if weight.int8 is not None else weight.dense) != 0
        decision.block = {"int8-1x4": 4, "block4x1": 1}.get(decision.format) or formats.choose_block(mask)
        if n <= 0 or k <= 0:
            decision.reason = "empty weight"
            continue
        if mode == "off":
            decision.reason = "mode=off"
            continue
        if not have:
            decision.reason = "kernels unavailable"
            continue
        x_input, quant = op.input_value(0), None
        if decision.format == "int8-1x4":
            static = _static_activation_quant(op, fold_smooth_quant)
            x_input, quant = static if static is not None else (x_input, library.ActQuant("dynamic"))
        if mode == "auto":
            decision.dense = _dense_kind(op, precision)
            verdict = crossover_table.choose(
                k, n, decision.sparsity,
                crossover_table.table_format(decision.format, None if quant is None else quant.mode),
                decision.dense, isa, table, int8_gemm=int8_gemm,
            )  # fmt: skip
            decision.crossover, decision.reason = verdict.crossover, verdict.reason
            if not verdict.sparse:
                continue
        add = _sole_consumer(op, "Add")
        bias = read_bias(add, op.output(0), n) if add is not None else None
        target = op if add is None or bias is None else add
        gelu = _gelu_erf(target) if fuse_gelu else None
        activation = "none" if gelu is None else "gelu"
        target = gelu if gelu is not None else target
        sparse = _pack(weight, bias, decision.format)
        node = make_node(x_input, sparse, name=op.get_friendly_name(), activation=activation, quant=quant)
        replace_output(target.output(0), node.output(0))
        packed[node.get_name()] = sparse  # unique, where friendly names may not be
        decision.sparse = True
        decision.bias_fused = bias is not None
        decision.activation_fused = None if gelu is None else activation
        decision.format = sparse.format
        decision.block = sparse.block
        decision.activation_quant = None if quant is None else quant.mode
        decision.input_scale = quant is not None and quant.multiplier is not None
        if mode == "on":
            decision.reason = "forced (mode=on)"
    if packed and fuse_pairs:
        _fuse_pairs(model, report)
    if packed and fuse_siblings:
        _fuse_siblings(model, report, packed)
    if attention_fp32 and any(layer.activation_quant for layer in report.sparse_layers):
        report.attention_fp32 = dequantize_attention(model)
    if packed and fuse_siblings and fold_heads:
        from pruneofa.kernels.heads import fold_heads_layout  # it reads this module's op types

        report.heads_layout = fold_heads_layout(model, _create)
    if packed and fold_scales:
        from pruneofa.kernels.output_scale import fold_output_scales

        report.output_scales = fold_output_scales(model, _create)
    if packed:
        model.validate_nodes_and_infer_types()
        _record_tiles(model, report)
    return report


def _record_tiles(model: Any, report: SparseReport) -> None:
    """Each sparse layer's tile width and why: the caches read at load or the override. The kernel derives
    the width per node from what its tile holds per token: in_features floats (in + hidden for a fused
    pair), or with INT8 compute in_features bytes plus the token's step and zero point, on the INT8
    route's lanes; a fused INT8 pair holds its input's INT8 tile, the FP32 intermediate and its INT8 copy. A
    pair with one FP32 and one INT8-compute layer runs them one after the other, each with its own tile."""
    forced = library.tile_forced()
    cache = library.cache_sizes()
    why = cache.describe() if cache is not None else "cache sizes unknown"
    report.tiles = f"PRUNEOFA_KERNELS_TILE={forced}" if forced else f"half of L2 at most: {why}"
    by_name = {layer.name: layer for layer in report.sparse_layers}
    for node in sparse_nodes(model):
        attrs = node.get_attributes()
        kind = node.get_type_name()
        k = int(attrs["in_features"])
        if kind == PAIR_OP_TYPE:
            h = int(attrs["hidden_features"])
            first_q8 = str(attrs.get("first_activation_quant", "none")) != "none"
            second_q8 = str(attrs.get("second_activation_quant", "none")) != "none"
            first, second = str(attrs["first_name"]), str(attrs["second_name"])
            if first_q8 != second_q8:
                widths = {
                    first: library.tile_tokens(k, int8=first_q8),
                    second: library.tile_tokens(h, int8=second_q8),
                }
            else:
                widths = dict.fromkeys([first, second], library.tile_tokens(k, int8=first_q8, hidden=h))
        else:
            names = str(attrs["names"]).split("\n") if kind == SPLIT_OP_TYPE else [node.get_friendly_name()]
            q8 = str(attrs.get("activation_quant", "none")) != "none"
            widths = dict.fromkeys(names, library.tile_tokens(k, int8=q8))
        for name, width in widths.items():
            if name in by_name:
                by_name[name].tile_tokens = width


def sparse_nodes(model: Any) -> list[Any]:
    """The SparseLinear, SparseLinearPair and SparseLinearSplit nodes of a model."""
    return [op for op in model.get_ordered_ops() if op.get_type_name() in OP_TYPES]


def _read_layer(
    node: Any,
    first: int,
    in_features: int,
    out_features: int,
    block: int,
    has_bias: bool,
    block_rows: int = 1,
    input_scale: bool = False,
):
    """One layer's constants from input ``first`` on; returns the weight and the index after them (an
    input_scale input is the activations' quantization, not the weight's: skipped)."""
    from pruneofa.kernels.weights import fold

    values = fold(node.input_value(first + 2))
    int8 = values.dtype == np.int8
    count = 3 + int(int8) + int(has_bias)
    arrays = [fold(node.input_value(i)) for i in range(first, first + count)]
    weight = formats.SparseWeight(
        in_features=in_features,
        out_features=out_features,
        block=block,
        row_ptr=arrays[0].astype(np.int32),
        col_idx=arrays[1].astype(np.int32),
        values=values,
        scales=arrays[3].astype(np.float32) if int8 else None,
        bias=arrays[-1].astype(np.float32) if has_bias else None,
        block_rows=block_rows,
    )
    return weight, first + count + int(input_scale)


def layer_weights(node: Any) -> dict[str, formats.SparseWeight]:
    """A SparseLinear's, SparseLinearPair's or SparseLinearSplit's constants as SparseWeights, by the
    original layer names."""
    attrs = node.get_attributes()
    if node.get_type_name() == PAIR_OP_TYPE:
        k, h, n = int(attrs["in_features"]), int(attrs["hidden_features"]), int(attrs["out_features"])
        first, after = _read_layer(
            node, 1, k, h, int(attrs["first_block"]), bool(attrs["first_has_bias"]),
            int(attrs.get("first_block_rows", 1)), bool(attrs.get("first_input_scale", False)),
        )  # fmt: skip
        second, _ = _read_layer(
            node, after, h, n, int(attrs["second_block"]), bool(attrs["second_has_bias"]),
            int(attrs.get("second_block_rows", 1)), bool(attrs.get("second_input_scale", False)),
        )  # fmt: skip
        return {str(attrs["first_name"]): first, str(attrs["second_name"]): second}
    if node.get_type_name() == SPLIT_OP_TYPE:
        stacked, _ = _read_layer(
            node, 1, int(attrs["in_features"]), int(attrs["out_features"]), int(attrs["block"]),
            bool(attrs["has_bias"]), int(attrs.get("block_rows", 1)),
        )  # fmt: skip
        names = str(attrs["names"]).split("\n")
        parts = formats.split_rows(stacked, int(attrs["parts"]))
        if len(names) != len(parts):
            raise ValueError(f"{node.get_friendly_name()}: {len(names)} names for {len(parts)} parts")
        return dict(zip(names, parts, strict=True))
    weight, _ = _read_layer(
        node, 1, int(attrs["in_features"]), int(attrs["out_features"]), int(attrs["block"]),
        bool(attrs.get("has_bias", False)), int(attrs.get("block_rows", 1)),
    )  # fmt: skip
    return {node.get_friendly_name(): weight}


def read_back(node: Any) -> formats.SparseWeight:
    """A SparseLinear node's constants as a SparseWeight (see :func:`dense_weight` for the matrix)."""
    if node.get_type_name() != OP_TYPE:
        raise ValueError(f"read_back takes a SparseLinear node; use layer_weights for {node.get_type_name()}")
    (weight,) = layer_weights(node).values()
    return weight


def dense_weight(node: Any) -> np.ndarray:
    """The [out, in] FP32 matrix a SparseLinear node computes with, position for position (accounting)."""
    return formats.densify(read_back(node))


def dense_weights(node: Any) -> dict[str, np.ndarray]:
    """Every [out, in] FP32 matrix a SparseLinear, SparseLinearPair or SparseLinearSplit node computes with,
    by layer name."""
    return {name: formats.densify(weight) for name, weight in layer_weights(node).items()}
