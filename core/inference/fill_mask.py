"""Fill-mask (masked language modelling).

``pipe("a [MASK] b")`` → top-``k`` ``{"score", "token", "token_str", "sequence"}`` as in transformers (a
text with several masks: a list per mask); the v2 endpoint takes texts with exactly one mask. Parity: the
top-k tokens at each real token. No dev-set evaluation (pre-training corpora are scored by perplexity in
training, not by validate)."""

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
    int_between,
    softmax,
)
from pruneofa.core.parity_measures import TOP_K, Measure, ParityHook, Tally, TaskParity, real, top_k


class FillMaskPipeline(Pipeline):
    """``pipe("a [MASK] b")`` → top-``k`` ``{"score", "token", "token_str", "sequence"}`` as in transformers."""

    def __call__(self, inputs: Any, *, top_k: int = 5) -> Any:
        texts, many = as_list(inputs)
        check_texts(texts)
        mask_id = self.tokenizer.mask_token_id
        if mask_id is None:
            raise InputError("this tokenizer has no mask token; fill-mask needs one")
        pad_id = self.tokenizer.pad_token_id
        results = []
        for chunk in chunks(texts, self.batch_size):
            feed = self.encoder.encode(chunk)
            logits = self.forward(feed)[0]
            for row, text in enumerate(chunk):
                ids = feed["input_ids"][row][feed["attention_mask"][row].astype(bool)]
                positions = np.nonzero(ids == mask_id)[0]
                if positions.size == 0:
                    raise InputError(
                        f"no {self.tokenizer.mask_token} in {text[:60]!r}; put one where a word should be filled"
                    )
                single = positions.size == 1
                per_mask = []
                for position in positions:
                    probs = softmax(logits[row, position].astype(np.float64))
                    k = min(int(top_k), probs.shape[-1])
                    best = np.argsort(-probs, kind="stable")[:k]
                    options = []
                    for token in best:
                        tokens = ids.copy()
                        tokens[position] = token
                        tokens = tokens[tokens != pad_id] if pad_id is not None else tokens
                        options.append(
                            {
                                "score": float(probs[token]),
                                "token": int(token),
                                "token_str": self.tokenizer.decode([int(token)]),
                                "sequence": self.tokenizer.decode(tokens, skip_special_tokens=single),
                            }
                        )
                    per_mask.append(options)
                results.append(per_mask[0] if single else per_mask)
        return results if many else results[0]


def _measure(tally: Tally, mask: np.ndarray, reference: list, candidate: list, texts: bool) -> None:
    ref, got = real(reference[0], mask), real(candidate[0], mask)
    ref_k, got_k = top_k(ref), top_k(got)
    k = ref_k.shape[-1]
    overlap = (ref_k[:, :, None] == got_k[:, None, :]).any(axis=2).sum(axis=1) / k
    tally.count("topk_overlap", overlap.sum(), overlap.size)
    same = ref.argmax(-1) == got.argmax(-1)
    tally.count("top1_agreement", same.sum(), same.size)


PARITY = ParityHook(
    rows=(
        TaskParity(
            "fill-mask",
            f"the top-{TOP_K} tokens predicted at each real token",
            (
                Measure("topk_overlap", f"top-{TOP_K} overlap", option="min_topk_overlap"),
                Measure("top1_agreement", "top-1 agreement"),
            ),
        ),
    ),
    measure=_measure,
)


class FillMask(InferenceTask):
    name = "fill-mask"
    export_task = "fill-mask"
    pipeline = FillMaskPipeline
    parameters = (Parameter("top_k", int_between(1, 100), "an integer 1-100"),)
    v2_outputs = (
        Tensor("token_str", "BYTES", rank=2),
        Tensor("score", "FP32", rank=2),
        Tensor("token", "INT64", rank=2),
        Tensor("sequence", "BYTES", rank=2),
    )
    openvino_tokenizer = True
    parity = PARITY
    evaluation = Evaluation(
        kinds=(), reason="a masked-LM corpus is a pre-training corpus task, scored by perplexity in training"
    )

    def warmup_input(self, tokenizer: Any) -> Any:
        return f"The server is {tokenizer.mask_token}."

    def plain_item(self, value: Any, where: str, text: Any, tokenizer: Any) -> Any:
        checked = text(value, where)
        mask = tokenizer.mask_token
        if mask and mask not in checked:
            raise InputError(f"{where} has no {mask} token to fill")
        return checked

    def v2_items(self, tensors: dict[str, list[str]], tokenizer: Any) -> list[Any]:
        mask = tokenizer.mask_token
        for i, text in enumerate(tensors["text"]):
            if mask and text.count(mask) != 1:
                raise InputError(f"text[{i}] must hold exactly one {mask} for the v2 endpoint")
        return tensors["text"]

    def v2_columns(self, results: list[Any]) -> dict[str, tuple[list[int], list[Any]]]:
        shape = [len(results), len(results[0])]
        flat = [option for r in results for option in r]
        return {key: (shape, [o[key] for o in flat]) for key in ("token_str", "score", "token", "sequence")}
