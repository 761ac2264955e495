"""Compile settings chosen from the CPU and the model: performance hint, streams, threads, sparse kernels.

Unstructured sparsity speeds up inference on a CPU only where a kernel skips zeros. pruneofa brings its
own for OpenVINO (:mod:`pruneofa.kernels`, applied at load time: :mod:`pruneofa.deploy.sparse_kernels`);
this module decides when they apply (``CompileSettings.kernels``) and when OpenVINO's own AMX path is
used instead. Of the runtimes pruneofa deploys to, only OpenVINO has a zero-skipping kernel of its own: with ``CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE``
set below 1, its CPU plugin stores the weights of a FullyConnected (MatMul) layer packed (non-zeros only)
and unpacks them inside the kernel, which saves memory traffic. The plugin uses it for a layer only when
all of these hold (OpenVINO CPU plugin, ``FullyConnected::useSparseWeightsDecompression``):

* the CPU has AMX (``amx_int8``; Sapphire Rapids and newer Xeons),
* activations and weights are INT8 (a calibrated model), the weight matrix is 2-D with both dimensions a
  multiple of 64,
* the share of zero INT8 weights in that matrix is at least the rate set.

Everywhere else the property is accepted and does nothing, so :func:`sparse_decision` says which case
applies and why, and a pipeline that enables it checks the performance counters afterwards
(:func:`count_sparse_kernels`: layers whose implementation name says ``sparse``) instead of assuming.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from pruneofa.core.choices import (
    DEFAULT_HINT,
    DEFAULT_PRECISION,
    Hint,
    KernelMode,
    Precision,
    Runtime,
    runtime_name,
)
from pruneofa.core.cpu import CpuInfo
from pruneofa.core.errors import InputError
from pruneofa.core.manifest import SparsityReport
from pruneofa.deploy.sparse_kernels import effective_mode

# Below about half zeros, unpacking costs more than the saved memory traffic; OpenVINO's own examples use
# rates of 0.5 and above. This is where pruneofa starts asking for sparse kernels.
MIN_SPARSE_RATE = 0.5
SPARSE_BLOCK = 64  # both weight dimensions must be multiples of this


@dataclass(frozen=True)
class SparseDecision:
    """Whether OpenVINO's sparse INT8 weight kernels are requested, at which rate, and why (or why not)."""

    enabled: bool
    rate: float | None
    reason: str
    eligible_matrices: int = 0
    linear_matrices: int = 0
    verified_sparse_layers: int | None = None  # filled in from the performance counters after compiling
    fully_connected_layers: int | None = None

    def with_verification(self, sparse_layers: int, fc_layers: int) -> SparseDecision:
        reason = self.reason
        if self.enabled and sparse_layers == 0:
            reason += (
                f"; but the performance counters show no sparse kernel in {fc_layers} FullyConnected layers "
                "(the plugin declined them)"
            )
        elif self.enabled:
            reason += f"; verified: {sparse_layers} of {fc_layers} FullyConnected layers ran sparse kernels"
        return SparseDecision(
            self.enabled,
            self.rate,
            reason,
            self.eligible_matrices,
            self.linear_matrices,
            sparse_layers,
            fc_layers,
        )


def _int8_matrix_sparsity(sparsity: SparsityReport) -> list[tuple[str, list[int], float]]:
    rows = []
    for tensor in sparsity.tensors:
        if not tensor.linear or tensor.status != "matched" or tensor.zeros_after is None:
            continue
        if tensor.precision not in (None, "int8"):
            continue  # kept in floating point by accuracy control
        rows.append((tensor.name, tensor.shape, tensor.zeros_after / max(tensor.numel, 1)))
    return rows


def sparse_decision(
    cpu: CpuInfo, runtime: str, weight_format: str | None, sparsity: SparsityReport | None
) -> SparseDecision:
    """Decide whether to ask OpenVINO for sparse weight kernels; the reason is always a full sentence."""
    if runtime != "openvino":
        return SparseDecision(
            False,
            None,
            "no sparse kernel: ONNX Runtime's CPU provider runs these MatMuls densely whatever their zeros",
        )
    if not cpu.has_amx:
        return SparseDecision(
            False,
            None,
            f"no OpenVINO sparse kernel on this CPU: its sparse weights decompression needs AMX (amx_int8), and "
            f"{cpu.model} has {cpu.isa}; OpenVINO's own kernels multiply the zeros (pruneofa's sparse kernels "
            "skip them where they apply)",
        )
    if weight_format != "int8":
        return SparseDecision(
            False,
            None,
            f"no sparse kernel: the weights are {weight_format or 'of unknown precision'}; OpenVINO decompresses "
            "sparse INT8 weights only (run 'pruneofa calibrate' first)",
        )
    if sparsity is None:
        return SparseDecision(
            False, None, "no sparse kernel: the folder's pruneofa.json records no per-matrix sparsity"
        )
    matrices = _int8_matrix_sparsity(sparsity)
    shaped = [m for m in matrices if len(m[1]) == 2 and all(d % SPARSE_BLOCK == 0 and d > 0 for d in m[1])]
    eligible = [m for m in shaped if m[2] >= MIN_SPARSE_RATE]
    if not eligible:
        densest = max((m[2] for m in shaped), default=0.0)
        why = (
            f"no INT8 weight matrix has both dimensions a multiple of {SPARSE_BLOCK}"
            if not shaped
            else f"no INT8 weight matrix is at least {MIN_SPARSE_RATE:.0%} zeros (the sparsest is {densest:.1%})"
        )
        return SparseDecision(False, None, f"no sparse kernel: {why}", 0, len(matrices))
    rate = math.floor(min(m[2] for m in eligible) * 100) / 100
    return SparseDecision(
        True,
        rate,
        f"sparse INT8 weight kernels requested (CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE={rate:.2f}, from the "
        f"measured sparsity of {len(eligible)} of {len(matrices)} INT8 weight matrices)",
        len(eligible),
        len(matrices),
    )


@dataclass(frozen=True)
class CompileSettings:
    """How a model is compiled for this CPU; :meth:`openvino_config` / :meth:`onnxruntime_options` apply it."""

    runtime: Runtime
    hint: Hint
    streams: int
    threads: int
    sparse: SparseDecision
    cpu: str
    isa: str
    kernels: KernelMode = "off"  # pruneofa's sparse kernels: auto, on or off (the mode that applies)
    kernels_reason: str = ""  # why it is off when asked for
    precision: Precision = DEFAULT_PRECISION  # OpenVINO's INFERENCE_PRECISION_HINT

    def openvino_config(self, *, profile: bool = False) -> dict[str, Any]:
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": self.hint.upper(),
            "NUM_STREAMS": self.streams,
            "INFERENCE_NUM_THREADS": self.threads,
            # f32 (the default) keeps the outputs those that export/calibrate checked (CPUs with native bf16
            # would otherwise run bf16); bf16 only where asked for and native (choose_settings)
            "INFERENCE_PRECISION_HINT": self.precision,
        }
        if self.sparse.enabled and self.sparse.rate is not None:
            config["CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE"] = self.sparse.rate
        if profile:
            config["PERF_COUNT"] = True
        return config

    def onnxruntime_options(self) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        return options

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"{self.runtime}: {self.hint} hint, {self.streams} stream(s) × {self.threads} thread(s)"
            f"{', bf16 inference' if self.precision == 'bf16' else ''} on {self.cpu} "
            f"[{self.isa}]; {self.sparse.reason}"
        )


def check_precision(cpu: CpuInfo, precision: Precision) -> None:
    """Refuse bf16 inference on a CPU without native bf16, where OpenVINO would emulate it (slower than f32)."""
    if precision == "bf16" and not cpu.has_native_bf16:
        raise InputError(
            f"--precision bf16: {cpu.model} has no native bf16 (AVX512_BF16 or AMX), where OpenVINO's bf16 would "
            "be emulated and slower; use --precision f32 (the default)"
        )


def choose_settings(
    cpu: CpuInfo,
    runtime: str,
    *,
    hint: Hint = DEFAULT_HINT,
    weight_format: str | None = None,
    sparsity: SparsityReport | None = None,
    threads: int | None = None,
    streams: int | None = None,
    sparse_kernels: str = "auto",
    precision: Precision = DEFAULT_PRECISION,
) -> CompileSettings:
    """Latency: one stream using every core this process may run on. Throughput: one stream per two
    cores (each stream keeps a core pair busy), so a 2-core machine still gets one stream of 2 threads."""
    known_runtime = runtime_name(runtime)
    cores = max(1, cpu.cores)
    if streams is None:
        streams = 1 if hint == "latency" else max(1, cores // 2)
    if threads is None:
        threads = cores
    threads = max(threads, streams)
    if known_runtime == "openvino":
        check_precision(cpu, precision)
    amx = sparse_decision(cpu, runtime, weight_format, sparsity)
    kernels, why = effective_mode(sparse_kernels, runtime, amx.enabled)
    return CompileSettings(
        runtime=known_runtime,
        hint=hint,
        streams=streams,
        threads=threads,
        sparse=amx,
        cpu=cpu.model,
        isa=cpu.isa,
        kernels=kernels,
        kernels_reason=why,
        precision=precision,
    )


def count_sparse_kernels(profiling: list[Any]) -> tuple[int, int]:
    """(sparse, all) FullyConnected layers in OpenVINO profiling info (``ProfilingInfo`` objects or
    anything with ``node_type`` and ``exec_type``): the implementation name of a layer that ran the
    sparse kernel contains ``sparse`` (``brgemm_sparse_avx512_amx_I8``)."""
    fully_connected = [p for p in profiling if p.node_type == "FullyConnected"]
    sparse = [p for p in fully_connected if "sparse" in str(p.exec_type).lower()]
    return len(sparse), len(fully_connected)
