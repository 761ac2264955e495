"""pruneofa: Prune Once for All sparse BERT-family models, trained, exported and deployed on CPUs.

The Python API mirrors the CLI: ``exporter.export_model`` is ``pruneofa export``. This package holds
the CLI, the task and model tables, the model-folder manifest and errors; it imports nothing heavy at
import time so that ``pruneofa --help`` answers at once.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("pruneofa")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
