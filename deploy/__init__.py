"""Loading exported folders into runtimes; validation, benchmarking, serving and model repositories.

Public API: :func:`validate_model` (``pruneofa validate``) with :class:`ValidateConfig`.
Imports ``pruneofa``, ``exporter`` and ``calibration``.
"""

from deploy.validate import ValidateConfig, ValidationReport, validate_model

__all__ = ["ValidateConfig", "ValidationReport", "validate_model"]
