"""The task registry: names, columns, label order as in HF `glue`, metrics, and look-up errors."""

from __future__ import annotations

import pytest

from pruneofa.core.errors import InputError
from pruneofa.core.support import EXPORT_TASKS
from pruneofa.core.tasks import DATA_TASKS, get_task


def test_registry_holds_glue_squad_and_mlm():
    assert list(DATA_TASKS) == [
        "cola",
        "sst2",
        "mrpc",
        "qqp",
        "stsb",
        "mnli",
        "mnli-mm",
        "qnli",
        "rte",
        "wnli",
        "squad",
        "mlm",
    ]


@pytest.mark.parametrize("spec", list(DATA_TASKS.values()), ids=list(DATA_TASKS))
def test_every_spec_is_consistent(spec):
    assert spec.export_task in EXPORT_TASKS
    assert spec.primary_metric in spec.metrics
    assert spec.text_columns
    if spec.kind in ("classification", "regression"):
        assert spec.label_column == "label" and spec.hub_dataset[0] == "nyu-mll/glue"
        assert spec.export_task == "text-classification"
    else:
        assert spec.label_column is None and spec.labels == ()


@pytest.mark.parametrize(
    "name,labels",
    [
        ("cola", ("unacceptable", "acceptable")),
        ("sst2", ("negative", "positive")),
        ("mrpc", ("not_equivalent", "equivalent")),
        ("qqp", ("not_duplicate", "duplicate")),
        ("mnli", ("entailment", "neutral", "contradiction")),
        ("rte", ("entailment", "not_entailment")),
        ("qnli", ("entailment", "not_entailment")),
        ("wnli", ("not_entailment", "entailment")),  # the other way round from RTE, as in HF `glue`
    ],
)
def test_label_order_matches_hf_glue(name, labels):
    assert get_task(name).labels == labels
    assert get_task(name).num_labels == len(labels)


def test_regression_and_special_tasks():
    stsb = get_task("stsb")
    assert stsb.kind == "regression" and stsb.num_labels == 1 and stsb.metrics == ("pearson", "spearmanr")
    squad = get_task("squad")
    assert squad.kind == "question-answering" and squad.export_task == "question-answering"
    assert squad.text_columns == ("question", "context") and squad.hub_dataset == ("rajpurkar/squad", None)
    assert squad.metrics == ("exact_match", "f1") and squad.primary_metric == "f1"
    mlm = get_task("mlm")
    assert mlm.kind == "masked-lm" and mlm.export_task == "fill-mask" and mlm.primary_metric == "perplexity"
    assert mlm.hub_dataset == ("Salesforce/wikitext", "wikitext-103-raw-v1")


def test_dev_splits_and_hub_configs():
    assert get_task("mnli").dev_split == "validation_matched"
    assert get_task("mnli-mm").dev_split == "validation_mismatched"
    assert get_task("mnli-mm").hub_dataset == ("nyu-mll/glue", "mnli")
    assert (
        get_task("sst2").hub_dataset == ("nyu-mll/glue", "sst2")
        and get_task("sst2").dev_split == "validation"
    )


def test_primary_metrics():
    primaries = {name: spec.primary_metric for name, spec in DATA_TASKS.items()}
    assert primaries["cola"] == "matthews_correlation"
    assert primaries["mrpc"] == primaries["qqp"] == "f1"
    assert primaries["stsb"] == "pearson"
    assert all(primaries[n] == "accuracy" for n in ("sst2", "mnli", "mnli-mm", "qnli", "rte", "wnli"))


@pytest.mark.parametrize(
    "spelling,name", [("SST-2", "sst2"), ("STS-B", "stsb"), ("MNLI_MM", "mnli-mm"), ("CoLA", "cola")]
)
def test_get_task_accepts_glue_spellings(spelling, name):
    assert get_task(spelling).name == name


def test_unknown_task_is_one_line_listing_the_choices():
    with pytest.raises(InputError) as info:
        get_task("sts")
    message = str(info.value)
    assert "\n" not in message and "'sts'" in message
    assert message.endswith(", ".join(DATA_TASKS))
