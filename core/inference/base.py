"""What every inference task is made of: the pipeline base (an :class:`~pruneofa.core.runtime.Engine`
behind a tokenizer), the record of a task's options, v2 tensors, parity and evaluation, and the task base
class whose subclasses, one file each, are the unit of change.

A task declares, once: its pipeline (``preprocess`` → ``forward`` → ``postprocess`` over the engine), the
options a caller may pass (:class:`Parameter`: the pipeline and the server check the same table), its
KServe v2 input and output tensors, a warm-up input, its output parity (:class:`ParityHook`) and how its
predictions are scored on a dev set (:class:`Evaluation`). Imports numpy only (the tokenizer and engine
are handed in), so the exporter, calibration and the server can all read the table.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pruneofa.core.errors import InputError
from pruneofa.core.parity_measures import ParityHook
from pruneofa.core.support import EXPORT_TASKS, ExportTask

logger = logging.getLogger("pruneofa.deploy")


@dataclass
class Stats:
    """Counters a server exports as metrics."""

    batches: int = 0
    sequences: int = 0
    truncated: int = 0


# Control characters other than tab, newline and carriage return.
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def plain_text(text: str) -> bool:
    """Whether ``text`` is printable ASCII (tab, newline and carriage return allowed): the texts the
    OpenVINO tokenizer model splits exactly as the Hugging Face tokenizer does. Beyond them the two differ
    (control characters, private-use and unassigned code points, characters newer than one of their
    Unicode tables, some combining marks and compatibility characters), so those texts go to the Hugging
    Face tokenizer and an IR folder scores every text as the library path does."""
    return text.isascii() and _ASCII_CONTROL.search(text) is None


class Encoder:
    """Texts → padded int64 feeds, truncating over-long inputs (with a warning) to ``max_length``.

    With ``ov_tokenizer`` (an IR folder's tokenizer model), batches of :func:`plain_text` texts are
    tokenized by it; every other batch by the Hugging Face ``tokenizer``, so both give the same ids."""

    def __init__(self, tokenizer: Any, max_length: int, ov_tokenizer: Any = None, stats: Stats | None = None):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.ov_tokenizer = ov_tokenizer
        self.stats = stats or Stats()
        self._ov_lock = threading.Lock()

    def warn(self, count: int) -> None:
        self.stats.truncated += count
        logger.warning(
            "%d input(s) longer than the model's maximum of %d tokens were truncated to it",
            count,
            self.max_length,
        )

    def encode(self, texts: list[str], pairs: list[str] | None = None, **extra: Any) -> dict[str, np.ndarray]:
        if self.ov_tokenizer is not None and pairs is None and not extra and all(map(plain_text, texts)):
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
            self.warn(over)
            encoded = self.tokenizer(
                *args, padding=True, truncation=True, max_length=self.max_length, return_tensors="np", **extra
            )
        return {k: np.asarray(v) for k, v in encoded.items()}


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = np.exp(x - x.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def as_list(inputs: Any) -> tuple[list, bool]:
    """``(items, many)``: a list or tuple as it is, anything else as a list of one."""
    if isinstance(inputs, (list, tuple)):
        return list(inputs), True
    return [inputs], False


def check_texts(texts: list, what: str = "text") -> None:
    for text in texts:
        if not isinstance(text, str):
            raise InputError(f"each {what} must be a string, got {type(text).__name__}")


# --- the options a caller passes -----------------------------------------------------------------------


def int_between(low: int, high: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def one_of(*choices: Any) -> Callable[[Any], bool]:
    return lambda v: any(v == c and type(v) is type(c) for c in choices)


def is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


@dataclass(frozen=True)
class Parameter:
    """One option of a task, as a JSON value: ``accepts`` is the check (the server's, on untrusted
    input, and the pipeline's), ``expected`` says in words what it accepts."""

    name: str
    accepts: Callable[[Any], bool]
    expected: str

    def check(self, value: Any) -> Any:
        if not self.accepts(value):
            raise InputError(f"{self.name} must be {self.expected}, not {value!r}")
        return value


# --- the KServe v2 tensors, parity and evaluation ------------------------------------------------------


@dataclass(frozen=True)
class Tensor:
    """A v2 output tensor: name, datatype, and its shape in the model metadata (-1: any)."""

    name: str
    datatype: str
    rank: int = 1  # [n] or [n, k]


def first_output_difference(feeds: list[dict[str, np.ndarray]], reference: list, candidate: list) -> float:
    """The largest absolute difference between two models' first outputs, over every batch."""
    largest = 0.0
    for ref, got in zip(reference, candidate, strict=True):
        largest = max(largest, float(np.abs(ref[0] - got[0]).max()))
    return largest


def same_predictions(reference: Any, candidate: Any, examples: Any, data_task: Any) -> float:
    """The share of examples whose two predictions are equal."""
    agree = int((np.asarray(reference) == np.asarray(candidate)).sum())
    return agree / max(len(examples), 1)


@dataclass(frozen=True)
class Evaluation:
    """How a task's model is scored on a dev set of a data task (:class:`pruneofa.core.tasks.TaskSpec`).

    ``kinds``: the data-task kinds it can be scored on (empty: none, with ``reason``); a kind of
    ``"question-answering"`` reads answers back through SQuAD windows, any other the first output.
    ``predictions`` turns the model's outputs on the examples (logits, or answer texts for question
    answering) into predictions in the data task's label space: ``predictions(outputs, data_task,
    model_config)``. ``label_scores`` (classification) gives the logits as columns of the data task's
    labels, for the behaviour report's per-class and calibration measures. ``agreement(reference,
    candidate, examples, data_task)`` is the share of examples on which two models' predictions agree;
    ``difference(feeds, reference_outputs, candidate_outputs)`` the largest difference between their
    outputs."""

    kinds: tuple[str, ...]
    predictions: Callable[[Any, Any, Any], Any] | None = None
    reason: str = ""
    label_scores: Callable[[Any, Any, Any], np.ndarray] | None = None
    agreement: Callable[[Any, Any, Any, Any], float] = same_predictions
    difference: Callable[[list, list, list], float] = first_output_difference


@dataclass
class Pipeline:
    """A task's pipeline over an exported folder; ``pipeline(inputs, **options)`` as with
    ``transformers.pipeline``. ``task`` is the :class:`InferenceTask` whose steps it runs; ``settings`` the
    compile settings it was opened with (``describe()``), ``kernels`` what the sparse kernels did."""

    folder: Path
    task: InferenceTask
    runtime: str
    settings: Any
    engine: Any
    encoder: Encoder
    config: Any
    manifest: Any
    batch_size: int = 16
    stats: Stats = field(default_factory=Stats)
    kernels: str = ""

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
        kernels = self.kernels
        if self.engine.static_limit:
            shapes = (
                ", ".join("x".join(map(str, key[0])) for key in self.engine.static_shape_list) or "none yet"
            )
            kernels += f"; static-shape copies (up to {self.engine.static_limit}): {shapes}"
        return (
            f"{self.task.name} pipeline for {self.folder} on {self.settings.describe()}; {kernels}; "
            f"{tokenizer}; max {self.max_length} tokens"
        )

    def option(self, name: str, value: Any) -> Any:
        """``value`` checked against the task's declared :class:`Parameter` ``name`` (the table the server
        checks requests with), returned unchanged."""
        parameter = self.task.parameter(name)
        return parameter.check(value) if parameter is not None else value

    def __call__(self, inputs: Any, **options: Any) -> Any:  # pragma: no cover - every task overrides it
        raise NotImplementedError


class InferenceTask:
    """One task, declared once. A subclass per task file; the registry holds one instance of each.

    ``export_task``: the export task (:data:`pruneofa.core.support.EXPORT_TASKS`) whose model it runs;
    ``v2_inputs`` the BYTES input tensors (``v2_required`` of them required); ``v2_outputs`` the output
    tensors that :meth:`v2_columns` fills; ``openvino_tokenizer``: whether the OpenVINO tokenizer model
    can serve it (no character offsets needed)."""

    name: ClassVar[str]
    export_task: ClassVar[str]
    pipeline: ClassVar[type[Pipeline]]
    parameters: ClassVar[tuple[Parameter, ...]]
    v2_inputs: ClassVar[tuple[str, ...]] = ("text",)
    v2_required: ClassVar[tuple[str, ...]] = ("text",)
    v2_outputs: ClassVar[tuple[Tensor, ...]]
    openvino_tokenizer: ClassVar[bool] = False
    warmup_options: ClassVar[dict[str, Any]] = {}  # the options the warm-up input is run with
    parity: ClassVar[ParityHook]
    evaluation: ClassVar[Evaluation]

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)

    # --- the export task's facts, for callers that hold a pipeline's task ---------------------------------

    @property
    def export(self) -> ExportTask:
        """The export task whose model this task runs (its outputs, transformers and optimum classes)."""
        return EXPORT_TASKS[self.export_task]

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.export.outputs

    @property
    def auto_class(self) -> str:
        return self.export.auto_class

    @property
    def optimum_ov_class(self) -> str:
        return self.export.optimum_ov_class

    @property
    def optimum_ort_class(self) -> str:
        return self.export.optimum_ort_class

    @property
    def per_token(self) -> bool:
        return self.export.per_token

    def parity_inputs(self, samples: dict[str, Any]) -> list[Any]:
        """The packaged parity samples (``core/resources``) this task's parity texts come from: single
        texts and ``(first, second)`` pairs."""
        return list(samples["sentences"]) + [tuple(pair) for pair in samples["pairs"]]

    # --- serving ---------------------------------------------------------------------------------------

    def warmup_input(self, tokenizer: Any) -> Any:
        """One input that exercises the whole pipeline when the server starts."""
        return "The server is warming up."

    def plain_item(self, value: Any, where: str, text: Callable[[Any, str], str], tokenizer: Any) -> Any:
        """One ``/predict`` input: ``text(value, where)`` checks a string; a bad shape is an InputError."""
        return text(value, where)

    def v2_items(self, tensors: dict[str, list[str]], tokenizer: Any) -> list[Any]:
        """Pipeline items from the v2 input tensors (checked strings of equal count)."""
        return tensors["text"]

    def v2_defaults(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """A v2 request's parameters with what the v2 output needs filled in (or refused)."""
        return parameters

    def serving_options(self, parameters: dict[str, Any], max_length: int) -> dict[str, Any]:
        """The pipeline call's options for checked request ``parameters``."""
        return dict(parameters)

    def v2_columns(self, results: list[Any]) -> dict[str, tuple[list[int], list[Any]]]:
        """Each :attr:`v2_outputs` tensor's shape and flat data for a batch of results."""
        raise NotImplementedError

    def v2_shape(self, tensor: Tensor, config: Any) -> list[int]:
        """The tensor's shape in the model metadata."""
        return [-1] * tensor.rank

    def plain_result(self, inputs: Any, parameters: dict[str, Any], results: list[Any], many: bool) -> Any:
        """The ``/predict`` answer, shaped as Hugging Face's pipeline shapes it for ``inputs``."""
        return results if many else results[0]
