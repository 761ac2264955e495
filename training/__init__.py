"""PyTorch training for Prune Once for All: masks, sparsity schedules, distillation, recipes, Trainer
callbacks, NNCF QAT, and the commands ``pruneofa teacher | prune | finetune | qat``.

Public API: :class:`TrainConfig` (the budget) with :func:`prepare_teacher`, :func:`prune`,
:func:`finetune` (:mod:`.stages`) and ``pruneofa.training.qat.qat``; the engine they run on
(:mod:`.engine`: load → run → finish) for commands of your own. Imports only :mod:`pruneofa.core`.
"""

from typing import TYPE_CHECKING

from pruneofa.core.lazy import lazy_exports

if TYPE_CHECKING:  # what static tools see; at run time each name loads on first use (lazy_exports)
    from pruneofa.training.config import TrainConfig as TrainConfig
    from pruneofa.training.config import make_config as make_config
    from pruneofa.training.engine import TrainResult as TrainResult
    from pruneofa.training.recipe import Recipe as Recipe
    from pruneofa.training.recipe import load_recipe as load_recipe
    from pruneofa.training.stages import (
        finetune as finetune,
    )
    from pruneofa.training.stages import (
        prepare_teacher as prepare_teacher,
    )
    from pruneofa.training.stages import (
        prune as prune,
    )


_EXPORTS = {
    "TrainConfig": "config",
    "make_config": "config",
    "TrainResult": "engine",
    "prepare_teacher": "stages",
    "prune": "stages",
    "finetune": "stages",
    "load_recipe": "recipe",
    "Recipe": "recipe",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "Recipe",
    "TrainConfig",
    "TrainResult",
    "finetune",
    "load_recipe",
    "make_config",
    "prepare_teacher",
    "prune",
]  # = sorted(_EXPORTS) (tests/core/test_lazy_exports.py)
