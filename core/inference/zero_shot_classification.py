"""Zero-shot classification over an NLI (sequence-classification) export, with the semantics of
transformers' ``zero-shot-classification`` pipeline.

``pipe("text", candidate_labels=["sports", "politics"])`` → ``{"sequence", "labels", "scores"}``, labels
sorted by score. Each (text, hypothesis) pair, the hypothesis being ``hypothesis_template`` filled with a
label (default ``"This example is {}."``), is scored by the NLI model. ``multi_label=False``: a softmax
over the labels' entailment logits (the scores sum to 1); ``True``: each label alone, a softmax of its
entailment against its contradiction logit. The entailment id is the label in the model config whose name
starts with "entail" (as transformers finds it); the contradiction id the one whose name starts with
"contradict", else transformers' rule (the last id when entailment is 0, else 0). Pairs are truncated
longest-first to the model's maximum length.

Served (``pruneofa serve FOLDER --task zero-shot-classification``) with the ``text`` input tensor and
``candidate_labels`` / ``hypothesis_template`` / ``multi_label`` parameters; the v2 outputs are the
labels and scores of each text, ``[n, labels]``. Parity is that of the NLI head (text classification).
Evaluation: an NLI dev set (premise, hypothesis, label) scored by label *name*, so a head whose ids are
ordered differently from the data set (``CONTRADICTION, NEUTRAL, ENTAILMENT``) is scored right.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pruneofa.core.errors import InputError
from pruneofa.core.inference.base import (
    Evaluation,
    InferenceTask,
    Parameter,
    Pipeline,
    Tensor,
    as_list,
    check_texts,
    is_bool,
    softmax,
)
from pruneofa.core.inference.text_classification import PARITY as NLI_PARITY

DEFAULT_TEMPLATE = "This example is {}."
MAX_LABELS = 32


def _labels_ok(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip()) and len(value) <= 2000
    return (
        isinstance(value, list)
        and 1 <= len(value) <= MAX_LABELS
        and all(isinstance(label, str) and label.strip() and len(label) <= 200 for label in value)
    )


def _template_ok(value: Any) -> bool:
    """One ``{}`` where the label goes, and no other brace (``str.format`` cannot fail on it)."""
    return (
        isinstance(value, str)
        and len(value) <= 500
        and value.count("{}") == 1
        and value.replace("{}", "").count("{") == 0
        and value.replace("{}", "").count("}") == 0
    )


def parse_labels(labels: Any) -> list[str]:
    """transformers' reading: a comma-separated string or a list of labels."""
    if isinstance(labels, str):
        return [label.strip() for label in labels.split(",") if label.strip()]
    return list(labels)


def nli_ids(config: Any) -> tuple[int, int]:
    """(entailment id, contradiction id) from the model config's labels."""
    label2id = {str(name).lower(): int(i) for name, i in (getattr(config, "label2id", None) or {}).items()}
    entailment = next((i for name, i in label2id.items() if name.startswith("entail")), None)
    if entailment is None:
        names = ", ".join(sorted(label2id)) or "none"
        raise InputError(
            f"zero-shot classification needs an NLI model whose labels name entailment (this one has {names}); "
            "export an MNLI-style sequence-classification model"
        )
    contradiction = next((i for name, i in label2id.items() if name.startswith("contradict")), None)
    if contradiction is None:
        contradiction = int(config.num_labels) - 1 if entailment == 0 else 0
    return entailment, contradiction


class ZeroShotClassificationPipeline(Pipeline):
    """``pipe(text, candidate_labels=[...], hypothesis_template=..., multi_label=False)`` → for each text
    ``{"sequence", "labels", "scores"}`` (labels best first), as transformers' pipeline answers."""

    def preprocess(self, texts: list[str], labels: list[str], template: str) -> list[tuple[str, str]]:
        hypotheses = [template.format(label) for label in labels]
        return [(text, hypothesis) for text in texts for hypothesis in hypotheses]

    def logits(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        out = []
        for start in range(0, len(pairs), self.batch_size):
            chunk = pairs[start : start + self.batch_size]
            feed = self.encoder.encode([p[0] for p in chunk], [p[1] for p in chunk])
            out.append(self.forward(feed)[0])
        return np.concatenate(out).astype(np.float64)

    def postprocess(
        self, texts: list[str], labels: list[str], logits: np.ndarray, multi_label: bool
    ) -> list[dict[str, Any]]:
        entailment, contradiction = nli_ids(self.config)
        per_text = logits.reshape(len(texts), len(labels), -1)
        if multi_label or len(labels) == 1:
            scores = softmax(per_text[..., [contradiction, entailment]])[..., 1]
        else:
            scores = softmax(per_text[..., entailment])
        results = []
        for text, row in zip(texts, scores, strict=True):
            order = list(reversed(row.argsort()))
            results.append(
                {
                    "sequence": text,
                    "labels": [labels[i] for i in order],
                    "scores": [float(row[i]) for i in order],
                }
            )
        return results

    def __call__(
        self,
        inputs: Any,
        *,
        candidate_labels: Any = None,
        hypothesis_template: str = DEFAULT_TEMPLATE,
        multi_label: bool = False,
    ) -> Any:
        texts, many = as_list(inputs)
        check_texts(texts)
        if candidate_labels is None:
            raise InputError(
                "zero-shot classification needs candidate_labels (a list, or one comma-separated string)"
            )
        self.option("candidate_labels", candidate_labels)
        self.option("hypothesis_template", hypothesis_template)
        self.option("multi_label", multi_label)
        labels = parse_labels(candidate_labels)
        nli_ids(self.config)  # an NLI head, or a one-line error before any work
        logits = self.logits(self.preprocess(texts, labels, hypothesis_template))
        results = self.postprocess(texts, labels, logits, multi_label)
        return results if many else results[0]


def _label_scores(outputs: Any, data_task: Any, model_config: Any) -> np.ndarray:
    """NLI logits as columns of the data task's labels, matched by name (``entailment`` is ``ENTAILMENT``)."""
    names = {str(name).lower(): int(i) for name, i in (model_config.label2id or {}).items()}
    missing = [label for label in data_task.labels if label.lower() not in names]
    if missing:
        raise InputError(
            f"the model's labels ({', '.join(sorted(names))}) do not name {', '.join(missing)} of "
            f"{data_task.name}; evaluate zero-shot classification on an NLI data set with the model's labels"
        )
    columns = [names[label.lower()] for label in data_task.labels]
    return np.asarray(outputs)[:, columns]


def _predictions(outputs: Any, data_task: Any, model_config: Any) -> np.ndarray:
    """NLI logits → the data task's label ids, matched by name."""
    return _label_scores(outputs, data_task, model_config).argmax(-1)


class ZeroShotClassification(InferenceTask):
    name = "zero-shot-classification"
    export_task = "text-classification"
    pipeline = ZeroShotClassificationPipeline
    parameters = (
        Parameter(
            "candidate_labels",
            _labels_ok,
            f"a list of 1-{MAX_LABELS} non-empty labels, or one comma-separated string",
        ),
        Parameter("hypothesis_template", _template_ok, 'a text with one "{}" where the label goes'),
        Parameter("multi_label", is_bool, "true or false"),
    )
    v2_outputs = (Tensor("labels", "BYTES", rank=2), Tensor("scores", "FP32", rank=2))
    warmup_options = {"candidate_labels": ["warm", "cold"]}
    parity = NLI_PARITY
    evaluation = Evaluation(kinds=("classification",), predictions=_predictions, label_scores=_label_scores)

    def v2_columns(self, results: list[Any]) -> dict[str, tuple[list[int], list[Any]]]:
        shape = [len(results), len(results[0]["labels"]) if results else 0]
        return {
            "labels": (shape, [label for r in results for label in r["labels"]]),
            "scores": (shape, [score for r in results for score in r["scores"]]),
        }
