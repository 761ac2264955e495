"""One record per INT8 runtime, chosen once from the export target (as NNCF keeps a backend file per
runtime): which options apply, how the calibration feeds are shaped, the saturation-safe setting, the
quantization call, what the manifest records of the method, and what to try when parity fails.

``calibrate_model`` asks :func:`backend_for` once and never tests the target again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pruneofa.calibration import quantize
from pruneofa.calibration.config import CalibrateConfig, OverflowChoice
from pruneofa.calibration.dataset import pad_to_common_length
from pruneofa.core.errors import InputError
from pruneofa.core.manifest import ExportTarget

Feeds = list[dict[str, np.ndarray]]
# (evaluation items, NNCF's validation function, max drop as a fraction): accuracy-controlled quantization
Validation = tuple[list[Any], Callable[[Any, Iterable[Any]], float], float]


@dataclass(frozen=True)
class RecordedMethod:
    """How the manifest names the quantization a backend ran (``CalibrationInfo`` fields)."""

    method: str
    calibration: str | None
    preset: str | None
    per_channel: bool


class CalibrationBackend(ABC):
    """What calibration does differently on one runtime."""

    target: ExportTarget

    @abstractmethod
    def check_options(self, config: CalibrateConfig) -> None:
        """Refuse options that do not apply to this runtime (``InputError`` naming the fix)."""

    def prepare_feeds(self, feeds: Feeds, config: CalibrateConfig, pad_token_id: int) -> Feeds:
        """The calibration feeds as this runtime's calibrator needs them (unchanged by default)."""
        return feeds

    @abstractmethod
    def saturation_fix(
        self, choice: OverflowChoice, saturation_risk: bool
    ) -> tuple[Any, quantize.SaturationFix]:
        """Map the user's ``--overflow-fix`` (``auto`` follows the CPU) to this runtime's setting."""

    @abstractmethod
    def quantize(
        self,
        fp32_file: Path,
        int8_file: Path,
        feeds: Feeds,
        config: CalibrateConfig,
        *,
        saturation_setting: Any,
        validation: Validation | None,
        work_dir: Path,
        progress: bool,
    ) -> None:
        """Write the INT8 model file ``int8_file`` from ``fp32_file``."""

    @abstractmethod
    def recorded_method(self, config: CalibrateConfig) -> RecordedMethod:
        """What the manifest records of the quantization this backend ran."""

    @abstractmethod
    def parity_hint(self, config: CalibrateConfig) -> str:
        """What to try when the INT8 model is too far from FP32 (one clause, after the failed measure)."""


class OpenVINOBackend(CalibrationBackend):
    """NNCF post-training quantization of an OpenVINO IR, optionally accuracy-controlled."""

    target: ExportTarget = "openvino"

    def check_options(self, config: CalibrateConfig) -> None:
        if config.method != "minmax":
            raise InputError(
                f"--method {config.method} applies to ONNX targets; OpenVINO uses NNCF's calibration (choose --preset)"
            )

    def saturation_fix(
        self, choice: OverflowChoice, saturation_risk: bool
    ) -> tuple[Any, quantize.SaturationFix]:
        return quantize.nncf_overflow_fix(choice, saturation_risk)

    def quantize(
        self,
        fp32_file: Path,
        int8_file: Path,
        feeds: Feeds,
        config: CalibrateConfig,
        *,
        saturation_setting: Any,
        validation: Validation | None,
        work_dir: Path,
        progress: bool,
    ) -> None:
        quantize.quantize_openvino(
            fp32_file,
            int8_file,
            feeds,
            preset=config.preset,
            overflow_fix=saturation_setting,
            validation=validation,
        )

    def recorded_method(self, config: CalibrateConfig) -> RecordedMethod:
        calibration = None if config.method == "dynamic" else config.method
        return RecordedMethod("nncf-ptq", calibration, config.preset, per_channel=True)

    def parity_hint(self, config: CalibrateConfig) -> str:
        return "; calibrate on more or more typical --samples, or lower the bound if that loss is acceptable"


class OnnxRuntimeBackend(CalibrationBackend):
    """ONNX Runtime static (QDQ) or dynamic quantization of an ONNX export."""

    target: ExportTarget = "onnx"

    def check_options(self, config: CalibrateConfig) -> None:
        if config.max_drop is not None:
            raise InputError(
                "--max-drop (accuracy-controlled quantization) needs an OpenVINO target; export with --target openvino"
            )

    def prepare_feeds(self, feeds: Feeds, config: CalibrateConfig, pad_token_id: int) -> Feeds:
        # The histogram calibrators stack activations across samples, so every feed needs one length.
        if config.method in ("entropy", "percentile"):
            return pad_to_common_length(feeds, pad_token_id)
        return feeds

    def saturation_fix(
        self, choice: OverflowChoice, saturation_risk: bool
    ) -> tuple[Any, quantize.SaturationFix]:
        return quantize.ort_reduce_range(choice, saturation_risk)

    def quantize(
        self,
        fp32_file: Path,
        int8_file: Path,
        feeds: Feeds,
        config: CalibrateConfig,
        *,
        saturation_setting: Any,
        validation: Validation | None,
        work_dir: Path,
        progress: bool,
    ) -> None:
        quantize.quantize_onnx(
            fp32_file,
            int8_file,
            feeds,
            method=config.method,
            per_channel=config.per_channel,
            reduce_range=saturation_setting,
            work_dir=work_dir,
            progress=progress,
        )

    def recorded_method(self, config: CalibrateConfig) -> RecordedMethod:
        dynamic = config.method == "dynamic"
        return RecordedMethod(
            "ort-dynamic" if dynamic else "ort-static-qdq",
            None if dynamic else config.method,
            None,
            config.per_channel,
        )

    def parity_hint(self, config: CalibrateConfig) -> str:
        if config.method != "dynamic":
            # all-MiniLM-L6-v2: static QDQ cosine 0.93 mean / 0.85 min, dynamic 0.99 / 0.985
            return "; try --method dynamic (activations quantized per input), or lower the bound if that loss is acceptable"
        return "; calibrate on more or more typical --samples, or lower the bound if that loss is acceptable"


BACKENDS: dict[ExportTarget, CalibrationBackend] = {
    "openvino": OpenVINOBackend(),
    "onnx": OnnxRuntimeBackend(),
}


def backend_for(target: ExportTarget) -> CalibrationBackend:
    """The calibration backend of an export target."""
    return BACKENDS[target]
