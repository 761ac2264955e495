"""Question answering (extractive: an answer span of the context).

``pipe(question=..., context=...)`` → ``{"score", "start", "end", "answer"}``: transformers v4's
question-answering pipeline (transformers 5 dropped it): start and end probabilities are softmaxes over
the context tokens and CLS, the score of a span is their product, contexts longer than ``max_seq_len``
become overlapping windows. Parity: the best answer span of each input. Evaluation: SQuAD (answers are
post-processed by :mod:`pruneofa.core.qa` and scored as they are)."""

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
    is_bool,
    softmax,
)
from pruneofa.core.parity_measures import (
    MAX_ANSWER_TOKENS,
    Measure,
    ParityHook,
    Tally,
    TaskParity,
    best_spans,
)


class QuestionAnsweringPipeline(Pipeline):
    """``pipe(question=..., context=...)`` → ``{"score", "start", "end", "answer"}`` (transformers v4's
    question-answering pipeline: start and end probabilities are softmaxes over the context tokens and CLS,
    the score of a span is their product; contexts longer than ``max_seq_len`` become overlapping windows)."""

    def __call__(
        self,
        inputs: Any = None,
        *,
        question: str | list[str] | None = None,
        context: str | list[str] | None = None,
        top_k: int = 1,
        max_answer_len: int = 15,
        max_seq_len: int = 384,
        doc_stride: int = 128,
        handle_impossible_answer: bool = False,
        align_to_words: bool = True,
    ) -> Any:
        if inputs is None:
            if question is None or context is None:
                raise InputError(
                    "question answering needs question= and context= (or {question, context} dicts)"
                )
            if isinstance(question, list) != isinstance(context, list):
                raise InputError("give question and context both as strings or both as lists")
            if isinstance(question, list):
                if len(question) != len(context):
                    raise InputError("question and context lists must have the same length")
                inputs = [{"question": q, "context": c} for q, c in zip(question, context, strict=True)]
            else:
                inputs = {"question": question, "context": context}
        items, many = as_list(inputs)
        for item in items:
            if not isinstance(item, dict) or not {"question", "context"} <= set(item):
                raise InputError('each question-answering input is {"question": ..., "context": ...}')
            check_texts([item["question"], item["context"]], "question and context")
            if not item["question"].strip() or not item["context"].strip():
                raise InputError("question and context must not be empty")
        if top_k < 1 or max_answer_len < 1:
            raise InputError("top_k and max_answer_len must be at least 1")
        if not getattr(self.tokenizer, "is_fast", False):
            raise InputError(
                "question answering needs a fast tokenizer (tokenizer.json) for character offsets"
            )
        max_seq_len = min(max_seq_len, self.max_length)
        doc_stride = min(doc_stride, max_seq_len // 2)
        results = [
            self._answer(
                item, top_k, max_answer_len, max_seq_len, doc_stride, handle_impossible_answer, align_to_words
            )
            for item in items
        ]
        return results if many else results[0]

    def _encode(self, question: str, context: str, max_seq_len: int, doc_stride: int) -> Any:
        question_tokens = len(self.tokenizer(question, add_special_tokens=False)["input_ids"])
        limit = max_seq_len // 2
        if question_tokens > limit:
            self.encoder.warn(1)
            ids = self.tokenizer(question, add_special_tokens=False)["input_ids"][:limit]
            question = self.tokenizer.decode(ids)
            question_tokens = len(self.tokenizer(question, add_special_tokens=False)["input_ids"])
        # The overlap must be shorter than the room the question leaves for context in each window; the fast
        # tokenizer panics (a Rust panic, not an exception) when it is not.
        room = max_seq_len - question_tokens - self.tokenizer.num_special_tokens_to_add(pair=True)
        if room < 2:
            raise InputError(
                f"the question leaves no room for the context in {max_seq_len}-token windows; shorten it"
            )
        doc_stride = max(0, min(doc_stride, room - 1))
        return self.tokenizer(
            question,
            context,
            padding=True,
            truncation="only_second",
            max_length=max_seq_len,
            stride=doc_stride,
            return_token_type_ids=True,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            return_tensors="np",
        )

    def _answer(self, item, top_k, max_answer_len, max_seq_len, doc_stride, impossible, align) -> Any:
        context = item["context"]
        encoded = self._encode(item["question"], context, max_seq_len, doc_stride)
        n_features = encoded["input_ids"].shape[0]
        names = ("input_ids", "attention_mask", "token_type_ids")
        starts, ends = [], []
        for first in range(0, n_features, self.batch_size):
            rows = slice(first, first + self.batch_size)
            width = int(encoded["attention_mask"][rows].sum(axis=1).max())
            feed = {n: encoded[n][rows, :width].astype(np.int64) for n in names if n in encoded}
            start_logits, end_logits = self.forward(feed)
            starts += list(start_logits)
            ends += list(end_logits)
        answers, min_null = [], 1_000_000.0
        for index in range(n_features):
            enc = encoded.encodings[index]
            width = starts[index].shape[0]
            sequence_ids = [s if s is not None else -1 for s in enc.sequence_ids][:width]
            allowed = np.array([s == 1 for s in sequence_ids], dtype=bool)
            allowed &= encoded["attention_mask"][index, :width].astype(bool)
            cls_allowed = np.zeros(width, dtype=bool)
            if self.tokenizer.cls_token_id is not None:
                cls_allowed = encoded["input_ids"][index, :width] == self.tokenizer.cls_token_id
            usable = allowed | cls_allowed
            start = softmax(np.where(usable, starts[index], -10000.0).astype(np.float64))
            end = softmax(np.where(usable, ends[index], -10000.0).astype(np.float64))
            if impossible:
                min_null = min(min_null, float(start[0] * end[0]))
            start[0] = end[0] = 0.0
            candidates = np.tril(np.triu(np.outer(start, end)), max_answer_len - 1)
            flat = candidates.ravel()
            found = 0
            for position in np.argsort(-flat, kind="stable")[: top_k * 4 + 8]:
                if flat[position] <= 0 or found == top_k:
                    break
                s, e = divmod(int(position), width)
                if not (allowed[s] and allowed[e]):
                    continue
                found += 1
                if align:
                    try:
                        char_start = enc.word_to_chars(enc.token_to_word(s), sequence_index=1)[0]
                        char_end = enc.word_to_chars(enc.token_to_word(e), sequence_index=1)[1]
                    except Exception:  # tokenizers without word ids
                        char_start, char_end = enc.offsets[s][0], enc.offsets[e][1]
                else:
                    char_start, char_end = enc.offsets[s][0], enc.offsets[e][1]
                answers.append(
                    {
                        "score": float(flat[position]),
                        "start": int(char_start),
                        "end": int(char_end),
                        "answer": context[char_start:char_end],
                    }
                )
        if impossible:
            answers.append({"score": min_null, "start": 0, "end": 0, "answer": ""})
        answers = sorted(answers, key=lambda a: a["score"], reverse=True)[:top_k]
        if not answers:
            answers = [{"score": 0.0, "start": 0, "end": 0, "answer": ""}]
        return answers[0] if top_k == 1 else answers


def safe_doc_stride(max_length: int, max_seq_len: int = 384, wanted: int = 128) -> int:
    """The overlap of question-answering windows that always leaves the tokenizer room for context.

    The pipeline cuts a long question to half the window and caps the overlap at half the window too, so
    for a model with a short maximum length (under ~270 tokens) a long question leaves less context room
    than the overlap, and the fast tokenizer panics (a Rust panic, raised as a BaseException). Overlap
    128 (transformers' default) wherever the window allows it; less only for such models."""
    window = min(max_seq_len, max_length)
    return max(1, min(wanted, window // 2 - 5))  # 5 ≥ the special tokens of a BERT or RoBERTa pair


def _measure(tally: Tally, mask: np.ndarray, reference: list, candidate: list, texts: bool) -> None:
    ref_spans = best_spans(reference[0], reference[1], mask)
    got_spans = best_spans(candidate[0], candidate[1], mask)
    same = (ref_spans == got_spans).all(axis=1)
    tally.count("span_agreement", same.sum(), same.size)


def _decisions(output: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each output alone (start, end): the argmax over real positions."""
    return np.where(mask.astype(bool), output, -np.inf).argmax(axis=1)


PARITY = ParityHook(
    rows=(
        TaskParity(
            "question-answering",
            f"the best answer span of each input (at most {MAX_ANSWER_TOKENS} tokens)",
            (Measure("span_agreement", "answer-span agreement", option="min_agreement"),),
        ),
    ),
    measure=_measure,
    decisions=_decisions,
)


def _answers(outputs: Any, data_task: Any, model_config: Any) -> Any:
    """Answer texts by example id, as :func:`pruneofa.core.qa.postprocess_qa` gives them."""
    return outputs


def _agreement(reference: Any, candidate: Any, examples: Any, data_task: Any) -> float:
    """The same answer text for each question."""
    agree = sum(reference[e.id] == candidate[e.id] for e in examples)
    return agree / max(len(examples), 1)


def _difference(feeds: list[dict[str, np.ndarray]], reference: list, candidate: list) -> float:
    """The largest difference of start and end logits at real (unpadded) tokens."""
    largest = 0.0
    for feed, ref, got in zip(feeds, reference, candidate, strict=True):
        mask = feed["attention_mask"].astype(bool)
        for r, g in zip(ref, got, strict=True):
            largest = max(largest, float(np.abs(r - g)[mask].max()))
    return largest


class QuestionAnswering(InferenceTask):
    name = "question-answering"
    export_task = "question-answering"
    pipeline = QuestionAnsweringPipeline
    parameters = (
        Parameter("top_k", int_between(1, 20), "an integer 1-20"),
        Parameter("max_answer_len", int_between(1, 512), "an integer 1-512"),
        Parameter("handle_impossible_answer", is_bool, "true or false"),
        Parameter("align_to_words", is_bool, "true or false"),
    )
    v2_inputs = ("question", "context")
    v2_required = ("question", "context")
    v2_outputs = (
        Tensor("answer", "BYTES"),
        Tensor("score", "FP32"),
        Tensor("start", "INT64"),
        Tensor("end", "INT64"),
    )
    parity = PARITY
    evaluation = Evaluation(
        kinds=("question-answering",), predictions=_answers, agreement=_agreement, difference=_difference
    )

    def parity_inputs(self, samples: dict[str, Any]) -> list[Any]:
        return [(qa["question"], qa["context"]) for qa in samples["qa"]]

    def warmup_input(self, tokenizer: Any) -> Any:
        return {"question": "What is warm?", "context": "The server is warm after this request."}

    def plain_item(self, value: Any, where: str, text: Any, tokenizer: Any) -> Any:
        if not isinstance(value, dict) or set(value) != {"question", "context"}:
            raise InputError(f'{where} must be {{"question": str, "context": str}}')
        question = text(value["question"], f"{where}.question")
        context = text(value["context"], f"{where}.context")
        if not question.strip() or not context.strip():
            raise InputError(f"{where}: question and context must not be empty")
        return {"question": question, "context": context}

    def v2_items(self, tensors: dict[str, list[str]], tokenizer: Any) -> list[Any]:
        items = [
            {"question": q, "context": c}
            for q, c in zip(tensors["question"], tensors["context"], strict=True)
        ]
        if any(not item["question"].strip() or not item["context"].strip() for item in items):
            raise InputError("question and context must not be empty")
        return items

    def serving_options(self, parameters: dict[str, Any], max_length: int) -> dict[str, Any]:
        return dict(parameters, doc_stride=safe_doc_stride(int(max_length)))

    def v2_columns(self, results: list[Any]) -> dict[str, tuple[list[int], list[Any]]]:
        top = [r[0] if isinstance(r, list) else r for r in results]
        n = [len(results)]
        return {key: (n, [t[key] for t in top]) for key in ("answer", "score", "start", "end")}
