"""The one-layer models and the dense-ISA probe of ``benchmarks/kernels_layers.py``.

Dense: one Linear as OpenVINO reads it, FP32 weights (run as fp32 or bf16) or NNCF's INT8 pattern (a u8
FakeQuantize on the activation, s8 weights dequantized by a per-row Multiply: OpenVINO runs an INT8 GEMM).
Sparse: the same layer as SparseLinear in one format, its zeros in that format's pattern. The probe runs
each dense kind once in a process with ``ONEDNN_VERBOSE=1`` and reads which ISA its GEMM ran.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np

STEP, ZERO = np.float32(8.0 / 255.0), 128  # the activations' u8 grid: [-128, 127] steps of 8/255


def cpu_flags() -> list[str]:
    from pruneofa.core.cpu import detect_cpu

    return sorted(detect_cpu().flags)


# ---- models ---------------------------------------------------------------------------------------


def dense_model(kind: str, q: np.ndarray, scales: np.ndarray, bias: np.ndarray):
    """One Linear as OpenVINO reads it: FP32 weights (fp32 / bf16), or NNCF's INT8 pattern (int8)."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([-1, q.shape[1]], np.float32, name="x")
    if kind == "int8":
        low, high = np.float32(-ZERO * STEP), np.float32((255 - ZERO) * STEP)
        act = ops.fake_quantize(x, low, high, low, high, 256)
        weight = ops.multiply(ops.convert(ops.constant(q), np.float32), ops.constant(scales[:, None]))
    else:
        act, weight = x, ops.constant(q.astype(np.float32) * scales[:, None])
    y = ops.add(ops.matmul(act, weight, False, True), ops.constant(bias))
    return ov.Model([y.output(0)], [x], f"dense_{kind}")


def sparse_model(fmt: str, rng, q: np.ndarray, scales: np.ndarray, bias: np.ndarray, sparsity: float):
    """The layer as SparseLinear in ``fmt``, its zeros in that format's pattern."""
    import openvino as ov
    import openvino.opset13 as ops

    from pruneofa.kernels import formats, library
    from pruneofa.kernels.rewrite import make_node

    n, k = q.shape
    w = q.astype(np.float32) * scales[:, None]
    quant = None
    if fmt == "csr":
        weight = formats.pack(w * (rng.random((n, k)) >= sparsity), bias=bias, block=1)
    elif fmt == "block4x1":
        weight = formats.pack_4x1(w * np.repeat(rng.random((n // 4, k)) >= sparsity, 4, axis=0), bias)
    else:
        keep = np.repeat(rng.random((n, k // 4)) >= sparsity, 4, axis=1)
        weight = formats.pack_int8_1x4((q * keep).astype(np.int8), scales, bias)
        mode = fmt.rsplit("-", 1)[1]
        quant = library.ActQuant("static", float(STEP), ZERO) if mode == "static" else library.ActQuant(mode)
    x = ops.parameter([-1, k], np.float32, name="x")
    node = make_node(x.output(0), weight, name=f"sparse_{fmt}", quant=quant)
    return ov.Model([node.output(0)], [x], f"sparse_{fmt}")


def layer(rng, k: int, n: int):
    q = rng.integers(-127, 128, (n, k)).astype(np.int8)
    scales = (0.0005 + 0.001 * rng.random(n)).astype(np.float32)
    return q, scales, rng.standard_normal(n).astype(np.float32)


# ---- the dense ISA probe --------------------------------------


def probe_main(kinds: list[str]) -> None:
    """Compile and run each dense kind once; oneDNN prints what it runs (read by :func:`probe`)."""
    import openvino as ov

    rng = np.random.default_rng(0)
    core = ov.Core()
    q, scales, bias = layer(rng, 384, 384)
    x = rng.standard_normal((64, 384)).astype(np.float32)
    for kind in kinds:
        hint = "bf16" if kind == "bf16" else "f32"
        compiled = core.compile_model(
            dense_model(kind, q, scales, bias), "CPU", {"INFERENCE_PRECISION_HINT": hint}
        )
        compiled.create_infer_request().infer([x])


def _isa_of(text: str) -> str | None:
    text = text.lower()
    for token, name in (("amx", "amx"), ("avx512", "avx512"), ("avx-512", "avx512"), ("avx2", "avx2")):
        if token in text:
            return name
    return None


def probe(script: str, kinds: list[str], env: dict[str, str]) -> dict[str, dict[str, str]]:
    """Per dense kind: the ISA its GEMM ran and how that was read (``script --probe KIND`` runs
    :func:`probe_main` in a process with ``env``; one process per kind, up to 3 tries: with
    ``ONEDNN_VERBOSE=1`` OpenVINO 2026.4 now and then fails an INT8 primitive it runs fine without)."""
    best = "avx512" if "avx512f" in cpu_flags() else "avx2"
    found = {}
    for kind in kinds:
        for attempt in range(3):
            run = subprocess.run(
                [sys.executable, script, "--probe", kind], env={**env, "ONEDNN_VERBOSE": "1"},
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            if run.returncode == 0:
                break
            if attempt == 2:
                tail = " | ".join(run.stderr.strip().splitlines()[-4:]) or "no output"
                raise SystemExit(f"the dense ISA probe for {kind} failed 3 times: {tail}")
        onednn_isa = None
        for line in run.stdout.splitlines():
            if ",info,cpu,isa:" in line:
                onednn_isa = _isa_of(line.split("isa:", 1)[1])
            elif ",exec,cpu," in line and ("inner_product" in line or "matmul" in line):
                impl = line.split(",")[6] if len(line.split(",")) > 6 else line
                found[kind] = {"isa": _isa_of(impl) or onednn_isa or "unknown", "via": f"oneDNN {impl}"}
        found.setdefault(kind, {"isa": best, "via": "outside oneDNN (MLAS / OpenVINO kernels): not capped"})
    return found
