"""pruneofa: Prune Once for All sparse BERT-family models, trained, exported and deployed on CPUs.

The Python API mirrors the CLI: ``pruneofa.exporter.export_model`` is ``pruneofa export``. This root
package holds only the version; the command-line front (``pruneofa.cli``, ``pruneofa.commands``,
``pruneofa.recipe_runner``) sits on top of the components, and :mod:`pruneofa.core` is the ground they
all stand on. Nothing heavy is imported at import time, so ``pruneofa --help`` answers at once.
"""

from importlib import metadata as _metadata
from pkgutil import extend_path as _extend_path

# The components install as pruneofa.exporter, pruneofa.core, … from folders beside this one. Where this
# folder is found first (``python`` started in the repository root) but the install is a strict editable
# link tree or a wheel, the rest of the package is in another ``pruneofa`` folder on ``sys.path``:
# extend_path adds it, so ``pruneofa.exporter`` resolves either way.
__path__ = _extend_path(__path__, __name__)

try:
    __version__ = _metadata.version("pruneofa")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
