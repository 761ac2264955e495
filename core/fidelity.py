"""Output parity that fits the task, defined once: what is compared, and how close is close enough.

``calibrate`` (INT8 against its FP32 export), ``export`` and QAT's export (the exported model against
PyTorch) and ``validate`` all compare a candidate's outputs with a reference's on the same inputs. What
"the same" should mean depends on what the model is for, so it is data here, one row per export task
(:data:`TASK_PARITY`), and every caller measures through :class:`ParityMeter`:

====================  ==========================================================  =========================
export task           compared, over real (non-padding) tokens only                bound: option (default)
====================  ==========================================================  =========================
text-classification   the predicted label of each input                            --min-parity-agreement (0.95)
 (one output: STS-B)  the score of each input, equal within 0.1                    --min-parity-agreement (0.95)
token-classification  the predicted label of each token                            --min-parity-agreement (0.95)
question-answering    the best answer span of each input (start ≤ end < start+30)  --min-parity-agreement (0.95)
feature-extraction    cosine similarity of the mean-pooled embeddings of the        --min-cosine (0.97), on
                      parity texts, mean and minimum; the nearest neighbour of      the minimum;
                      each text among the others (reference near-ties agree)        --min-neighbours (0.90)
fill-mask             overlap of the top-5 tokens at each token (and top-1)         --min-topk-overlap (0.80)
====================  ==========================================================  =========================

The argmax over hidden units means nothing for an embedding (an INT8 copy can change many of them while
its sentence embeddings stay close); it is still reported per output, beside the raw errors (max and mean absolute, max
relative), but it gates only where it is the task's decision. Raw errors are gated only where the
caller gives an ``atol`` (an FP32 export against PyTorch); INT8 errors are expected and reported.

Besides pruneofa.core, this module imports only numpy and pydantic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pruneofa.core.cliargs import cli, flag_of
from pruneofa.core.inference import INFERENCE_TASKS
from pruneofa.core.manifest import OutputParity, ParityCheck, ParityReport
from pruneofa.core.parity_measures import (
    NEIGHBOUR_TIE,
    REGRESSION_TOLERANCE,
    TOP_K,
    TaskParity,
    cosine,
    neighbour_agreement,
    real,
)
from pruneofa.core.support import EXPORT_TASKS

DEFAULT_MIN_AGREEMENT = 0.95
DEFAULT_MIN_COSINE = 0.97
DEFAULT_MIN_NEIGHBOURS = 0.9
DEFAULT_MIN_TOPK_OVERLAP = 0.8

# Every parity row, from the task files (``text-regression``: a one-output text-classification head).
TASK_PARITY: dict[str, TaskParity] = {
    row.name: row for task in INFERENCE_TASKS.values() for row in task.parity.rows
}


# The bounds as reusable field types: a config whose command compares outputs declares
# ``min_cosine: MinCosine = DEFAULT_MIN_COSINE`` (and so on), so every command offers the same flags
# with the same help and defaults, and :func:`parity_options` reads them back.
MinAgreement = Annotated[
    float,
    Field(
        ge=0,
        le=1,
        description="classification, token classification, QA: min share of equal labels / answer spans "
        f"(STS-B: scores within {REGRESSION_TOLERANCE:g})",
        # parity with the reference outputs; validate's --min-label-agreement is agreement on a data set
        json_schema_extra=cli(flag="--min-parity-agreement", deprecated=("--min-agreement",)),
    ),
]
MinCosine = Annotated[
    float,
    Field(
        ge=-1,
        le=1,
        description="feature extraction: min cosine similarity of each parity text's mean-pooled embedding",
    ),
]
MinNeighbours = Annotated[
    float,
    Field(
        ge=0,
        le=1,
        description="feature extraction: min share of parity texts that keep their nearest neighbour "
        f"(a near-tie of the reference, within {NEIGHBOUR_TIE:g} cosine, counts as kept)",
    ),
]
MinTopkOverlap = Annotated[
    float,
    Field(ge=0, le=1, description=f"fill-mask: min mean overlap of the top-{TOP_K} tokens at each token"),
]


class ParityOptions(BaseModel):
    """The bounds of output parity, one per kind of measure (the task decides which apply)."""

    model_config = ConfigDict(extra="forbid")

    min_agreement: MinAgreement = DEFAULT_MIN_AGREEMENT
    min_cosine: MinCosine = DEFAULT_MIN_COSINE
    min_neighbours: MinNeighbours = DEFAULT_MIN_NEIGHBOURS
    min_topk_overlap: MinTopkOverlap = DEFAULT_MIN_TOPK_OVERLAP


def parity_options(config: Any) -> ParityOptions:
    """The bounds a command's config gives (fields it lacks keep the task defaults)."""
    return ParityOptions(
        **{name: getattr(config, name) for name in ParityOptions.model_fields if hasattr(config, name)}
    )


def task_parity(task: str, num_outputs: int | None = None) -> TaskParity:
    """The row of ``task`` (an export task) for a head with ``num_outputs`` outputs (a text-classification
    head with one output is a regression)."""
    if task not in INFERENCE_TASKS:
        known = ", ".join(INFERENCE_TASKS)
        raise ValueError(f"no parity is defined for task {task!r}; known: {known}")
    return INFERENCE_TASKS[task].parity.row(num_outputs)


def flag(option: str) -> str:
    """The command-line flag of a :class:`ParityOptions` field (``min_agreement`` → ``--min-parity-agreement``)."""
    return flag_of(option, ParityOptions.model_fields[option])


@dataclass
class _OutputErrors:
    max_abs: float = 0.0
    sum_abs: float = 0.0
    count: int = 0
    max_ref: float = 0.0
    agree: int = 0
    decisions: int = 0


@dataclass
class ParityMeter:
    """Accumulates one comparison batch by batch, then judges it against :class:`ParityOptions`.

    ``add`` takes the batch's attention mask and both models' outputs in the export task's output order
    (``EXPORT_TASKS[task].outputs``); ``texts=False`` marks a batch of random token sequences. Those count
    for every task's decisions and raw errors, but an embedding of random tokens means nothing to a user
    and lies outside what INT8 was calibrated on (all-MiniLM-L6-v2 calibrated on 30 sentences: 0.987
    cosine on texts, 0.966 on random tokens), so for feature extraction they are reported apart and left
    out of the gated cosine and of the nearest neighbours."""

    task: str
    samples: int = 0
    _errors: dict[str, _OutputErrors] = field(default_factory=dict)
    _counts: dict[str, list[float]] = field(default_factory=dict)  # measure → [sum, count]
    _cosines: tuple[list[np.ndarray], list[np.ndarray]] = field(default_factory=lambda: ([], []))
    _embeddings: tuple[list[np.ndarray], list[np.ndarray]] = field(default_factory=lambda: ([], []))
    _num_outputs: int | None = None

    def __post_init__(self) -> None:
        if self.task not in EXPORT_TASKS:
            raise ValueError(f"unknown export task {self.task!r}")
        self._spec = EXPORT_TASKS[self.task]
        self._hook = INFERENCE_TASKS[self.task].parity

    def count(self, key: str, agreeing: float, total: int) -> None:
        """Add ``agreeing`` of ``total`` comparisons to measure ``key`` (a task's measure calls it)."""
        sums = self._counts.setdefault(key, [0.0, 0])
        sums[0] += float(agreeing)
        sums[1] += total

    def embeddings(self, reference: np.ndarray, candidate: np.ndarray, *, texts: bool) -> None:
        """Pooled embeddings of one batch: cosines always, nearest neighbours for texts only."""
        self._cosines[0 if texts else 1].append(cosine(reference, candidate))
        if texts:
            self._embeddings[0].append(reference)
            self._embeddings[1].append(candidate)

    def outputs_per_input(self, width: int) -> None:
        """The head's output width, which picks the task's parity row (one output: a regression)."""
        self._num_outputs = width

    def add(
        self,
        mask: np.ndarray,
        reference: Sequence[np.ndarray],
        candidate: Sequence[np.ndarray],
        *,
        texts: bool = True,
    ) -> None:
        mask = np.asarray(mask)
        self.samples += mask.shape[0]
        for name, ref, got in zip(self._spec.outputs, reference, candidate, strict=True):
            ref, got = np.asarray(ref, np.float32), np.asarray(got, np.float32)
            errors = self._errors.setdefault(name, _OutputErrors())
            ref_v = real(ref, mask) if self._spec.per_token else ref
            got_v = real(got, mask) if self._spec.per_token else got
            diff = np.abs(ref_v - got_v)
            errors.max_abs = max(errors.max_abs, float(diff.max(initial=0.0)))
            errors.sum_abs += float(diff.sum())
            errors.count += diff.size
            errors.max_ref = max(errors.max_ref, float(np.abs(ref_v).max(initial=0.0)))
            if self._hook.decisions is not None:
                ref_d, got_d = self._hook.decisions(ref, mask), self._hook.decisions(got, mask)
            else:
                ref_d, got_d = ref_v.argmax(axis=-1), got_v.argmax(axis=-1)
            errors.agree += int((ref_d == got_d).sum())
            errors.decisions += ref_d.size
        self._hook.measure(
            self,
            mask,
            [np.asarray(r, np.float32) for r in reference],
            [np.asarray(c, np.float32) for c in candidate],
            texts,
        )

    def measures(self) -> dict[str, float]:
        """The task's measures so far (a measure with nothing to measure yet is left out)."""
        values = {key: total / count for key, (total, count) in self._counts.items() if count}
        texts, random = (np.concatenate(c) if c else None for c in self._cosines)
        if texts is not None:
            values["cosine_mean"] = float(texts.mean())
            values["cosine_min"] = float(texts.min())
        if random is not None:
            values["random_cosine_min"] = float(random.min())
        if sum(len(e) for e in self._embeddings[0]) >= 3:
            values["neighbour_agreement"], values["neighbour_identical"] = neighbour_agreement(
                np.concatenate(self._embeddings[0]), np.concatenate(self._embeddings[1])
            )
        return values

    @property
    def parity(self) -> TaskParity:
        return task_parity(self.task, self._num_outputs)

    def checks(self, options: ParityOptions) -> list[ParityCheck]:
        values = self.measures()
        checks = []
        for measure in self.parity.measures:
            if measure.key not in values:
                continue
            value = values[measure.key]
            bound = None if measure.option is None else float(getattr(options, measure.option))
            checks.append(
                ParityCheck(
                    measure=measure.key,
                    label=f"{measure.label} {measure.stat}".strip(),
                    value=value,
                    bound=bound,
                    option=None if measure.option is None else flag(measure.option),
                    passed=bound is None or value >= bound,
                )
            )
        return checks

    def report(self, *, reference: str, atol: float | None, options: ParityOptions) -> ParityReport:
        """The :class:`ParityReport` of everything added: task measures judged by ``options``, raw errors by
        ``atol`` (``None``: reported, not gated)."""
        outputs = [
            OutputParity(
                name=name,
                max_abs_error=e.max_abs,
                mean_abs_error=e.sum_abs / max(e.count, 1),
                max_rel_error=e.max_abs / max(e.max_ref, 1e-12),
                argmax_agreement=e.agree / max(e.decisions, 1),
            )
            for name, e in self._errors.items()
        ]
        checks = self.checks(options)
        passed = all(c.passed for c in checks) and (
            atol is None or all(o.max_abs_error <= atol for o in outputs)
        )
        return ParityReport(
            reference=reference,
            samples=self.samples,
            atol=atol,
            min_agreement=options.min_agreement,
            outputs=outputs,
            passed=passed,
            task=self.parity.name,
            checks=checks,
        )


_MEASURES = {m.key: m for p in TASK_PARITY.values() for m in p.measures}


def format_value(check: ParityCheck) -> str:
    measure = _MEASURES.get(check.measure)
    return f"{check.value:.2%}" if measure is None or measure.share else f"{check.value:.4f}"


def describe(checks: Sequence[ParityCheck]) -> str:
    """What was compared and how it came out, in one line, e.g. 'embedding cosine mean 0.9981 min 0.9912,
    nearest-neighbour agreement 100.00%'."""
    parts: list[str] = []
    grouped = None  # the label of the previous check when it was one statistic of several
    for check in checks:
        measure = _MEASURES.get(check.measure)
        if measure is not None and measure.stat and measure.label == grouped:
            parts[-1] += f" {measure.stat} {format_value(check)}"
        else:
            parts.append(f"{check.label} {format_value(check)}")
        grouped = measure.label if measure is not None and measure.stat else None
    return ", ".join(parts)


def failure_reason(report: ParityReport) -> str:
    """One line naming the measure that failed, its bound and the option that sets it."""
    failed = [c for c in report.checks if not c.passed]
    if failed:
        return "; ".join(
            f"{c.label} {format_value(c)} < {c.option} {c.bound:g} (vs {report.reference}, {report.samples} inputs)"
            for c in failed
        )
    if report.atol is not None and report.outputs:
        worst = max(report.outputs, key=lambda o: o.max_abs_error)
        if worst.max_abs_error > report.atol:
            return (
                f"output {worst.name} differs by up to {worst.max_abs_error:.3g} > atol {report.atol:g} "
                "(raise --atol only if that error is acceptable)"
            )
    if not report.checks and report.outputs:  # a manifest written before task parity existed
        low = min(report.outputs, key=lambda o: o.argmax_agreement)
        return (
            f"output {low.name} agrees on {low.argmax_agreement:.2%} of decisions "
            f"< --min-parity-agreement {report.min_agreement:.2%}"
        )
    return "output parity failed"
