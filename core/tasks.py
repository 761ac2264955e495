"""The task registry: what each benchmark task reads, predicts and is scored by, in one table.

Training, calibration and validation all need the same facts about a task (its text columns, label
names in id order, official metrics, which export task its model is, where its data lives on the hub).
Keeping them here as data means no stage carries its own ``if task == "stsb"`` chain, and a new task is
one entry. Label names and column names are those of the Hugging Face ``glue`` / ``squad`` datasets, so
label ids mean the same thing whether the data came from the hub or from the original GLUE TSV files.
This module imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pruneofa.core.errors import InputError

TaskKind = Literal["classification", "regression", "question-answering", "masked-lm"]

_GLUE = "nyu-mll/glue"


@dataclass(frozen=True)
class TaskSpec:
    """One task. ``labels`` are in id order, so ``labels[i]`` is the name of class ``i``."""

    name: str
    kind: TaskKind
    text_columns: tuple[str, ...]
    label_column: str | None
    labels: tuple[str, ...]
    metrics: tuple[str, ...]
    primary_metric: str
    export_task: str
    hub_dataset: tuple[str, str | None]
    dev_split: str

    @property
    def num_labels(self) -> int:
        """Output width of the task head: 1 for regression (STS-B), the number of classes otherwise."""
        return 1 if self.kind == "regression" else len(self.labels)


def _glue(
    name: str,
    text_columns: tuple[str, ...],
    labels: tuple[str, ...],
    metrics: tuple[str, ...],
    primary: str,
    *,
    config: str | None = None,
    dev_split: str = "validation",
) -> TaskSpec:
    return TaskSpec(
        name=name,
        kind="classification" if labels else "regression",
        text_columns=text_columns,
        label_column="label",
        labels=labels,
        metrics=metrics,
        primary_metric=primary,
        export_task="text-classification",  # STS-B too: a one-output sequence-classification head
        hub_dataset=(_GLUE, config or name),
        dev_split=dev_split,
    )


_PAIR = ("sentence1", "sentence2")
_NLI = ("premise", "hypothesis")
_MNLI_LABELS = ("entailment", "neutral", "contradiction")
_TWO_WAY_NLI = ("entailment", "not_entailment")

# Primary metrics follow what GLUE ranks by and what the Prune OFA paper reports: CoLA is scored by
# Matthews correlation because its classes are unbalanced (accuracy rewards guessing "acceptable");
# MRPC and QQP by F1 of the positive class for the same reason (about 2:1 and 1:2 class ratios);
# STS-B is a regression, scored by Pearson correlation; SQuAD by token F1, which gives partial credit
# for overlapping spans where exact match gives none. Balanced classification tasks use accuracy.
DATA_TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        _glue(
            "cola",
            ("sentence",),
            ("unacceptable", "acceptable"),
            ("matthews_correlation",),
            "matthews_correlation",
        ),
        _glue("sst2", ("sentence",), ("negative", "positive"), ("accuracy",), "accuracy"),
        _glue("mrpc", _PAIR, ("not_equivalent", "equivalent"), ("accuracy", "f1"), "f1"),
        _glue("qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), ("accuracy", "f1"), "f1"),
        _glue("stsb", _PAIR, (), ("pearson", "spearmanr"), "pearson"),
        _glue("mnli", _NLI, _MNLI_LABELS, ("accuracy",), "accuracy", dev_split="validation_matched"),
        _glue(
            "mnli-mm",
            _NLI,
            _MNLI_LABELS,
            ("accuracy",),
            "accuracy",
            config="mnli",
            dev_split="validation_mismatched",
        ),
        _glue("qnli", ("question", "sentence"), _TWO_WAY_NLI, ("accuracy",), "accuracy"),
        _glue("rte", _PAIR, _TWO_WAY_NLI, ("accuracy",), "accuracy"),
        # WNLI's ids are the other way round from RTE's, as in the GLUE files and HF `glue`.
        _glue("wnli", _PAIR, ("not_entailment", "entailment"), ("accuracy",), "accuracy"),
        TaskSpec(
            name="squad",
            kind="question-answering",
            text_columns=("question", "context"),
            label_column=None,
            labels=(),
            metrics=("exact_match", "f1"),
            primary_metric="f1",
            export_task="question-answering",
            hub_dataset=("rajpurkar/squad", None),
            dev_split="validation",
        ),
        # Plain-text corpora for the MLM stages (teacher preparation, sparse pre-training).
        TaskSpec(
            name="mlm",
            kind="masked-lm",
            text_columns=("text",),
            label_column=None,
            labels=(),
            metrics=("perplexity",),
            primary_metric="perplexity",
            export_task="fill-mask",
            hub_dataset=("Salesforce/wikitext", "wikitext-103-raw-v1"),
            dev_split="validation",
        ),
    )
}


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "")


# Spellings people type: GLUE folder names (SST-2, STS-B, MNLI-MM), underscores, upper case.
_BY_KEY = {_key(name): spec for name, spec in DATA_TASKS.items()}


def get_task(name: str) -> TaskSpec:
    """The spec of task ``name``; GLUE folder spellings such as ``SST-2`` or ``STS-B`` are accepted."""
    spec = _BY_KEY.get(_key(name))
    if spec is None:
        raise InputError(f"unknown task {name!r}; choose one of {', '.join(DATA_TASKS)}")
    return spec
