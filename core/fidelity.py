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
from pruneofa.core.manifest import OutputParity, ParityCheck, ParityReport
from pruneofa.core.support import EXPORT_TASKS

TOP_K = 5
REGRESSION_TOLERANCE = 0.1  # STS-B scores (0-5) count as equal within 0.1, as validate counts them
MAX_ANSWER_TOKENS = 30  # as SQuAD post-processing (pruneofa.core.qa)
# A text's nearest neighbour "agrees" when the candidate's choice is one the reference itself ranks
# within this cosine of its own nearest: a near-tie in the reference (all-MiniLM-L6-v2 has pairs of
# parity sentences 0.006 apart) says nothing about the candidate. The strict share is reported beside it.
NEIGHBOUR_TIE = 0.01

DEFAULT_MIN_AGREEMENT = 0.95
DEFAULT_MIN_COSINE = 0.97
DEFAULT_MIN_NEIGHBOURS = 0.9
DEFAULT_MIN_TOPK_OVERLAP = 0.8


@dataclass(frozen=True)
class Measure:
    """One comparison: ``label`` and ``stat`` name it in reports, ``option`` (a :class:`ParityOptions`
    field) bounds it from below; ``None`` means reported, not gated."""

    key: str
    label: str
    stat: str = ""
    option: str | None = None
    share: bool = True  # shown as a percentage


@dataclass(frozen=True)
class TaskParity:
    """What parity means for one export task (``text-regression``: a one-output text-classification head)."""

    name: str
    compared: str
    measures: tuple[Measure, ...]


_AGREEMENT = "min_agreement"
TASK_PARITY: dict[str, TaskParity] = {
    spec.name: spec
    for spec in (
        TaskParity(
            "text-classification",
            "the predicted label of each input",
            (Measure("label_agreement", "label agreement", option=_AGREEMENT),),
        ),
        TaskParity(
            "text-regression",
            f"the score of each input, equal within {REGRESSION_TOLERANCE:g}",
            (Measure("score_agreement", f"scores within {REGRESSION_TOLERANCE:g}", option=_AGREEMENT),),
        ),
        TaskParity(
            "token-classification",
            "the predicted label of each real token",
            (Measure("token_agreement", "per-token label agreement", option=_AGREEMENT),),
        ),
        TaskParity(
            "question-answering",
            f"the best answer span of each input (at most {MAX_ANSWER_TOKENS} tokens)",
            (Measure("span_agreement", "answer-span agreement", option=_AGREEMENT),),
        ),
        TaskParity(
            "feature-extraction",
            "mean-pooled embeddings of the parity texts (cosine similarity, nearest neighbours)",
            (
                Measure("cosine_mean", "embedding cosine", "mean", share=False),
                Measure("cosine_min", "embedding cosine", "min", option="min_cosine", share=False),
                Measure("neighbour_agreement", "nearest neighbour", "agreement", option="min_neighbours"),
                Measure("neighbour_identical", "nearest neighbour", "identical"),
                Measure("random_cosine_min", "random-token embedding cosine", "min", share=False),
            ),
        ),
        TaskParity(
            "fill-mask",
            f"the top-{TOP_K} tokens predicted at each real token",
            (
                Measure("topk_overlap", f"top-{TOP_K} overlap", option="min_topk_overlap"),
                Measure("top1_agreement", "top-1 agreement"),
            ),
        ),
    )
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
    """The row of ``task`` (an export task); a text-classification head with one output is a regression."""
    if task == "text-classification" and num_outputs == 1:
        return TASK_PARITY["text-regression"]
    try:
        return TASK_PARITY[task]
    except KeyError:
        raise ValueError(f"no parity is defined for task {task!r}; known: {', '.join(TASK_PARITY)}") from None


def flag(option: str) -> str:
    """The command-line flag of a :class:`ParityOptions` field (``min_agreement`` → ``--min-parity-agreement``)."""
    return flag_of(option, ParityOptions.model_fields[option])


def _real(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Rows of a (batch, sequence, …) output at real tokens; other outputs unchanged."""
    if values.ndim >= 2 and values.shape[:2] == mask.shape:
        return values[mask.astype(bool)]
    return values


def pooled(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over real tokens of a (batch, sequence, hidden) output: the sentence embedding."""
    weights = mask.astype(np.float64)[..., None]
    return (hidden.astype(np.float64) * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)


def best_spans(start: np.ndarray, end: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(batch, 2) start and end of the best span over real tokens: end ≥ start, at most MAX_ANSWER_TOKENS."""
    length = start.shape[1]
    real = mask.astype(bool)
    s = np.where(real, start.astype(np.float64), -np.inf)
    e = np.where(real, end.astype(np.float64), -np.inf)
    i, j = np.indices((length, length))
    allowed = (j >= i) & (j - i < MAX_ANSWER_TOKENS)
    scores = np.where(allowed[None], s[:, :, None] + e[:, None, :], -np.inf)
    flat = scores.reshape(len(scores), -1).argmax(axis=1)
    return np.stack(np.unravel_index(flat, (length, length)), axis=1)


def top_k(logits: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """The k highest-scoring ids of each row, as sets are compared (order within the k is irrelevant)."""
    k = min(k, logits.shape[-1])
    return np.argpartition(-logits, k - 1, axis=-1)[..., :k]


def similarities(embeddings: np.ndarray) -> np.ndarray:
    """Cosine similarity of every row with every other row (the diagonal is -inf)."""
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    return similarity


def neighbour_agreement(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    """(agreement, identical): the share of rows whose nearest other row under ``candidate`` is the
    reference's nearest or within :data:`NEIGHBOUR_TIE` of it by the reference's similarities, and the
    share whose nearest row is exactly the same."""
    ref_sim, got_sim = similarities(reference), similarities(candidate)
    ref_nn, got_nn = ref_sim.argmax(axis=1), got_sim.argmax(axis=1)
    rows = np.arange(len(reference))
    close = ref_sim[rows, got_nn] >= ref_sim[rows, ref_nn] - NEIGHBOUR_TIE
    return float(close.mean()), float((ref_nn == got_nn).mean())


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return (a * b).sum(axis=1) / norms


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

    def _count(self, key: str, agreeing: float, total: int) -> None:
        sums = self._counts.setdefault(key, [0.0, 0])
        sums[0] += float(agreeing)
        sums[1] += total

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
            ref_v = _real(ref, mask) if self._spec.per_token else ref
            got_v = _real(got, mask) if self._spec.per_token else got
            diff = np.abs(ref_v - got_v)
            errors.max_abs = max(errors.max_abs, float(diff.max(initial=0.0)))
            errors.sum_abs += float(diff.sum())
            errors.count += diff.size
            errors.max_ref = max(errors.max_ref, float(np.abs(ref_v).max(initial=0.0)))
            if self.task == "question-answering":  # each output alone: argmax over real positions
                ref_d = np.where(mask.astype(bool), ref, -np.inf).argmax(axis=1)
                got_d = np.where(mask.astype(bool), got, -np.inf).argmax(axis=1)
            else:
                ref_d, got_d = ref_v.argmax(axis=-1), got_v.argmax(axis=-1)
            errors.agree += int((ref_d == got_d).sum())
            errors.decisions += ref_d.size
        self._measure(mask, [np.asarray(r, np.float32) for r in reference], candidate, texts)

    def _measure(self, mask: np.ndarray, reference: list[np.ndarray], candidate, texts: bool) -> None:
        candidate = [np.asarray(c, np.float32) for c in candidate]
        first_ref, first_got = reference[0], candidate[0]
        if self.task == "text-classification":
            self._num_outputs = first_ref.shape[-1]
            if first_ref.shape[-1] == 1:
                close = np.abs(first_ref.reshape(-1) - first_got.reshape(-1)) <= REGRESSION_TOLERANCE
                self._count("score_agreement", close.sum(), close.size)
            else:
                same = first_ref.argmax(-1) == first_got.argmax(-1)
                self._count("label_agreement", same.sum(), same.size)
        elif self.task == "token-classification":
            same = _real(first_ref, mask).argmax(-1) == _real(first_got, mask).argmax(-1)
            self._count("token_agreement", same.sum(), same.size)
        elif self.task == "question-answering":
            ref_spans = best_spans(reference[0], reference[1], mask)
            got_spans = best_spans(candidate[0], candidate[1], mask)
            same = (ref_spans == got_spans).all(axis=1)
            self._count("span_agreement", same.sum(), same.size)
        elif self.task == "feature-extraction":
            ref_p, got_p = pooled(first_ref, mask), pooled(first_got, mask)
            self._cosines[0 if texts else 1].append(cosine(ref_p, got_p))
            if texts:
                self._embeddings[0].append(ref_p)
                self._embeddings[1].append(got_p)
        elif self.task == "fill-mask":
            ref_l, got_l = _real(first_ref, mask), _real(first_got, mask)
            ref_k, got_k = top_k(ref_l), top_k(got_l)
            k = ref_k.shape[-1]
            overlap = (ref_k[:, :, None] == got_k[:, None, :]).any(axis=2).sum(axis=1) / k
            self._count("topk_overlap", overlap.sum(), overlap.size)
            same = ref_l.argmax(-1) == got_l.argmax(-1)
            self._count("top1_agreement", same.sum(), same.size)

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
