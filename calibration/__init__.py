"""INT8 post-training quantization of exported models (NNCF for OpenVINO, ONNX Runtime for ONNX).

Public API: :func:`calibrate_model` (``pruneofa calibrate``) with :class:`CalibrateConfig` (:mod:`.config`).
Imports :mod:`pruneofa.core` and :mod:`pruneofa.exporter`.
"""

from typing import TYPE_CHECKING

from pruneofa.core.lazy import lazy_exports

if TYPE_CHECKING:  # what static tools see; at run time each name loads on first use (lazy_exports)
    from pruneofa.calibration.api import (
        CalibrationResult as CalibrationResult,
    )
    from pruneofa.calibration.api import (
        calibrate_model as calibrate_model,
    )
    from pruneofa.calibration.config import CalibrateConfig as CalibrateConfig
    from pruneofa.calibration.config import make_config as make_config


_EXPORTS = {
    "CalibrateConfig": "config",
    "make_config": "config",
    "CalibrationResult": "api",
    "calibrate_model": "api",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "CalibrateConfig",
    "CalibrationResult",
    "calibrate_model",
    "make_config",
]  # = sorted(_EXPORTS) (tests/core/test_lazy_exports.py)
