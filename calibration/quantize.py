"""The INT8 back-ends: NNCF post-training quantization for OpenVINO IR, ONNX Runtime for ONNX.

Both are configured so that pruned weights stay exactly zero: weights are quantized symmetrically
(zero point 0), so a zero weight is the integer 0. Both are saturation-safe by default: on CPUs
without VNNI/AMX, weights get 7 bits (NNCF overflow fix / ONNX Runtime ``reduce_range``) so that the
int16 accumulation of ``vpmaddubsw`` cannot overflow.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pruneofa.calibration.config import OverflowChoice
from pruneofa.core.cpu import overflow_fix_mode
from pruneofa.core.errors import PruneofaError
from pruneofa.core.progress import quiet_libraries

QUANTIZED_OPS = ["MatMul", "Gemm", "Gather"]


@dataclass(frozen=True)
class SaturationFix:
    """What was chosen against INT8 overflow, and why (recorded in the manifest)."""

    enabled: bool
    description: str


def nncf_overflow_fix(choice: OverflowChoice, saturation_risk: bool) -> tuple[Any, SaturationFix]:
    """NNCF's ``overflow_fix`` for the user's choice (``auto`` follows the CPU)."""
    from nncf.quantization.advanced_parameters import OverflowFix

    value, why = overflow_fix_mode(choice, saturation_risk)
    mode = OverflowFix(value)
    return mode, SaturationFix(mode != OverflowFix.DISABLE, f"nncf overflow_fix={mode.value} ({why})")


def ort_reduce_range(choice: OverflowChoice, saturation_risk: bool) -> tuple[bool, SaturationFix]:
    """ONNX Runtime's ``reduce_range`` for the user's choice (``auto`` follows the CPU)."""
    reduce_range = saturation_risk if choice == "auto" else choice in ("enable", "first-layer")
    why = (
        ("CPU without VNNI/AMX" if saturation_risk else "CPU has VNNI/AMX")
        if choice == "auto"
        else "requested"
    )
    return reduce_range, SaturationFix(reduce_range, f"onnxruntime reduce_range={reduce_range} ({why})")


def quantize_openvino(
    fp32_xml: Path,
    int8_xml: Path,
    feeds: list[dict[str, np.ndarray]],
    *,
    preset: str,
    overflow_fix: Any,
    validation: tuple[list[Any], Callable[[Any, Iterable[Any]], float], float] | None = None,
) -> None:
    """NNCF PTQ (transformer model type, symmetric weights); with ``validation`` accuracy-controlled."""
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
    )

    model = ov.Core().read_model(str(fp32_xml))
    nncf_preset = (
        nncf.QuantizationPreset.PERFORMANCE if preset == "performance" else nncf.QuantizationPreset.MIXED
    )
    advanced = AdvancedQuantizationParameters(overflow_fix=overflow_fix)
    if validation is not None:
        # Accuracy control reverts a layer by restoring its original weights, but leaves SmoothQuant's
        # rescaling of the activations feeding it in place, so every reverted layer is wrong (a tiny BERT
        # went from 82.5 to 37.5 % as layers were reverted). Without SmoothQuant, reverting is exact.
        advanced.smooth_quant_alphas = AdvancedSmoothQuantParameters(matmul=-1)
    with quiet_libraries("nncf", level=logging.WARNING), _reported("NNCF quantization"):
        if validation is None:
            quantized = nncf.quantize(
                model,
                nncf.Dataset(feeds),
                preset=nncf_preset,
                subset_size=len(feeds),
                model_type=nncf.ModelType.TRANSFORMER,
                advanced_parameters=advanced,
            )
        else:
            items, validate_fn, max_drop = validation

            def metric_and_no_per_item_values(
                compiled_model: Any, subset: Iterable[Any]
            ) -> tuple[float, None]:
                return validate_fn(compiled_model, subset), None

            quantized = nncf.quantize_with_accuracy_control(
                model,
                nncf.Dataset(feeds),
                nncf.Dataset(items),
                metric_and_no_per_item_values,
                max_drop=max_drop,
                drop_type=nncf.DropType.ABSOLUTE,
                preset=nncf_preset,
                subset_size=len(feeds),
                model_type=nncf.ModelType.TRANSFORMER,
                advanced_quantization_parameters=advanced,
            )
    ov.save_model(quantized, str(int8_xml), compress_to_fp16=False)


def _feed_reader(feeds: list[dict[str, np.ndarray]], progress: bool) -> Any:
    """ONNX Runtime's CalibrationDataReader over a list of feeds, with a progress bar (a class made
    here, so that importing this module does not import ONNX Runtime)."""
    from onnxruntime.quantization import CalibrationDataReader
    from tqdm import tqdm

    class FeedReader(CalibrationDataReader):
        def __init__(self) -> None:
            self._iter = iter(
                tqdm(feeds, desc="calibration", unit="sample", disable=not progress, leave=False)
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._iter, None)

        def rewind(self) -> None:  # not used by quantize_static, kept for the protocol
            pass

    return FeedReader()


def quantize_onnx(
    fp32_onnx: Path,
    int8_onnx: Path,
    feeds: list[dict[str, np.ndarray]],
    *,
    method: str,
    per_channel: bool,
    reduce_range: bool,
    work_dir: Path,
    progress: bool = True,
) -> None:
    """ONNX Runtime static (QDQ, MinMax/Entropy/Percentile) or dynamic quantization, symmetric weights."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = work_dir / "preprocessed.onnx"
    try:  # symbolic shape inference fails on these exports ("Incomplete symbolic shape inference"): skip it
        with contextlib.redirect_stdout(io.StringIO()):
            quant_pre_process(str(fp32_onnx), str(source), skip_symbolic_shape=True)
    except Exception:  # pre-processing only helps; quantization works on the plain export as well
        source = fp32_onnx
    with _reported(f"onnxruntime quantization ({method})"):
        if method == "dynamic":
            quantize_dynamic(
                str(source),
                str(int8_onnx),
                weight_type=QuantType.QInt8,
                per_channel=per_channel,
                reduce_range=reduce_range,
                extra_options={"WeightSymmetric": True},
            )
            return
        calibrate_method = {
            "minmax": CalibrationMethod.MinMax,
            "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile,
        }[method]
        quantize_static(
            str(source),
            str(int8_onnx),
            _feed_reader(feeds, progress),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=calibrate_method,
            # The weight-carrying ops. Leaving the mask arithmetic (Add/Where on near-constant tensors) in
            # float is what BERT wants anyway, and it keeps the histogram calibrators from failing on it.
            op_types_to_quantize=QUANTIZED_OPS,
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
        )


@contextlib.contextmanager
def _reported(what: str):
    """The back-ends raise many exception types; turn them into one line (exit code 1)."""
    try:
        yield
    except PruneofaError:
        raise
    except Exception as err:
        lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
        detail = lines[-1] if lines else type(err).__name__
        raise PruneofaError(f"{what} failed: {type(err).__name__}: {detail}", exit_code=1) from err
