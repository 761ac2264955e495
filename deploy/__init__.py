"""Loading exported folders into runtimes; validation, benchmarking, serving and model repositories.

Public API:
* :func:`load` (``deploy.load(folder)``): a Hugging Face-shaped pipeline on OpenVINO or ONNX Runtime;
* :func:`choose_settings`: compile settings (hint, streams, threads, sparse kernels) for this CPU;
* :func:`validate_model` (``pruneofa validate``) with :class:`ValidateConfig`;
* :func:`benchmark_model` (``pruneofa benchmark``), :func:`package_model` / :func:`unpack_archive`
  (``pruneofa package``); ``deploy.serve.serve`` (``pruneofa serve``, imported on demand: it needs the
  web stack).

Imports ``pruneofa``, ``exporter`` and ``calibration``.
"""

from deploy.benchmark import BenchmarkConfig, BenchmarkReport, benchmark_model
from deploy.package import PackageResult, package_model, unpack_archive
from deploy.pipeline import Pipeline, load
from deploy.settings import CompileSettings, SparseDecision, choose_settings
from deploy.validate import ValidateConfig, ValidationReport, validate_model

__all__ = [
    "BenchmarkConfig",
    "BenchmarkReport",
    "CompileSettings",
    "PackageResult",
    "Pipeline",
    "SparseDecision",
    "ValidateConfig",
    "ValidationReport",
    "benchmark_model",
    "choose_settings",
    "load",
    "package_model",
    "unpack_archive",
    "validate_model",
]
