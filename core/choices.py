"""The words several components share, each defined once: the runtime that runs an exported folder, the
OpenVINO performance hint, the inference precision and the sparse-kernel mode. Light (typing only), so configs import it freely."""

from __future__ import annotations

from typing import Literal, get_args

Runtime = Literal["openvino", "onnxruntime"]
RUNTIMES: tuple[Runtime, ...] = get_args(Runtime)

# OpenVINO's performance hint: one stream using every core (latency) or one stream per core pair.
Hint = Literal["latency", "throughput"]
DEFAULT_HINT: Hint = "latency"

# pruneofa's sparse kernels: auto (layers sparse enough to gain on this CPU), on (every eligible layer), off.
KernelMode = Literal["auto", "on", "off"]

# OpenVINO's inference precision for an exported folder: f32 (the outputs export/calibrate checked) or bf16
# (OpenVINO's own default where the CPU has native bf16: AVX512_BF16 or AMX).
Precision = Literal["f32", "bf16"]
DEFAULT_PRECISION: Precision = "f32"
KERNEL_MODES: tuple[KernelMode, ...] = get_args(KernelMode)


def runtime_name(requested: str) -> Runtime:
    """``requested`` as a :data:`Runtime`; ``ValueError`` naming it otherwise."""
    for runtime in RUNTIMES:
        if requested == runtime:
            return runtime
    raise ValueError(f"unknown runtime {requested!r}")


def kernel_mode(requested: str) -> KernelMode:
    """``requested`` as a :data:`KernelMode`; ``ValueError`` naming the choices otherwise."""
    for mode in KERNEL_MODES:
        if requested == mode:
            return mode
    raise ValueError(f"sparse kernels must be auto, on or off, not {requested!r}")
