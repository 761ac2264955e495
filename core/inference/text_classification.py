"""Text classification (sequence classification; one output: a regression such as STS-B).

``pipe("text")`` → ``[{"label", "score"}]``; a ``{"text", "text_pair"}`` dict classifies a pair;
``top_k=N`` or ``None`` → sorted lists, as in transformers. Parity: the predicted label of each input (a
one-output head: its score, equal within the regression tolerance). Evaluation: GLUE-style
classification (argmax) and regression (the score)."""

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
    int_between,
    one_of,
    same_predictions,
    sigmoid,
    softmax,
)
from pruneofa.core.parity_measures import REGRESSION_TOLERANCE, Measure, ParityHook, Tally, TaskParity

_FUNCTIONS = {"softmax": softmax, "sigmoid": sigmoid, "none": lambda x: x}


class TextClassificationPipeline(Pipeline):
    """``pipe("text")`` → ``[{"label", "score"}]``; ``top_k=N`` or ``None`` → sorted lists, as in transformers."""

    def _function(self, function_to_apply: str | None) -> str:
        if function_to_apply is not None:
            return self.option("function_to_apply", str(function_to_apply).lower())
        problem = getattr(self.config, "problem_type", None)
        labels = int(getattr(self.config, "num_labels", 2))
        if problem == "regression":
            return "none"
        if problem == "multi_label_classification" or labels == 1:
            return "sigmoid"
        return "softmax"

    def preprocess(self, inputs: list) -> tuple[list[str], list[str] | None]:
        texts, pairs = [], []
        for item in inputs:
            if isinstance(item, dict):
                if "text" not in item:
                    raise InputError('a text pair is {"text": ..., "text_pair": ...}; "text" is missing')
                texts.append(item["text"])
                pairs.append(item.get("text_pair"))
            else:
                texts.append(item)
                pairs.append(None)
        check_texts(texts)
        if any(p is not None for p in pairs):
            check_texts(pairs, "text_pair")
            return texts, pairs
        return texts, None

    def logits(self, inputs: list) -> np.ndarray:
        texts, pairs = self.preprocess(inputs)
        out = []
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start : start + self.batch_size]
            chunk_pairs = pairs[start : start + self.batch_size] if pairs is not None else None
            out.append(self.forward(self.encoder.encode(chunk, chunk_pairs))[0])
        return np.concatenate(out) if out else np.zeros((0, int(self.config.num_labels)), np.float32)

    def postprocess(self, logits: np.ndarray, function: str, top_k: Any) -> list[Any]:
        scores = _FUNCTIONS[function](logits)
        id2label = self.config.id2label
        results = []
        for row in scores:
            if top_k == "":
                best = int(row.argmax())
                results.append({"label": id2label[best], "score": float(row[best])})
                continue
            ranked = sorted(
                ({"label": id2label[i], "score": float(s)} for i, s in enumerate(row)),
                key=lambda d: d["score"],
                reverse=True,
            )
            results.append(ranked if top_k is None else ranked[: int(top_k)])
        return results

    def __call__(self, inputs: Any, *, top_k: Any = "", function_to_apply: str | None = None) -> Any:
        items, many = as_list(inputs)
        function = self._function(function_to_apply)
        results = self.postprocess(self.logits(items), function, top_k)
        if (
            top_k == ""
        ):  # transformers: a string gives [result], a {"text", "text_pair"} dict the result itself
            return results if many or isinstance(inputs, str) else results[0]
        return results if many else results[0]


def _measure(tally: Tally, mask: np.ndarray, reference: list, candidate: list, texts: bool) -> None:
    ref, got = reference[0], candidate[0]
    tally.outputs_per_input(ref.shape[-1])
    if ref.shape[-1] == 1:
        close = np.abs(ref.reshape(-1) - got.reshape(-1)) <= REGRESSION_TOLERANCE
        tally.count("score_agreement", close.sum(), close.size)
    else:
        same = ref.argmax(-1) == got.argmax(-1)
        tally.count("label_agreement", same.sum(), same.size)


PARITY = ParityHook(
    rows=(
        TaskParity(
            "text-classification",
            "the predicted label of each input",
            (Measure("label_agreement", "label agreement", option="min_agreement"),),
        ),
        TaskParity(
            "text-regression",
            f"the score of each input, equal within {REGRESSION_TOLERANCE:g}",
            (Measure("score_agreement", f"scores within {REGRESSION_TOLERANCE:g}", option="min_agreement"),),
        ),
    ),
    measure=_measure,
    regression_row="text-regression",
)


def _predictions(outputs: Any, data_task: Any, model_config: Any) -> np.ndarray:
    """Class ids by argmax (the head's ids are the data task's), or the scores of a regression."""
    logits = np.asarray(outputs)
    return logits.reshape(-1) if data_task.kind == "regression" else logits.argmax(-1)


def _label_scores(outputs: Any, data_task: Any, model_config: Any) -> np.ndarray:
    """The logits as they are: the head's ids are the data task's."""
    return np.asarray(outputs)


def _agreement(reference: Any, candidate: Any, examples: Any, data_task: Any) -> float:
    """The same label, or (regression) scores within :data:`REGRESSION_TOLERANCE`, as parity counts them."""
    if data_task.kind != "regression":
        return same_predictions(reference, candidate, examples, data_task)
    difference = np.abs(np.asarray(reference) - np.asarray(candidate))
    return int((difference <= REGRESSION_TOLERANCE).sum()) / max(len(examples), 1)


class TextClassification(InferenceTask):
    name = "text-classification"
    export_task = "text-classification"
    pipeline = TextClassificationPipeline
    parameters = (
        Parameter("top_k", lambda v: v is None or int_between(1, 1000)(v), "null or an integer 1-1000"),
        Parameter("function_to_apply", one_of("softmax", "sigmoid", "none"), "softmax, sigmoid or none"),
    )
    v2_inputs = ("text", "text_pair")
    v2_outputs = (Tensor("label", "BYTES"), Tensor("score", "FP32"))
    openvino_tokenizer = True
    parity = PARITY
    evaluation = Evaluation(
        kinds=("classification", "regression"),
        predictions=_predictions,
        label_scores=_label_scores,
        agreement=_agreement,
    )

    def plain_item(self, value: Any, where: str, text: Any, tokenizer: Any) -> Any:
        if not isinstance(value, dict):
            return text(value, where)
        if not {"text"} <= set(value) <= {"text", "text_pair"}:
            raise InputError(f'{where} must be a string or {{"text": str, "text_pair": str}}')
        pair = {"text": text(value["text"], f"{where}.text")}
        if "text_pair" in value:
            pair["text_pair"] = text(value["text_pair"], f"{where}.text_pair")
        return pair

    def v2_items(self, tensors: dict[str, list[str]], tokenizer: Any) -> list[Any]:
        if "text_pair" not in tensors:
            return tensors["text"]
        return [
            {"text": t, "text_pair": p} for t, p in zip(tensors["text"], tensors["text_pair"], strict=True)
        ]

    def v2_columns(self, results: list[Any]) -> dict[str, tuple[list[int], list[Any]]]:
        top = [r[0] if isinstance(r, list) else r for r in results]
        n = [len(results)]
        return {"label": (n, [t["label"] for t in top]), "score": (n, [t["score"] for t in top])}

    def plain_result(self, inputs: Any, parameters: dict[str, Any], results: list[Any], many: bool) -> Any:
        if many:
            return results
        if isinstance(inputs, str) and "top_k" not in parameters:
            return [results[0]]  # transformers' text-classification pipeline wraps a single string's result
        return results[0]
