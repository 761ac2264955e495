"""torch → ONNX and OpenVINO IR, with sparsity accounting, structured shrink and output parity.

Public API: :func:`export_model` (``pruneofa export``) with :class:`ExportConfig` (:mod:`.config`).
Imports only :mod:`pruneofa.core`.
"""

from pruneofa.core.lazy import lazy_exports

_EXPORTS = {
    "ExportConfig": "config",
    "make_config": "config",
    "ExportResult": "api",
    "export_model": "api",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
