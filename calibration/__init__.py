"""INT8 post-training quantization of exported models (NNCF for OpenVINO, ONNX Runtime for ONNX).

Public API: :func:`calibrate_model` (``pruneofa calibrate``) with :class:`CalibrateConfig` (:mod:`.config`).
Imports :mod:`pruneofa.core` and :mod:`pruneofa.exporter`.
"""

from pruneofa.core.lazy import lazy_exports

_EXPORTS = {
    "CalibrateConfig": "config",
    "make_config": "config",
    "CalibrationResult": "api",
    "calibrate_model": "api",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
