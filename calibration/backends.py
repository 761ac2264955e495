"""One record per INT8 runtime, chosen once from the export target (as NNCF keeps a backend file per
runtime): which options apply, which methods to try in turn, how the calibration feeds are shaped, the
saturation-safe setting, the quantization call, what the manifest records of the method, and what to try
when parity fails.

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

    @abstractmethod
    def attempts(self, config: CalibrateConfig) -> list[CalibrateConfig]:
        """The configurations to quantize with, in turn, until one passes parity (each with one concrete
        ``method``); the last one's result is kept when none passes."""

    @abstractmethod
    def describe(self, config: CalibrateConfig, samples: int) -> str:
        """What calibration is about to do, in one clause (the progress line before quantization)."""

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
        if config.method != "auto":
            raise InputError(
                f"--method {config.method} applies to ONNX targets; OpenVINO uses NNCF's calibration (choose --preset)"
            )
        if config.data is None:
            raise InputError(
                "OpenVINO INT8 (NNCF) calibrates activations on samples: give --task and --data "
                "(an ONNX export can be quantized dynamically without data)"
            )
        if not config.per_channel:
            raise InputError(
                "--no-per-channel applies to ONNX targets; NNCF quantizes OpenVINO weights per channel"
            )

    def attempts(self, config: CalibrateConfig) -> list[CalibrateConfig]:
        return [config]

    def describe(self, config: CalibrateConfig, samples: int) -> str:
        return f"calibrating openvino INT8 (NNCF, preset {config.preset}) on {_samples_text(config, samples)}"

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
        # NNCF chooses its own range estimators (no --method): nothing to name beside the preset.
        return RecordedMethod("nncf-ptq", None, config.preset, per_channel=True)

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
        if "preset" in config.model_fields_set:
            raise InputError(
                "--preset is NNCF's, for OpenVINO targets; ONNX Runtime has none (choose --method)"
            )

    def attempts(self, config: CalibrateConfig) -> list[CalibrateConfig]:
        if config.method != "auto":
            return [config]  # an explicit method is held to parity as it is
        # all-MiniLM-L6-v2: static QDQ (minmax) cosine min 0.84, below the 0.97 bound; dynamic 0.985.
        methods = ["minmax", "dynamic"] if config.data is not None else ["dynamic"]
        return [config.model_copy(update={"method": method}) for method in methods]

    def describe(self, config: CalibrateConfig, samples: int) -> str:
        dynamic = "dynamic quantization: no calibration data (activations are quantized per input)"
        if config.method == "dynamic":
            return dynamic + ("; --data is not read" if config.data is not None else "")
        if config.data is None:  # auto without data
            return "no --data: " + dynamic
        static = (
            f"calibrating onnx INT8 (static QDQ, {'minmax' if config.method == 'auto' else config.method})"
        )
        then = ", then dynamic quantization if its parity fails" if config.method == "auto" else ""
        return f"{static} on {_samples_text(config, samples)}{then}"

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
        return (
            "; dynamic quantization uses no calibration data to improve: try an OpenVINO export (NNCF "
            "calibration) or 'pruneofa qat', or lower the bound if that loss is acceptable"
        )


def _samples_text(config: CalibrateConfig, samples: int) -> str:
    return f"{samples} samples of {config.task} ({config.split}, seed {config.seed})"


BACKENDS: dict[ExportTarget, CalibrationBackend] = {
    "openvino": OpenVINOBackend(),
    "onnx": OnnxRuntimeBackend(),
}


def backend_for(target: ExportTarget) -> CalibrationBackend:
    """The calibration backend of an export target."""
    return BACKENDS[target]
