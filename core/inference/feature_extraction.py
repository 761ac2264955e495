"""Feature extraction (hidden states; sentence embeddings with pooling).

``pipe("text")`` → ``[[hidden]*tokens]`` nested lists as in transformers; ``pooling="mean"|"cls"`` gives
one vector per text (``normalize=True``: unit length); ``return_tensors=True`` gives numpy arrays: one
``(texts, hidden)`` array for pooled embeddings of a list of texts. The v2
endpoint returns one vector per text (``pooling`` mean by default). Parity: the cosine and nearest
neighbours of mean-pooled embeddings. No dev-set evaluation (no labels to score an embedding by)."""

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
    chunks,
    is_bool,
    one_of,
)
from pruneofa.core.parity_measures import Measure, ParityHook, Tally, TaskParity, pooled


class FeatureExtractionPipeline(Pipeline):
    """``pipe("text")`` → ``[[hidden]*tokens]`` nested lists as in transformers; ``pooling="mean"|"cls"``
    gives one vector per text (``normalize=True``: unit length). ``return_tensors=True``: a list of texts
    pooled → one ``(texts, hidden)`` array; unpooled → a list of ``(tokens, hidden)`` arrays (lengths
    differ); one text → its ``(hidden,)`` or ``(tokens, hidden)`` array."""

    def embed(self, texts: list[str], pooling: str | None, normalize: bool) -> list[np.ndarray]:
        check_texts(texts)
        self.option("pooling", pooling)
        out: list[np.ndarray] = []
        for chunk in chunks(texts, self.batch_size):
            feed = self.encoder.encode(chunk)
            hidden = self.forward(feed)[0]
            mask = feed["attention_mask"].astype(np.float32)
            for row in range(hidden.shape[0]):
                length = int(mask[row].sum())
                if pooling == "mean":
                    vector = (hidden[row] * mask[row][:, None]).sum(0) / max(mask[row].sum(), 1.0)
                elif pooling == "cls":
                    vector = hidden[row, 0]
                else:
                    vector = hidden[row, :length]
                if normalize:
                    vector = vector / np.maximum(np.linalg.norm(vector, axis=-1, keepdims=True), 1e-12)
                out.append(vector)
        return out

    def __call__(
        self,
        inputs: Any,
        *,
        pooling: str | None = None,
        normalize: bool = False,
        return_tensors: bool = False,
    ) -> Any:
        texts, many = as_list(inputs)
        vectors = self.embed(texts, pooling, normalize)
        pooled_ = pooling in ("mean", "cls")
        if return_tensors:
            if not many:
                return vectors[0]  # (hidden,) pooled, (tokens, hidden) otherwise
            # One vector per text stacks into (texts, hidden); unpooled hidden states differ in length.
            return np.stack(vectors) if pooled_ else vectors
        results = [v.tolist() if pooled_ else [v.tolist()] for v in vectors]
        return results if many else results[0]


def _measure(tally: Tally, mask: np.ndarray, reference: list, candidate: list, texts: bool) -> None:
    tally.embeddings(pooled(reference[0], mask), pooled(candidate[0], mask), texts=texts)


PARITY = ParityHook(
    rows=(
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
    ),
    measure=_measure,
)


class FeatureExtraction(InferenceTask):
    name = "feature-extraction"
    export_task = "feature-extraction"
    pipeline = FeatureExtractionPipeline
    parameters = (
        Parameter("pooling", one_of("none", "mean", "cls", None), "none, mean or cls"),
        Parameter("normalize", is_bool, "true or false"),
    )
    v2_outputs = (Tensor("embedding", "FP32", rank=2),)
    openvino_tokenizer = True
    parity = PARITY
    evaluation = Evaluation(kinds=(), reason="an embedding has no labels to score on a dev set")

    def v2_defaults(self, parameters: dict[str, Any]) -> dict[str, Any]:
        parameters.setdefault("pooling", "mean")
        if parameters["pooling"] in (None, "none"):
            raise InputError("the v2 endpoint returns one vector per text: use pooling mean or cls")
        return parameters

    def serving_options(self, parameters: dict[str, Any], max_length: int) -> dict[str, Any]:
        options = dict(parameters, return_tensors=True)
        if options.get("pooling") == "none":
            options["pooling"] = None
        return options

    def v2_columns(self, results: list[Any]) -> dict[str, tuple[list[int], list[Any]]]:
        vectors = [list(map(float, v)) for v in results]
        width = len(vectors[0]) if vectors else 0
        return {"embedding": ([len(results), width], [x for v in vectors for x in v])}

    def v2_shape(self, tensor: Tensor, config: Any) -> list[int]:
        return [-1, int(getattr(config, "hidden_size", -1))]

    def plain_result(self, inputs: Any, parameters: dict[str, Any], results: list[Any], many: bool) -> Any:
        pooled_ = parameters.get("pooling") in ("mean", "cls")
        shaped = [r.tolist() if pooled_ else [r.tolist()] for r in results]
        return shaped if many else shaped[0]
