"""``pruneofa validate``: a candidate model held to a reference on a task's dev set.

* :mod:`.validate`: :func:`validate_model`, the command as a function;
* :mod:`.evaluation`: both models on the same examples (the task, the tokenizer, their outputs);
* :mod:`.gates`: the bounds (metric drop, agreement, worst class or slice, calibration error);
* :mod:`.reports`: the JSON report, JUnit XML, the terminal summary;
* :mod:`.behaviour`, :mod:`.behaviour_by_task`, :mod:`.columns`, :mod:`.behaviour_html`: what changed
  behind the headline number, by class, slice and ``--slice-by`` column, and its HTML page.
"""

from pruneofa.core.lazy import lazy_exports

_EXPORTS = {
    "validate_model": "validate",
    "ValidationReport": "reports",
    "format_report": "reports",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
