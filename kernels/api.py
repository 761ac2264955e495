"""One call for a runtime that opens a model: rewrite, register, compile; and the IR-with-op round trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pruneofa.core.errors import InputError, last_line
from pruneofa.kernels import library
from pruneofa.kernels.rewrite import Mode, SparseReport, rewrite


def compile_sparse(
    core: Any,
    model_or_path: Any,
    device_config: dict | None = None,
    mode: Mode = "auto",
    device: str = "CPU",
    fuse_gelu: bool = True,
    int8_gemm: bool = False,
    fuse_pairs: bool = True,
    fuse_siblings: bool = True,
    int8_compute: bool = True,
) -> tuple[Any, SparseReport]:
    """Read (if a path), rewrite a copy of the model, register the extension on ``core`` and compile.

    ``model_or_path``: an ``ov.Model`` (not modified: a clone is rewritten) or a path to ``.xml`` /
    ``.onnx``. ``device_config`` goes to ``core.compile_model`` unchanged (e.g. ``INFERENCE_NUM_THREADS``,
    ``NUM_STREAMS``, ``PERFORMANCE_HINT``). Without kernels (no compiler, failed build) the model is
    compiled dense, the report says why, and one warning was logged. ``int8_gemm``, ``fuse_gelu``,
    ``fuse_pairs``, ``fuse_siblings``, ``int8_compute``: see :func:`rewrite`; its ``precision_hint`` is
    ``device_config``'s INFERENCE_PRECISION_HINT (none: the plugin's default), what dense layers run in.
    """
    if isinstance(model_or_path, str | Path):
        model = core.read_model(str(model_or_path))
    else:
        model = model_or_path.clone()
    report = rewrite(
        model,
        mode,
        fuse_gelu=fuse_gelu,
        int8_gemm=int8_gemm,
        fuse_pairs=fuse_pairs,
        fuse_siblings=fuse_siblings,
        int8_compute=int8_compute,
        precision_hint=(device_config or {}).get("INFERENCE_PRECISION_HINT"),
    )
    if report.sparse_layers:
        library.register(core)
    compiled = core.compile_model(model, device, dict(device_config or {}))
    return compiled, report


def save_sparse_ir(model: Any, xml_path: str | Path) -> Path:
    """Save a rewritten model as IR with the pruneofa ops and FP32 constants kept exact.

    ``compress_to_fp16=False``: the default FP16 compression would round the CSR values (and any
    reader needs the extension anyway: see :func:`read_sparse_ir`)."""
    import openvino as ov

    xml_path = Path(xml_path)
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(xml_path), compress_to_fp16=False)
    return xml_path


def read_sparse_ir(core: Any, xml_path: str | Path) -> Any:
    """Read an IR that contains SparseLinear ops (registers the extension first; RuntimeError without it).

    The ops check every constant against their attributes while the model is read; an IR that fails
    (tampered or truncated) raises :class:`~pruneofa.core.errors.InputError` with OpenVINO's reason on
    one line."""
    if not library.register(core):
        raise RuntimeError(f"{xml_path} needs the pruneofa kernels extension, which is unavailable here")
    try:
        return core.read_model(str(xml_path))
    except RuntimeError as err:
        raise InputError(
            f"{xml_path} is not a usable sparse IR ({last_line(err)}); re-export it with "
            "'pruneofa export MODEL --target openvino --sparse-ir'"
        ) from err
