"""PyTorch training for Prune Once for All: masks, sparsity schedules, distillation, recipes, Trainer
callbacks, NNCF QAT, and the commands ``pruneofa teacher | prune | finetune | qat``.

Public API: :class:`TrainConfig` (the budget) with :func:`prepare_teacher`, :func:`prune`,
:func:`finetune` (:mod:`.stages`) and ``pruneofa.training.qat.qat``; the engine they run on
(:mod:`.engine`: load → run → finish) for commands of your own. Imports only :mod:`pruneofa.core`.
"""

from pruneofa.core.lazy import lazy_exports

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
__all__ = sorted(_EXPORTS)
