"""Deployment: pipelines over exported folders, validation, benchmarking, serving, model repositories.

Public API:
* :func:`load` (``pruneofa.deploy.load(folder, **options)``, options as in :class:`LoadConfig`): a Hugging
  Face-shaped pipeline on OpenVINO or ONNX Runtime;
* :func:`open_folder` with :class:`OpenConfig`: the one way to open an exported folder (the engine, its
  task, runtime, settings, kernel report and manifest), used by ``load``, serve and validate's runners;
* :func:`choose_settings`: compile settings (hint, streams, threads, sparse kernels) for this CPU;
* :func:`validate_model` (``pruneofa validate``) with :class:`ValidateConfig`;
* :func:`benchmark_model` (``pruneofa benchmark``) with :class:`BenchmarkConfig`;
* :func:`package_model` (``pruneofa package``) with :class:`PackageConfig`, :func:`unpack_archive`;
* ``pruneofa.deploy.serve.serve`` (``pruneofa serve``) with :class:`ServeConfig` (it needs the web stack).

The configs live in :mod:`.config`. Imports :mod:`pruneofa.core`, :mod:`pruneofa.exporter`,
:mod:`pruneofa.calibration` and :mod:`pruneofa.kernels`.
"""

from pruneofa.core.lazy import lazy_exports

_EXPORTS = {
    "BenchmarkConfig": "config",
    "LoadConfig": "config",
    "OpenConfig": "config",
    "PackageConfig": "config",
    "ServeConfig": "config",
    "ValidateConfig": "config",
    "BenchmarkReport": "benchmarking.report",
    "benchmark_model": "benchmarking.benchmark",
    "PackageResult": "packaging",
    "package_model": "packaging",
    "unpack_archive": "packaging",
    "OpenedFolder": "opening",
    "open_folder": "opening",
    "Pipeline": "pipeline",
    "load": "pipeline",
    "CompileSettings": "settings",
    "SparseDecision": "settings",
    "choose_settings": "settings",
    "ValidationReport": "validation.reports",
    "validate_model": "validation.validate",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
