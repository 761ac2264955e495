"""pruneofa's sparse kernels at load time: the one place deploy applies :mod:`pruneofa.kernels`.

An exported folder stays standard on disk (optimum-intel, OVMS and Triton read it unchanged); when
pruneofa opens it in OpenVINO, every MatMul whose constant weight is sparse enough to gain is rewritten
into the ``SparseLinear`` operation before compiling (:func:`pruneofa.kernels.rewrite`). Which layers ran
sparse, in which format, and why the others did not, is the :class:`~pruneofa.kernels.SparseReport` the
engine keeps (``pipeline.sparse_report``, ``pipe.describe()``, the benchmark and validation reports).

``mode``: ``auto`` (default) rewrites the layers whose sparsity reaches the crossover measured for their
shape on this CPU's kernel path; ``on`` every eligible layer; ``off`` none.

Where layers became sparse, the engine also compiles a static-shape copy of the model for each of the
first ``PRUNEOFA_KERNELS_STATIC_SHAPES`` (default 4; 0: never) input shapes it meets, in the background
(:class:`pruneofa.core.runtime.Engine`): OpenVINO runs a custom operation in a dynamic model with a
per-call shape inference that clones the node, a cost per inference that static shapes avoid
(docs/kernels.md measures it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from pruneofa.core.choices import KernelMode, kernel_mode
from pruneofa.core.errors import InputError

STATIC_SHAPES_ENV = "PRUNEOFA_KERNELS_STATIC_SHAPES"
DEFAULT_STATIC_SHAPES = 4
MAX_STATIC_SHAPES = 64  # each copy is a compiled model: bounded whatever the environment says


def static_shape_limit() -> int:
    """How many input shapes get a static-shape compilation of a model with sparse layers (environment)."""
    text = os.environ.get(STATIC_SHAPES_ENV, "").strip()
    if not text:
        return DEFAULT_STATIC_SHAPES
    if not text.isdigit() or int(text) > MAX_STATIC_SHAPES:
        raise InputError(
            f"{STATIC_SHAPES_ENV}={text!r} is not a whole number from 0 to {MAX_STATIC_SHAPES}; "
            f"set it to e.g. {DEFAULT_STATIC_SHAPES}, or 0 to run every shape on the dynamic model"
        )
    return int(text)


def effective_mode(requested: str, runtime: str, amx_sparse: bool) -> tuple[KernelMode, str]:
    """The mode that applies, and why it differs from the request (empty when it does not)."""
    mode = kernel_mode(requested)
    if mode == "off":
        return "off", "sparse kernels off as requested"
    if runtime != "openvino":
        return "off", (
            "sparse kernels: not used on ONNX Runtime (they are an OpenVINO extension; run the folder with "
            "runtime openvino)"
        )
    if amx_sparse:
        return "off", (
            "sparse kernels: OpenVINO's own AMX sparse INT8 weight decompression is used instead (faster on "
            "AMX CPUs than pruneofa's FP32-compute kernels)"
        )
    return mode, ""


@dataclass
class LoadTimeKernels:
    """What the rewrite did to one compiled model, with each layer's name in the source model."""

    report: Any  # pruneofa.kernels.SparseReport
    weight_names: dict[str, str] = field(default_factory=dict)  # graph node name → source weight name
    static_shapes: int = 0  # static-shape copies the engine keeps (read by core.runtime.Engine)

    def name(self, layer: Any) -> str:
        name: str = layer.name
        return self.weight_names.get(name, name)

    def sparse_layer_names(self) -> list[str]:
        return [self.name(layer) for layer in self.report.sparse_layers]

    def specialize(self, model: Any) -> None:
        """Called by :class:`pruneofa.core.runtime.Engine` on each static-shape copy (the rewritten model
        reshaped to fixed inputs): what the rewrite can do only at static shapes (Q, K and V written in
        attention's heads' layout, :mod:`pruneofa.kernels.heads`)."""
        import pruneofa.kernels as kernels

        kernels.specialize(model, self.report)


def _weight_constant(matmul: Any) -> str | None:
    """The friendly name of the constant behind a MatMul's weight input (through Convert/Transpose/…)."""
    node = matmul.input_value(1).get_node()
    for _ in range(8):
        if node.get_type_name() == "Constant":
            return node.get_friendly_name()
        if node.get_input_size() == 0:
            return None
        node = node.input_value(0).get_node()
    return None


def source_weight_names(model: Any, manifest: Any) -> dict[str, str]:
    """MatMul node → the PyTorch weight it computes with (``bert.encoder.layer.0…query.weight``), from the
    export's sparsity accounting in ``pruneofa.json``, which matched every exported constant to its source."""
    if manifest is None or manifest.sparsity is None:
        return {}
    by_constant = {t.exported_name: t.name for t in manifest.sparsity.tensors if t.exported_name}
    names = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() == "MatMul" and op.get_input_size() == 2:
            constant = _weight_constant(op)
            if constant in by_constant:
                names[op.get_friendly_name()] = by_constant[constant].removesuffix(".weight")
    return names


def preparer(
    mode: KernelMode, manifest: Any = None, int8_gemm: bool = False, precision_hint: str | None = None
):
    """An :class:`~pruneofa.core.runtime.Engine` ``prepare`` hook: unless ``mode`` is ``off``, rewrite the
    model and register the extension where a layer became sparse; in every mode move the attention's NaN
    guards (:mod:`pruneofa.core.attention_guard`; after the rewrite, which may remove the attention's
    FakeQuantize nodes that stand in their way); return a :class:`LoadTimeKernels` (``None`` for ``off``).
    ``int8_gemm``: ``CpuInfo.has_int8_dot``; ``precision_hint``: the compile config's
    INFERENCE_PRECISION_HINT (None: the plugin's default), see :func:`pruneofa.kernels.rewrite`."""
    from pruneofa.core.attention_guard import move_nan_guards

    if mode == "off":

        def guards_only(core: Any, model: Any) -> None:
            move_nan_guards(model)

        return guards_only

    limit = static_shape_limit()  # a bad setting fails here, before anything is compiled

    def prepare(core: Any, model: Any) -> LoadTimeKernels:
        import pruneofa.kernels as kernels

        names = source_weight_names(model, manifest)
        report = kernels.rewrite(model, mode, int8_gemm=int8_gemm, precision_hint=precision_hint)
        move_nan_guards(model)  # after the rewrite: it may have removed a FakeQuantize in the guard's way
        if report.sparse_layers:
            kernels.register(core)
        return LoadTimeKernels(report, names, static_shapes=limit if report.sparse_layers else 0)

    return prepare


def summary(outcome: LoadTimeKernels | None, reason: str = "") -> str:
    """One line for ``describe()`` and reports: the kernel report's summary, or why kernels did not apply."""
    if outcome is not None:
        return outcome.report.summary()
    return reason or "sparse kernels off"
