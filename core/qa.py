"""SQuAD pre- and post-processing: questions and contexts to model inputs, start/end logits to answers.

This is the standard Hugging Face approach (``run_qa.py``), so that scores are comparable with
published ones: a context longer than the window is split into overlapping windows ("features") of at
most ``max_length`` tokens that share ``stride`` tokens; each feature remembers which example it came
from and the character span of each context token. After inference, the best span over an example's
features (top ``n_best`` starts × top ``n_best`` ends, inside the context, ``end >= start``, at most
``max_answer_length`` tokens, scored by start + end logit) is cut out of the context by those offsets.

Two deliberate differences from ``run_qa.py``, neither of which changes a correct answer: features are
padded to the longest one (and :func:`batches` re-pads each batch to its own longest) instead of to
``max_length``, which wastes less compute on CPUs; and candidates are drawn from a feature's real
tokens only, so padding logits can never crowd out context tokens and results do not depend on how
features were batched.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from pruneofa.core.data import QAExample
from pruneofa.core.errors import InputError

# Tokenizers report a huge sentinel model_max_length when they do not know the model's limit.
_UNKNOWN_MAX_LENGTH = 1_000_000
# SQuAD's usual window and overlap (run_qa.py), shrunk where a model's positions allow less.
QA_MAX_LENGTH = 384
QA_STRIDE = 128


def qa_window(model_max_length: int) -> tuple[int, int]:
    """SQuAD's usual 384-token window with stride 128, shrunk to what the model's positions allow."""
    length = min(QA_MAX_LENGTH, model_max_length)
    return length, min(QA_STRIDE, length // 3)


@dataclass(frozen=True, eq=False)
class QAFeatures:
    """Tokenized windows of SQuAD examples, padded on the right to the longest window.

    ``offset_mapping[i, t]`` is the ``(start, end)`` character span in the example's context of token
    ``t`` of feature ``i``, or ``(-1, -1)`` for tokens outside the context (question, special tokens,
    padding). ``example_index[i]`` indexes the examples the features were prepared from, and
    ``example_ids[i]`` is that example's id (checked when answers are read back).
    """

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray | None
    example_index: np.ndarray
    example_ids: tuple[str, ...]
    offset_mapping: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def inputs(self, start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
        """Feed dict of features ``start:stop``, cut to the longest of them (int64, C-contiguous)."""
        stop = len(self) if stop is None else min(stop, len(self))
        width = int(self.lengths[start:stop].max()) if stop > start else 0
        names = {"input_ids": self.input_ids, "attention_mask": self.attention_mask}
        if self.token_type_ids is not None:
            names["token_type_ids"] = self.token_type_ids
        return {name: np.ascontiguousarray(array[start:stop, :width]) for name, array in names.items()}


def _check_tokenizer(tokenizer: Any, max_length: int, stride: int) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise InputError(
            "question answering needs a fast tokenizer (for character offsets); give a model folder with tokenizer.json"
        )
    for side in ("padding_side", "truncation_side"):
        if getattr(tokenizer, side, "right") != "right":
            raise InputError(
                f"the tokenizer's {side} is {getattr(tokenizer, side)!r}; question answering needs 'right' "
                f"(set tokenizer.{side} = 'right')"
            )
    if tokenizer.pad_token_id is None:
        raise InputError(
            "the tokenizer has no padding token; set tokenizer.pad_token (e.g. to its [PAD] token)"
        )
    if max_length < 8 or stride < 0 or stride >= max_length:
        raise InputError(
            f"max_length {max_length} and stride {stride} do not make windows; use max_length >= 8 and "
            "0 <= stride < max_length (SQuAD defaults: 384 and 128)"
        )
    model_max = getattr(tokenizer, "model_max_length", None) or _UNKNOWN_MAX_LENGTH
    if model_max < _UNKNOWN_MAX_LENGTH and max_length > model_max:
        raise InputError(
            f"max_length {max_length} exceeds the model's limit of {model_max} tokens; use --max-length {model_max} or less"
        )


def _check_question_room(
    examples: Sequence[QAExample], questions: list[str], tokenizer: Any, max_length: int, stride: int
) -> None:
    # The Rust tokenizer aborts the whole process (a panic, not an exception) when the room left for
    # the context after the question is not larger than the stride, so it is checked here first.
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    lengths = [len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"]]
    for example, length in zip(examples, lengths, strict=True):
        room = max_length - specials - length
        if room <= stride:
            raise InputError(
                f"question {example.id} takes {length} tokens, leaving {max(room, 0)} of max_length {max_length} "
                f"for the context, not more than the stride {stride}; raise max_length or lower the stride"
            )


def prepare_qa_features(
    examples: Sequence[QAExample], tokenizer: Any, *, max_length: int = 384, stride: int = 128
) -> QAFeatures:
    """Tokenize (question, context) pairs into overlapping windows; see :class:`QAFeatures`.

    Questions come first and only the context is truncated (``truncation="only_second"``); leading
    whitespace of questions is dropped, as ``run_qa.py`` does, because a few SQuAD questions start
    with a run of spaces that would otherwise eat into the window.
    """
    if len(examples) == 0:
        raise InputError("no SQuAD examples to prepare; load some with load_examples first")
    _check_tokenizer(tokenizer, max_length, stride)
    questions = [example.question.lstrip() for example in examples]
    _check_question_room(examples, questions, tokenizer, max_length, stride)
    encoded = tokenizer(
        questions,
        [example.context for example in examples],
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=False,
    )
    rows = encoded["input_ids"]
    lengths = np.array([len(ids) for ids in rows], dtype=np.int64)
    width = int(lengths.max())
    # Scatter the ragged token lists into right-padded arrays in one step each (row-major order of
    # the mask is the order of the concatenated rows); a per-feature loop takes seconds on SQuAD dev.
    real = np.arange(width)[None, :] < lengths[:, None]
    total = int(lengths.sum())

    def padded(name: str, fill: int) -> np.ndarray:
        out = np.full(real.shape, fill, dtype=np.int64)
        out[real] = np.fromiter(chain.from_iterable(encoded[name]), dtype=np.int64, count=total)
        return out

    in_context = np.zeros(real.shape, dtype=bool)
    sequence_ids = chain.from_iterable(encoded.sequence_ids(i) for i in range(len(rows)))
    in_context[real] = np.fromiter((sequence == 1 for sequence in sequence_ids), dtype=bool, count=total)
    offsets = np.full((*real.shape, 2), -1, dtype=np.int64)
    pairs = chain.from_iterable(chain.from_iterable(encoded["offset_mapping"]))
    offsets[real] = np.fromiter(pairs, dtype=np.int64, count=2 * total).reshape(-1, 2)
    offsets[~in_context] = -1
    example_index = np.asarray(encoded["overflow_to_sample_mapping"], dtype=np.int64)
    return QAFeatures(
        input_ids=padded("input_ids", tokenizer.pad_token_id),
        attention_mask=padded("attention_mask", 0),
        token_type_ids=padded("token_type_ids", 0) if "token_type_ids" in encoded else None,
        example_index=example_index,
        example_ids=tuple(examples[int(j)].id for j in example_index),
        offset_mapping=offsets,
        lengths=lengths,
    )


def batches(features: QAFeatures, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Feed dicts of ``batch_size`` consecutive features, each padded only to its batch's longest.

    Order is kept, so concatenating the outputs batch by batch lines them up with the features again
    (:func:`postprocess_qa` accepts the per-batch arrays as they are).
    """
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    for start in range(0, len(features), batch_size):
        yield features.inputs(start, start + batch_size)


def _feature_rows(logits: Any, count: int, name: str) -> list[np.ndarray]:
    """One 1-D array per feature, from a 2-D array, per-batch 2-D arrays, or per-feature rows."""
    rows: list[np.ndarray] = []
    for item in [logits] if isinstance(logits, np.ndarray) else logits:
        array = np.asarray(item, dtype=np.float32)
        if array.ndim == 1:
            rows.append(array)
        elif array.ndim == 2:
            rows.extend(array)
        else:
            raise InputError(f"{name} must be 1-D or 2-D arrays of token logits, got shape {array.shape}")
    if len(rows) != count:
        raise InputError(
            f"{len(rows)} rows of {name} for {count} features; run the model on every feature, in order"
        )
    return rows


def _check_pairing(examples: Sequence[QAExample], features: QAFeatures) -> None:
    for index, qid in zip(features.example_index, features.example_ids, strict=True):
        if index >= len(examples) or examples[int(index)].id != qid:
            raise InputError(
                "the features were prepared from other examples; pass the same examples, in the same order, "
                "to prepare_qa_features and postprocess_qa"
            )


def postprocess_qa(
    examples: Sequence[QAExample],
    features: QAFeatures,
    start_logits: Sequence[np.ndarray] | np.ndarray,
    end_logits: Sequence[np.ndarray] | np.ndarray,
    *,
    n_best: int = 20,
    max_answer_length: int = 30,
) -> dict[str, str]:
    """The best answer text per example id ("" when no valid span exists), as ``run_qa.py`` picks it.

    ``start_logits`` / ``end_logits``: one row per feature, as one 2-D array, a list of per-batch
    2-D arrays (widths may differ), or a list of 1-D rows.
    """
    if n_best < 1 or max_answer_length < 1:
        raise InputError(f"n_best ({n_best}) and max_answer_length ({max_answer_length}) must be at least 1")
    _check_pairing(examples, features)
    starts = _feature_rows(start_logits, len(features), "start_logits")
    ends = _feature_rows(end_logits, len(features), "end_logits")
    per_example: dict[int, list[int]] = defaultdict(list)
    for feature, index in enumerate(features.example_index):
        per_example[int(index)].append(feature)
    answers: dict[str, str] = {}
    for index, example in enumerate(examples):
        best_score, best_text = -np.inf, ""
        for feature in per_example.get(index, ()):
            length = int(features.lengths[feature])
            start, end = starts[feature][:length], ends[feature][:length]
            if len(start) < length or len(end) < length:
                raise InputError(
                    f"feature {feature} has {length} tokens but only {min(len(start), len(end))} logits; "
                    "pass the model outputs uncut"
                )
            found = _best_span(start, end, features.offset_mapping[feature], n_best, max_answer_length)
            if found is not None and found[0] > best_score:
                span_start, span_end = found[1], found[2]
                best_score, best_text = found[0], example.context[span_start:span_end]
        answers[example.id] = best_text
    return answers


def _best_span(
    start: np.ndarray, end: np.ndarray, offsets: np.ndarray, n_best: int, max_answer_length: int
) -> tuple[float, int, int] | None:
    """(score, first char, end char) of the best valid span among the top-n starts × top-n ends."""
    k = min(n_best, len(start))
    start_idx = np.argsort(-start, kind="stable")[:k]  # highest first; ties to the earlier token
    end_idx = np.argsort(-end, kind="stable")[:k]
    in_context = (offsets[start_idx, 0] >= 0)[:, None] & (offsets[end_idx, 0] >= 0)[None, :]
    span = end_idx[None, :] - start_idx[:, None]
    valid = in_context & (span >= 0) & (span < max_answer_length)
    if not valid.any():
        return None
    scores = np.where(valid, start[start_idx][:, None] + end[end_idx][None, :], -np.inf)
    row, col = divmod(int(np.argmax(scores)), k)  # first maximum in (start rank, end rank) order
    first, last = start_idx[row], end_idx[col]
    return float(scores[row, col]), int(offsets[first, 0]), int(offsets[last, 1])


def qa_training_labels(examples: Sequence[QAExample], features: QAFeatures) -> tuple[np.ndarray, np.ndarray]:
    """(start_positions, end_positions) token indices of the first gold answer in each feature.

    Where the answer is not wholly inside a feature's context window, both point at index 0 (the
    ``[CLS]`` / ``<s>`` token, which right padding keeps first), the standard SQuAD v1 convention.
    """
    _check_pairing(examples, features)
    count = len(features)
    start_positions = np.zeros(count, dtype=np.int64)
    end_positions = np.zeros(count, dtype=np.int64)
    for feature in range(count):
        example = examples[int(features.example_index[feature])]
        if not example.answers:
            continue
        start_char = example.answer_starts[0]
        end_char = start_char + len(example.answers[0])
        offsets = features.offset_mapping[feature]
        context = np.flatnonzero(offsets[:, 0] >= 0)
        if len(context) == 0:
            continue
        token_starts, token_ends = offsets[context, 0], offsets[context, 1]
        if not (token_starts[0] <= start_char and token_ends[-1] >= end_char):
            continue
        # The last token starting at or before the answer, and the first ending at or after it.
        start_positions[feature] = context[np.searchsorted(token_starts, start_char, side="right") - 1]
        end_positions[feature] = context[np.searchsorted(token_ends, end_char, side="left")]
    return start_positions, end_positions
