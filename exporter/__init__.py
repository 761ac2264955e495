"""torch → ONNX and OpenVINO IR, with sparsity accounting, structured shrink and output parity.

Public API: :func:`export_model` (``pruneofa export``) with :class:`ExportConfig` (:mod:`.config`).
Imports only :mod:`pruneofa.core`.
"""

from typing import TYPE_CHECKING

from pruneofa.core.lazy import lazy_exports

if TYPE_CHECKING:  # what static tools see; at run time each name loads on first use (lazy_exports)
    from pruneofa.exporter.api import ExportResult as ExportResult
    from pruneofa.exporter.api import export_model as export_model
    from pruneofa.exporter.config import ExportConfig as ExportConfig
    from pruneofa.exporter.config import make_config as make_config


_EXPORTS = {
    "ExportConfig": "config",
    "make_config": "config",
    "ExportResult": "api",
    "export_model": "api",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "ExportConfig",
    "ExportResult",
    "export_model",
    "make_config",
]  # = sorted(_EXPORTS) (tests/core/test_lazy_exports.py)
