"""torch → ONNX and OpenVINO IR, with sparsity accounting, structured shrink and output parity.

Public API: :func:`export_model` (``pruneofa export``) with :class:`ExportConfig`.
Imports ``pruneofa`` only.
"""

from exporter.api import ExportConfig, ExportResult, export_model, make_config

__all__ = ["ExportConfig", "ExportResult", "export_model", "make_config"]
