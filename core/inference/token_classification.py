"""Token classification (named entities and other per-token labels).

``pipe("text")`` → entities ``{"entity", "score", "index", "word", "start", "end"}``
(``aggregation_strategy="simple"``: grouped ``entity_group`` spans), labels in ``ignore_labels`` dropped;
needs a fast tokenizer for character offsets. The v2 endpoint returns each text's entities as one JSON
string. Parity: the predicted label of each real token. No dev-set evaluation in validate yet (no
token-level data task is registered)."""

from __future__ import annotations

import json
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
    one_of,
    softmax,
    strings,
)
from pruneofa.core.parity_measures import Measure, ParityHook, Tally, TaskParity, real


class TokenClassificationPipeline(Pipeline):
    """``pipe("text")`` → entities ``{"entity", "score", "index", "word", "start", "end"}``
    (``aggregation_strategy="simple"``: grouped ``entity_group`` spans), labels in ``ignore_labels`` dropped."""

    def __call__(
        self, inputs: Any, *, aggregation_strategy: str = "none", ignore_labels: list[str] | None = None
    ) -> Any:
        texts, many = as_list(inputs)
        check_texts(texts)
        strategy = (aggregation_strategy or "none").lower()
        self.option("aggregation_strategy", strategy)
        if not getattr(self.tokenizer, "is_fast", False):
            raise InputError(
                "token classification needs a fast tokenizer (tokenizer.json) for character offsets"
            )
        ignore = ["O"] if ignore_labels is None else list(ignore_labels)
        id2label = self.config.id2label
        results = []
        for chunk in chunks(texts, self.batch_size):
            feed = self.encoder.encode(chunk, return_offsets_mapping=True, return_special_tokens_mask=True)
            offsets = feed.pop("offset_mapping")
            special = feed.pop("special_tokens_mask")
            scores = softmax(self.forward(feed)[0].astype(np.float64))
            for row, text in enumerate(chunk):
                entities = []
                for index in range(int(feed["attention_mask"][row].sum())):
                    if special[row, index]:
                        continue
                    token_id = int(feed["input_ids"][row, index])
                    start, end = (int(v) for v in offsets[row, index])
                    word = self.tokenizer.convert_ids_to_tokens(token_id)
                    if token_id == self.tokenizer.unk_token_id:
                        word = text[start:end]
                    best = int(scores[row, index].argmax())
                    entities.append(
                        {
                            "entity": id2label[best],
                            "score": float(scores[row, index, best]),
                            "index": index,
                            "word": word,
                            "start": start,
                            "end": end,
                        }
                    )
                if strategy == "simple":
                    entities = self._group(entities)
                results.append([e for e in entities if e.get("entity", e.get("entity_group")) not in ignore])
        return results if many else results[0]

    @staticmethod
    def _tag(name: str) -> tuple[str, str]:
        if name.startswith(("B-", "I-")):
            return name[0], name[2:]
        return "I", name

    def _group(self, entities: list[dict]) -> list[dict]:
        groups, current = [], []
        for entity in entities:
            if current:
                bi, tag = self._tag(entity["entity"])
                _, last_tag = self._tag(current[-1]["entity"])
                if tag != last_tag or bi == "B":
                    groups.append(self._merge(current))
                    current = []
            current.append(entity)
        if current:
            groups.append(self._merge(current))
        return groups

    def _merge(self, entities: list[dict]) -> dict:
        return {
            "entity_group": entities[0]["entity"].split("-", 1)[-1],
            "score": float(np.nanmean([e["score"] for e in entities])),
            "word": self.tokenizer.convert_tokens_to_string([e["word"] for e in entities]),
            "start": entities[0]["start"],
            "end": entities[-1]["end"],
        }


def _measure(tally: Tally, mask: np.ndarray, reference: list, candidate: list, texts: bool) -> None:
    same = real(reference[0], mask).argmax(-1) == real(candidate[0], mask).argmax(-1)
    tally.count("token_agreement", same.sum(), same.size)


PARITY = ParityHook(
    rows=(
        TaskParity(
            "token-classification",
            "the predicted label of each real token",
            (Measure("token_agreement", "per-token label agreement", option="min_agreement"),),
        ),
    ),
    measure=_measure,
)


class TokenClassification(InferenceTask):
    name = "token-classification"
    export_task = "token-classification"
    pipeline = TokenClassificationPipeline
    parameters = (
        Parameter("aggregation_strategy", one_of("none", "simple"), "none or simple"),
        Parameter("ignore_labels", strings, "a list of label names"),
    )
    v2_outputs = (Tensor("entities", "BYTES"),)
    parity = PARITY
    evaluation = Evaluation(kinds=(), reason="no token-level data task is registered in core.tasks")

    def v2_columns(self, results: list[Any]) -> dict[str, tuple[list[int], list[Any]]]:
        return {"entities": ([len(results)], [json.dumps(r) for r in results])}
