"""``deploy.load(folder)``: an exported folder as a text-in, results-out pipeline on OpenVINO or ONNX Runtime.

Results have the shapes of Hugging Face's pipelines, so code written against ``transformers.pipeline``
keeps working: labels and scores (text classification), entities (token classification), tokens with
scores and sequences (fill-mask), hidden states or pooled embeddings (feature extraction), and answers
with character start/end and score (question answering; transformers 5 dropped that pipeline, so its
v4 algorithm is kept here: softmax over context tokens, best start × end within ``max_answer_len``,
long contexts split into overlapping windows).

Inputs are batched (``batch_size``) and each batch is padded to its own longest sequence. Inputs longer
than the model's position embeddings allow are truncated, with a warning, never an error. Tokenization
uses the OpenVINO tokenizer model (``openvino_tokenizer.xml``) when the folder has one and the task needs
no character offsets (text classification of single texts, feature extraction, fill-mask); question
answering and token classification need offsets, which only the Hugging Face fast tokenizer gives.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pruneofa.core.cpu import CpuInfo, detect_cpu
from pruneofa.core.errors import InputError
from pruneofa.core.manifest import Manifest, read_manifest
from pruneofa.core.runtime import (
    OPENVINO_TOKENIZER_XML,
    Engine,
    model_file_for,
    resolve_runtime,
)
from pruneofa.core.support import EXPORT_TASKS, ExportTask
from pruneofa.deploy import sparse_kernels as kernel_policy
from pruneofa.deploy.settings import CompileSettings, Hint, choose_settings, count_sparse_kernels
from pruneofa.exporter import graph

logger = logging.getLogger("pruneofa.deploy")


@dataclass
class Stats:
    """Counters a server exports as metrics."""

    batches: int = 0
    sequences: int = 0
    truncated: int = 0


class Encoder:
    """Texts → padded int64 feeds, truncating over-long inputs (with a warning) to ``max_length``."""

    def __init__(self, tokenizer: Any, max_length: int, ov_tokenizer: Any = None, stats: Stats | None = None):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.ov_tokenizer = ov_tokenizer
        self.stats = stats or Stats()
        self._ov_lock = threading.Lock()

    def _warn(self, count: int) -> None:
        self.stats.truncated += count
        logger.warning(
            "%d input(s) longer than the model's maximum of %d tokens were truncated to it",
            count,
            self.max_length,
        )

    def encode(self, texts: list[str], pairs: list[str] | None = None, **extra: Any) -> dict[str, np.ndarray]:
        if self.ov_tokenizer is not None and pairs is None and not extra:
            with self._ov_lock:
                result = self.ov_tokenizer([np.array(texts, dtype=str)])
            feed = {port.get_any_name(): np.asarray(value, dtype=np.int64) for port, value in result.items()}
            lengths = feed["attention_mask"].sum(axis=1)
            if int(lengths.max()) <= self.max_length:
                return feed
            # the OpenVINO tokenizer was converted without truncation: let the HF tokenizer cut these
        args = (texts, pairs) if pairs is not None else (texts,)
        encoded = self.tokenizer(
            *args, padding=True, truncation=True, max_length=self.max_length + 1, return_tensors="np", **extra
        )
        lengths = encoded["attention_mask"].sum(axis=1)
        over = int((lengths > self.max_length).sum())
        if over:
            self._warn(over)
            encoded = self.tokenizer(
                *args, padding=True, truncation=True, max_length=self.max_length, return_tensors="np", **extra
            )
        return {k: np.asarray(v) for k, v in encoded.items()}


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = np.exp(x - x.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class Pipeline:
    """Base of the task pipelines; ``pipeline(inputs, **options)`` as with ``transformers.pipeline``."""

    folder: Path
    task: ExportTask
    runtime: str
    settings: CompileSettings
    engine: Engine
    encoder: Encoder
    config: Any
    manifest: Manifest | None
    batch_size: int = 16
    stats: Stats = field(default_factory=Stats)

    @property
    def tokenizer(self) -> Any:
        return self.encoder.tokenizer

    @property
    def max_length(self) -> int:
        return self.encoder.max_length

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def uses_openvino_tokenizer(self) -> bool:
        return self.encoder.ov_tokenizer is not None

    def forward(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.stats.batches += 1
        self.stats.sequences += int(feed["input_ids"].shape[0])
        return self.engine(feed)

    @property
    def sparse_report(self) -> Any:
        """What pruneofa's sparse kernels did at load time (:class:`pruneofa.kernels.SparseReport`: every
        Linear layer, sparse or not and why), or ``None`` where they did not apply (see ``settings``)."""
        return self.engine.prepared.report if self.engine.prepared is not None else None

    @property
    def sparse_layers(self) -> list[str]:
        """The layers that run pruneofa's sparse op, by their names in the source model."""
        return self.engine.prepared.sparse_layer_names() if self.engine.prepared is not None else []

    def describe(self) -> str:
        tokenizer = "OpenVINO tokenizer model" if self.uses_openvino_tokenizer else "Hugging Face tokenizer"
        kernels = kernel_policy.summary(self.engine.prepared, self.settings.kernels_reason)
        if self.engine.static_limit:
            shapes = (
                ", ".join("x".join(map(str, key[0])) for key in self.engine.static_shape_list) or "none yet"
            )
            kernels += f"; static-shape copies (up to {self.engine.static_limit}): {shapes}"
        return (
            f"{self.task.name} pipeline for {self.folder} on {self.settings.describe()}; {kernels}; "
            f"{tokenizer}; max {self.max_length} tokens"
        )

    def __call__(self, inputs: Any, **options: Any) -> Any:  # pragma: no cover - every task overrides it
        raise NotImplementedError


def _as_list(inputs: Any) -> tuple[list, bool]:
    if isinstance(inputs, (list, tuple)):
        return list(inputs), True
    return [inputs], False


def _check_texts(texts: list, what: str = "text") -> None:
    for text in texts:
        if not isinstance(text, str):
            raise InputError(f"each {what} must be a string, got {type(text).__name__}")


class TextClassificationPipeline(Pipeline):
    """``pipe("text")`` → ``[{"label", "score"}]``; ``top_k=N`` or ``None`` → sorted lists, as in transformers."""

    def _function(self, function_to_apply: str | None) -> str:
        if function_to_apply is not None:
            if function_to_apply.lower() not in ("softmax", "sigmoid", "none"):
                raise InputError(
                    f"function_to_apply must be softmax, sigmoid or none, not {function_to_apply!r}"
                )
            return function_to_apply.lower()
        problem = getattr(self.config, "problem_type", None)
        labels = int(getattr(self.config, "num_labels", 2))
        if problem == "regression":
            return "none"
        if problem == "multi_label_classification" or labels == 1:
            return "sigmoid"
        return "softmax"

    def logits(self, inputs: list) -> np.ndarray:
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
        _check_texts(texts)
        has_pairs = any(p is not None for p in pairs)
        if has_pairs:
            _check_texts(pairs, "text_pair")
        out = []
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start : start + self.batch_size]
            chunk_pairs = pairs[start : start + self.batch_size] if has_pairs else None
            out.append(self.forward(self.encoder.encode(chunk, chunk_pairs))[0])
        return np.concatenate(out) if out else np.zeros((0, int(self.config.num_labels)), np.float32)

    def __call__(self, inputs: Any, *, top_k: Any = "", function_to_apply: str | None = None) -> Any:
        items, many = _as_list(inputs)
        function = self._function(function_to_apply)
        logits = self.logits(items)
        scores = {"softmax": _softmax, "sigmoid": _sigmoid, "none": lambda x: x}[function](logits)
        id2label = self.config.id2label
        legacy = top_k == ""
        results = []
        for row in scores:
            if legacy:
                best = int(row.argmax())
                results.append({"label": id2label[best], "score": float(row[best])})
                continue
            ranked = sorted(
                ({"label": id2label[i], "score": float(s)} for i, s in enumerate(row)),
                key=lambda d: d["score"],
                reverse=True,
            )
            results.append(ranked if top_k is None else ranked[: int(top_k)])
        if legacy:  # transformers: a string gives [result], a {"text", "text_pair"} dict the result itself
            return results if many or isinstance(inputs, str) else results[0]
        return results if many else results[0]


class FeatureExtractionPipeline(Pipeline):
    """``pipe("text")`` → ``[[hidden]*tokens]`` nested lists as in transformers; ``pooling="mean"|"cls"``
    gives one vector per text (``normalize=True``: unit length), ``return_tensors=True`` numpy arrays."""

    def embed(self, texts: list[str], pooling: str | None, normalize: bool) -> list[np.ndarray]:
        _check_texts(texts)
        if pooling not in (None, "none", "mean", "cls"):
            raise InputError(f"pooling must be none, mean or cls, not {pooling!r}")
        out: list[np.ndarray] = []
        for chunk in _chunks(texts, self.batch_size):
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
        texts, many = _as_list(inputs)
        vectors = self.embed(texts, pooling, normalize)
        pooled = pooling in ("mean", "cls")
        results = [v if return_tensors else (v.tolist() if pooled else [v.tolist()]) for v in vectors]
        return results if many else results[0]


class FillMaskPipeline(Pipeline):
    """``pipe("a [MASK] b")`` → top-``k`` ``{"score", "token", "token_str", "sequence"}`` as in transformers."""

    def __call__(self, inputs: Any, *, top_k: int = 5) -> Any:
        texts, many = _as_list(inputs)
        _check_texts(texts)
        mask_id = self.tokenizer.mask_token_id
        if mask_id is None:
            raise InputError("this tokenizer has no mask token; fill-mask needs one")
        pad_id = self.tokenizer.pad_token_id
        results = []
        for chunk in _chunks(texts, self.batch_size):
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
                    probs = _softmax(logits[row, position].astype(np.float64))
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


class TokenClassificationPipeline(Pipeline):
    """``pipe("text")`` → entities ``{"entity", "score", "index", "word", "start", "end"}``
    (``aggregation_strategy="simple"``: grouped ``entity_group`` spans), labels in ``ignore_labels`` dropped."""

    def __call__(
        self, inputs: Any, *, aggregation_strategy: str = "none", ignore_labels: list[str] | None = None
    ) -> Any:
        texts, many = _as_list(inputs)
        _check_texts(texts)
        strategy = (aggregation_strategy or "none").lower()
        if strategy not in ("none", "simple"):
            raise InputError(f"aggregation_strategy must be none or simple, not {aggregation_strategy!r}")
        if not getattr(self.tokenizer, "is_fast", False):
            raise InputError(
                "token classification needs a fast tokenizer (tokenizer.json) for character offsets"
            )
        ignore = ["O"] if ignore_labels is None else list(ignore_labels)
        id2label = self.config.id2label
        results = []
        for chunk in _chunks(texts, self.batch_size):
            feed = self.encoder.encode(chunk, return_offsets_mapping=True, return_special_tokens_mask=True)
            offsets = feed.pop("offset_mapping")
            special = feed.pop("special_tokens_mask")
            scores = _softmax(self.forward(feed)[0].astype(np.float64))
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
        items, many = _as_list(inputs)
        for item in items:
            if not isinstance(item, dict) or not {"question", "context"} <= set(item):
                raise InputError('each question-answering input is {"question": ..., "context": ...}')
            _check_texts([item["question"], item["context"]], "question and context")
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
            self.encoder._warn(1)
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
            start = _softmax(np.where(usable, starts[index], -10000.0).astype(np.float64))
            end = _softmax(np.where(usable, ends[index], -10000.0).astype(np.float64))
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


PIPELINES: dict[str, type[Pipeline]] = {
    "text-classification": TextClassificationPipeline,
    "feature-extraction": FeatureExtractionPipeline,
    "fill-mask": FillMaskPipeline,
    "token-classification": TokenClassificationPipeline,
    "question-answering": QuestionAnsweringPipeline,
}
# Tasks whose post-processing needs nothing but token ids, so the OpenVINO tokenizer model can serve them.
_OV_TOKENIZER_TASKS = ("text-classification", "feature-extraction", "fill-mask")


def _task_of(folder: Path, manifest: Manifest | None, config: Any) -> ExportTask:
    if manifest is not None and manifest.export is not None:
        return EXPORT_TASKS[manifest.export.task]
    from pruneofa.core import modelio

    return modelio.resolve_task(config, None)


def load(
    folder: str | Path,
    runtime: str | None = None,
    *,
    hint: Hint = "latency",
    batch_size: int = 16,
    max_length: int | None = None,
    threads: int | None = None,
    streams: int | None = None,
    use_openvino_tokenizer: bool = True,
    cpu: CpuInfo | None = None,
    sparse_kernels: str = "auto",
) -> Pipeline:
    """Load an exported (or calibrated) folder as a pipeline for its task.

    ``runtime``: ``openvino`` or ``onnxruntime`` (default: OpenVINO for an IR folder, ONNX Runtime for an
    ONNX one). ``hint``/``threads``/``streams`` override the compile settings chosen for this CPU
    (:func:`deploy.settings.choose_settings`); ``max_length`` lowers the truncation length.
    ``sparse_kernels`` (``auto``, ``on``, ``off``): pruneofa's sparse kernels for OpenVINO
    (:mod:`pruneofa.deploy.sparse_kernels`); ``pipeline.sparse_report`` says which layers ran sparse.
    """
    from transformers import AutoConfig, AutoTokenizer

    path = Path(folder).expanduser()
    if not path.is_dir():
        raise InputError(
            f"{path} is not a folder; give a folder written by 'pruneofa export' or 'pruneofa calibrate'"
        )
    if batch_size < 1:
        raise InputError("batch_size must be at least 1")
    from pruneofa.core.modelio import refuse_custom_code

    refuse_custom_code(path)  # one clear "unsupported" line for a folder that ships its own model code
    chosen = resolve_runtime(path, runtime)
    model_file = model_file_for(path, chosen)
    manifest = read_manifest(path)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(
            f"{path} lacks a usable config.json or tokenizer ({type(err).__name__}); export the model with its "
            "tokenizer files"
        ) from err
    task = _task_of(path, manifest, config)
    limit = graph.max_sequence_length(config)
    if max_length is not None:
        if max_length < 2:
            raise InputError("max_length must be at least 2")
        limit = min(limit, max_length)
    weight_format = manifest.export.weight_format if manifest and manifest.export else None
    cpu = cpu or detect_cpu()
    settings = choose_settings(
        cpu,
        chosen,
        hint=hint,
        weight_format=weight_format,
        sparsity=manifest.sparsity if manifest else None,
        threads=threads,
        streams=streams,
        sparse_kernels=sparse_kernels,
    )
    engine = Engine(
        model_file,
        chosen,
        task.outputs,
        ov_config=settings.openvino_config(profile=settings.sparse.enabled) if chosen == "openvino" else None,
        ort_options=settings.onnxruntime_options() if chosen == "onnxruntime" else None,
        prepare=kernel_policy.preparer(settings.kernels, manifest, int8_gemm=cpu.has_int8_dot),
    )
    ov_tokenizer = None
    if (
        use_openvino_tokenizer
        and task.name in _OV_TOKENIZER_TASKS
        and (path / OPENVINO_TOKENIZER_XML).is_file()
    ):
        ov_tokenizer = _compile_ov_tokenizer(path / OPENVINO_TOKENIZER_XML)
    stats = Stats()
    encoder = Encoder(tokenizer, limit, ov_tokenizer, stats)
    pipeline = PIPELINES[task.name](
        folder=path.resolve(),
        task=task,
        runtime=chosen,
        settings=settings,
        engine=engine,
        encoder=encoder,
        config=config,
        manifest=manifest,
        batch_size=batch_size,
        stats=stats,
    )
    if settings.sparse.enabled:
        feed = encoder.encode(["sparse kernels check"])
        sparse_layers, fc_layers = count_sparse_kernels(engine.profile(feed))
        pipeline.settings = _replace_sparse(settings, sparse_layers, fc_layers)
    return pipeline


def _replace_sparse(settings: CompileSettings, sparse_layers: int, fc_layers: int) -> CompileSettings:
    from dataclasses import replace

    return replace(settings, sparse=settings.sparse.with_verification(sparse_layers, fc_layers))


def _compile_ov_tokenizer(path: Path) -> Any:
    """The folder's OpenVINO tokenizer model compiled for CPU; ``None`` (HF tokenizer used) where it fails."""
    try:
        import openvino as ov
        import openvino_tokenizers  # noqa: F401  (registers the tokenizer operations)

        return ov.Core().compile_model(str(path), "CPU")
    except Exception as err:  # an extension/version mismatch: fall back, and say so
        logger.warning("cannot compile %s (%s); using the Hugging Face tokenizer", path, err)
        return None
