"""The bounds ``pruneofa validate`` holds a candidate to, each one a gate (one JUnit test case): the drop
of the task's primary metric, the share of examples on which both models predict the same, and, when
asked for, the worst class or slice drop and the rise in calibration error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel

from pruneofa.core.errors import InputError
from pruneofa.core.evaluation import Evaluation
from pruneofa.core.fidelity import REGRESSION_TOLERANCE
from pruneofa.core.inference import InferenceTask
from pruneofa.core.tasks import TaskSpec
from pruneofa.deploy.config import ValidateConfig
from pruneofa.deploy.validation.behaviour import Behaviour, GroupScore

# Agreement is measured as the parity table of core/fidelity.py measures it: the same label, the same
# answer text, STS-B scores within the same tolerance.
REGRESSION_AGREEMENT = REGRESSION_TOLERANCE


class Gate(BaseModel):
    """One bound the candidate is held to; one JUnit test case. ``skipped``: not asked for, or nothing to
    measure it on (the message says which)."""

    name: str
    flag: str
    value: float | None
    bound: float | None
    status: Literal["pass", "fail", "skipped"]
    message: str
    detail: str = ""


def agreement(
    task: TaskSpec,
    inference: InferenceTask,
    reference: Evaluation,
    candidate: Evaluation,
    examples: Sequence[Any],
) -> float:
    """The share of examples on which both models predict the same, as ``inference``'s evaluation hook
    counts it: the same label, the same answer text, or scores within :data:`REGRESSION_AGREEMENT`."""
    return inference.evaluation.agreement(reference.predictions, candidate.predictions, examples, task)


def _where(row: GroupScore) -> str:
    return f"class {row.value!r}" if row.group == "class" else f"{row.group} {row.value!r}"


def gates(
    config: ValidateConfig,
    primary: str,
    scores: dict[str, dict[str, float]],
    drop: float,
    agreement: float,
    found: Behaviour,
) -> list[Gate]:
    """Every gate, in report order: the metric drop and the prediction agreement always; the worst class
    or slice and the calibration error when asked for (otherwise skipped, saying why)."""
    gates = [
        _at_most_gate(
            "metric_drop",
            "--max-drop",
            drop,
            config.max_drop,
            f"{primary} dropped by {drop:.2f} points",
            f"reference {primary} {scores['reference'][primary]:.2f}, candidate {scores['candidate'][primary]:.2f}",
        ),
        Gate(
            name="prediction_agreement",
            flag="--min-label-agreement",
            value=agreement,
            bound=config.min_agreement,
            status="fail" if agreement < config.min_agreement else "pass",
            message=f"predictions agree on {agreement:.2%} of examples "
            + (
                f"< --min-label-agreement {config.min_agreement:.2%}"
                if agreement < config.min_agreement
                else f">= {config.min_agreement:.2%}"
            ),
        ),
    ]
    worst, bound = found.worst, config.max_class_drop
    if bound is None:
        gates.append(_skipped("class_drop", "--max-class-drop", "not gated: pass --max-class-drop POINTS"))
    elif worst is None:
        gates.append(
            _skipped(
                "class_drop",
                "--max-class-drop",
                f"no class or slice has at least {config.min_slice_size} examples (--min-slice-size); "
                "nothing to gate",
            )
        )
    else:
        gates.append(
            _at_most_gate(
                "class_drop",
                "--max-class-drop",
                worst.drop,
                bound,
                f"{_where(worst)} {worst.metric} dropped by {worst.drop:.2f} points",
                f"reference {worst.reference:.2f}, candidate {worst.candidate:.2f} on {worst.examples} examples",
                pass_note=" (the worst)",
            )
        )
    calibration, bound = found.calibration, config.max_ece_increase
    if calibration is None:
        gates.append(
            _skipped("ece_increase", "--max-ece-increase", "calibration is measured for classification")
        )
    elif bound is None:
        gates.append(
            _skipped("ece_increase", "--max-ece-increase", "not gated: pass --max-ece-increase POINTS")
        )
    else:
        gates.append(
            _at_most_gate(
                "ece_increase",
                "--max-ece-increase",
                calibration.increase,
                bound,
                f"expected calibration error {'rose' if calibration.increase >= 0 else 'fell'} by "
                f"{abs(calibration.increase):.2f} points",
                f"reference ECE {calibration.reference.ece:.2f}, candidate {calibration.candidate.ece:.2f} "
                f"({calibration.bins} equal-width bins)",
            )
        )
    return gates


def _at_most_gate(
    name: str, flag: str, value: float, bound: float, measured: str, detail: str, pass_note: str = ""
) -> Gate:
    """A gate that fails when ``value`` exceeds ``bound``; its message is ``measured`` and the comparison."""
    failed = value > bound
    comparison = f" > {flag} {bound:g}" if failed else f" <= {bound:g}{pass_note}"
    return Gate(
        name=name,
        flag=flag,
        value=value,
        bound=bound,
        status="fail" if failed else "pass",
        message=measured + comparison,
        detail=detail,
    )


def _skipped(name: str, flag: str, why: str) -> Gate:
    return Gate(name=name, flag=flag, value=None, bound=None, status="skipped", message=why)


def check_options(task: TaskSpec, inference: InferenceTask, config: ValidateConfig) -> None:
    """Refuse, before any model loads, a task or a gate that validate cannot measure."""
    hook = inference.evaluation
    if task.kind not in hook.kinds:
        if not hook.kinds:
            raise InputError(
                f"validate cannot score {inference.name} on {task.name}: {hook.reason}; pass the task the "
                "model was fine-tuned for with --task"
            )
        raise InputError(
            f"{inference.name} is scored on {' or '.join(hook.kinds)} data and {task.name} is {task.kind}; "
            "pass a --task of that kind, or the --inference-task that fits it"
        )
    if config.max_ece_increase is not None and task.kind != "classification":
        raise InputError(
            f"--max-ece-increase gates the calibration of classifiers, and {task.name} is {task.kind}; drop it"
        )
