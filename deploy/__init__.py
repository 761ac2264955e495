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

from typing import TYPE_CHECKING

from pruneofa.core.lazy import lazy_exports

if TYPE_CHECKING:  # what static tools see; at run time each name loads on first use (lazy_exports)
    from pruneofa.deploy.benchmarking.benchmark import benchmark_model as benchmark_model
    from pruneofa.deploy.benchmarking.report import BenchmarkReport as BenchmarkReport
    from pruneofa.deploy.config import BenchmarkConfig as BenchmarkConfig
    from pruneofa.deploy.config import LoadConfig as LoadConfig
    from pruneofa.deploy.config import OpenConfig as OpenConfig
    from pruneofa.deploy.config import PackageConfig as PackageConfig
    from pruneofa.deploy.config import ServeConfig as ServeConfig
    from pruneofa.deploy.config import ValidateConfig as ValidateConfig
    from pruneofa.deploy.opening import OpenedFolder as OpenedFolder
    from pruneofa.deploy.opening import open_folder as open_folder
    from pruneofa.deploy.packaging import PackageResult as PackageResult
    from pruneofa.deploy.packaging import package_model as package_model
    from pruneofa.deploy.packaging import unpack_archive as unpack_archive
    from pruneofa.deploy.pipeline import Pipeline as Pipeline
    from pruneofa.deploy.pipeline import load as load
    from pruneofa.deploy.settings import CompileSettings as CompileSettings
    from pruneofa.deploy.settings import SparseDecision as SparseDecision
    from pruneofa.deploy.settings import choose_settings as choose_settings
    from pruneofa.deploy.validation.reports import ValidationReport as ValidationReport
    from pruneofa.deploy.validation.validate import validate_model as validate_model

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
__all__ = [
    "BenchmarkConfig",
    "BenchmarkReport",
    "CompileSettings",
    "LoadConfig",
    "OpenConfig",
    "OpenedFolder",
    "PackageConfig",
    "PackageResult",
    "Pipeline",
    "ServeConfig",
    "SparseDecision",
    "ValidateConfig",
    "ValidationReport",
    "benchmark_model",
    "choose_settings",
    "load",
    "open_folder",
    "package_model",
    "unpack_archive",
    "validate_model",
]  # = sorted(_EXPORTS) (tests/core/test_lazy_exports.py)
