"""INT8 post-training quantization of exported models (NNCF for OpenVINO, ONNX Runtime for ONNX).

Public API: :func:`calibrate_model` (``pruneofa calibrate``) with :class:`CalibrateConfig`.
Imports ``pruneofa`` and ``exporter``.
"""

from calibration.api import CalibrateConfig, CalibrationResult, calibrate_model, make_config

__all__ = ["CalibrateConfig", "CalibrationResult", "calibrate_model", "make_config"]
