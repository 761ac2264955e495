"""The runtime layer: opening an exported folder in OpenVINO or ONNX Runtime, once for every caller.

Export parity, calibration, validation, benchmarking, ``pruneofa.deploy.load`` and serving all run
exported models through :class:`Engine`; the file names of an exported folder, the input feed a model
takes and the one-line form of a runtime's error message are defined here and nowhere else.

The folder layout is the one optimum-intel and optimum-onnx expect (``openvino_model.xml/.bin``,
``model.onnx``), so their ``from_pretrained`` opens a pruneofa folder unchanged.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from pruneofa.core.errors import InputError, PruneofaError, last_line

logger = logging.getLogger(__name__)

OPENVINO_XML = "openvino_model.xml"
OPENVINO_BIN = "openvino_model.bin"
ONNX_FILE = "model.onnx"
OPENVINO_TOKENIZER_XML = "openvino_tokenizer.xml"
# An extra IR with pruneofa's SparseLinear op (``pruneofa export --sparse-ir``); it needs the kernels
# extension to be read, so the standard ``openvino_model.xml`` beside it stays what every tool loads.
OPENVINO_SPARSE_XML = "openvino_model_sparse.xml"
OPENVINO_SPARSE_BIN = "openvino_model_sparse.bin"
MODEL_FILES: dict[str, tuple[str, ...]] = {"openvino": (OPENVINO_XML, OPENVINO_BIN), "onnx": (ONNX_FILE,)}
RUNTIMES = ("openvino", "onnxruntime")
_RUNTIME_ALIASES = {
    "openvino": "openvino",
    "ov": "openvino",
    "onnxruntime": "onnxruntime",
    "onnx": "onnxruntime",
}
NOT_EXPORTED = "give a folder written by 'pruneofa export' or 'pruneofa calibrate'"


def runtime_error(path: Path, err: BaseException) -> PruneofaError:
    """A runtime that cannot load a file, as one line (exit code 1: the file exists but does not run)."""
    return PruneofaError(f"the runtime cannot load {path}: {last_line(err)}", exit_code=1)


def exported_file(folder: Path) -> tuple[str, Path] | None:
    """``("openvino", IR)`` or ``("onnx", model.onnx)`` for an exported folder (the IR first), else None."""
    if (folder / OPENVINO_XML).is_file():
        return "openvino", folder / OPENVINO_XML
    if (folder / ONNX_FILE).is_file():
        return "onnx", folder / ONNX_FILE
    return None


def is_exported_folder(folder: Path) -> bool:
    return folder.is_dir() and exported_file(folder) is not None


def model_files(folder: Path) -> tuple[str, list[Path]]:
    """The target and the model files of an exported folder (IR: ``.xml`` and ``.bin``)."""
    if (folder / OPENVINO_XML).is_file() and (folder / OPENVINO_BIN).is_file():
        return "openvino", [folder / name for name in MODEL_FILES["openvino"]]
    if (folder / ONNX_FILE).is_file():
        return "onnx", [folder / ONNX_FILE]
    raise InputError(f"{folder} has no {OPENVINO_XML}/.bin or {ONNX_FILE}; {NOT_EXPORTED}")


def resolve_runtime(folder: Path, runtime: str | None) -> str:
    """``openvino`` or ``onnxruntime``: the user's choice (aliases ``ov``, ``onnx``), else the folder's own."""
    if runtime is None:
        return "openvino" if (folder / OPENVINO_XML).is_file() else "onnxruntime"
    resolved = _RUNTIME_ALIASES.get(runtime.lower())
    if resolved is None:
        raise InputError(f"unknown runtime {runtime!r}; use openvino or onnxruntime")
    return resolved


def runtime_of(kind: str) -> str:
    """The runtime that runs a target's file: ONNX files run in ONNX Runtime, IRs in OpenVINO."""
    return "onnxruntime" if kind == "onnx" else "openvino"


def model_file_for(folder: Path, runtime: str) -> Path:
    """The model file a runtime runs: OpenVINO reads the IR or ``model.onnx``; ONNX Runtime only the latter."""
    ir, onnx_file = folder / OPENVINO_XML, folder / ONNX_FILE
    if runtime == "openvino":
        if ir.is_file():
            return ir
        if onnx_file.is_file():
            return onnx_file
    elif onnx_file.is_file():
        return onnx_file
    elif ir.is_file():
        raise InputError(
            f"{folder} holds an OpenVINO IR, which ONNX Runtime cannot run; use runtime openvino, or export "
            "with --target onnx"
        )
    raise InputError(f"{folder} has no {OPENVINO_XML} or {ONNX_FILE}; {NOT_EXPORTED}")


def model_inputs(encoded: Mapping[str, Any], input_names: list[str]) -> dict[str, np.ndarray]:
    """The model's inputs from a tokenizer output, int64; zero ``token_type_ids`` where it has none."""
    out = {}
    for name in input_names:
        if name in encoded:
            out[name] = np.asarray(encoded[name], dtype=np.int64)
        elif name == "token_type_ids":
            out[name] = np.zeros_like(np.asarray(encoded["input_ids"], dtype=np.int64))
        else:
            raise KeyError(f"the tokenizer did not produce {name}")
    return out


def load_parity_samples() -> dict[str, Any]:
    """The packaged sentences, sentence pairs and question/context pairs (parity, calibration, demos)."""
    text = (
        resources.files("pruneofa.core").joinpath("resources/parity_samples.json").read_text(encoding="utf-8")
    )
    return json.loads(text)


def ort_session(path: Path, options: Any = None) -> Any:
    """An ONNX Runtime CPU session (load errors as one line)."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # ONNX Runtime raises its own exception types
        raise runtime_error(path, err) from err


def model_input_names(path: Path) -> list[str]:
    """The input names of a model file, without compiling it."""
    if path.suffix == ".onnx":
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
        initializers = {i.name for i in graph.initializer}
        return [i.name for i in graph.input if i.name not in initializers]
    import openvino as ov

    return [next(iter(port.get_names())) for port in ov.Core().read_model(str(path)).inputs]


# OpenVINO prepares a model before compiling it, e.g. pruneofa.kernels' sparse rewrite: (core, model) → report
Prepare = Callable[[Any, Any], Any]
# ... and sets up the core before reading it, e.g. registering an extension an IR needs: core → None
Setup = Callable[[Any], Any]


class _Requests:
    """One compiled OpenVINO model and its pool of infer requests (a request runs one inference at a time)."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        size = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self._pool: queue.Queue = queue.Queue()
        for _ in range(max(1, size)):
            self._pool.put(compiled.create_infer_request())

    @contextmanager
    def _request(self) -> Iterator[Any]:
        request = self._pool.get()
        try:
            yield request
        finally:
            self._pool.put(request)

    def infer(self, feed: Mapping[str, np.ndarray], names: tuple[str, ...]) -> list[np.ndarray]:
        with self._request() as request:
            result = request.infer(feed)
            # copies: the request's output memory is reused by its next inference
            return [np.array(result[self.compiled.output(name)], dtype=np.float32) for name in names]

    def profile(self, feed: Mapping[str, np.ndarray]) -> list[Any]:
        with self._request() as request:
            request.infer(feed)
            return list(request.get_profiling_info())


ShapeKey = tuple[tuple[int, ...], ...]


class Engine:
    """An exported model compiled for the CPU: ``engine(feed) -> outputs`` in ``names`` order; safe to call
    from many threads (OpenVINO: a pool of infer requests; ONNX Runtime sessions are thread-safe).

    ``ov_config`` and ``ort_options`` are the runtime's settings; ``setup`` (OpenVINO only) prepares the core
    before the file is read; ``prepare`` may change the model between reading and compiling, and what it
    returns is kept as ``prepared``.

    Static-shape copies (OpenVINO, a model with dynamic inputs): ``prepared.static_shapes`` input shapes
    get a compilation of their own with those shapes fixed (pruneofa's sparse kernels ask for it: OpenVINO
    re-infers a custom operation's output shape on every call of a dynamic model by cloning it, and splits
    the graph's execution at every such node; with static shapes that per-inference cost is gone, as
    docs/kernels.md measures; ``prepared.specialize(model)``, where it exists, then changes each copy after
    the reshape, before it compiles). ``static_shapes``, when given, is that limit for the model whatever
    ``prepare`` returns (dense models too: OpenVINO's own graph is also faster at static shapes). A new shape is compiled in the
    background while the dynamic model answers; :meth:`specialize` waits for it (benchmarks). Shapes beyond
    the limit run on the dynamic model."""

    def __init__(
        self,
        model_file: Path,
        runtime: str,
        names: tuple[str, ...],
        *,
        ov_config: dict[str, Any] | None = None,
        ort_options: Any = None,
        prepare: Prepare | None = None,
        setup: Setup | None = None,
        static_shapes: int | None = None,
    ) -> None:
        self.runtime = runtime
        self.names = names
        self.model_file = model_file
        self.prepared: Any = None
        self.static_limit = 0
        self._static: dict[ShapeKey, _Requests] = {}
        self._pending: dict[ShapeKey, Any] = {}  # shape → Future of its compilation
        self._failed: set[ShapeKey] = set()
        self._lock = threading.Lock()
        self._executor: Any = None
        if runtime == "onnxruntime":
            self._session = ort_session(model_file, ort_options)
            self.input_names = [i.name for i in self._session.get_inputs()]
            return
        try:
            import openvino as ov

            core = ov.Core()
            if setup is not None:
                setup(core)
            model = core.read_model(str(model_file))
            if prepare is not None:
                self.prepared = prepare(core, model)
            config = dict(ov_config or {})
            self._dynamic = _Requests(core.compile_model(model, "CPU", config))
            self._compiled = self._dynamic.compiled
            self.input_names = [next(iter(port.get_names())) for port in self._compiled.inputs]
        except PruneofaError:
            raise
        except Exception as err:  # OpenVINO raises its own exception types
            raise runtime_error(model_file, err) from err
        wanted = int(getattr(self.prepared, "static_shapes", 0)) if static_shapes is None else static_shapes
        if wanted > 0 and any(port.get_partial_shape().is_dynamic for port in self._compiled.inputs):
            self.static_limit = wanted
            self._core, self._model, self._config = core, model, config

    @property
    def output_names(self) -> set[str]:
        """Every name the model's outputs answer to (a tensor may carry several)."""
        if self.runtime == "onnxruntime":
            return {out.name for out in self._session.get_outputs()}
        return {name for port in self._compiled.outputs for name in port.get_names()}

    @property
    def static_shape_list(self) -> list[ShapeKey]:
        """The input shapes that run on a static-shape compilation (in ``input_names`` order)."""
        with self._lock:
            return list(self._static)

    def __call__(self, feed: Mapping[str, Any]) -> list[np.ndarray]:
        feed = model_inputs(feed, self.input_names)
        if self.runtime == "onnxruntime":
            return [np.asarray(out, dtype=np.float32) for out in self._session.run(list(self.names), feed)]
        return self._runner(feed).infer(feed, self.names)

    def profile(self, feed: Mapping[str, Any]) -> list[Any]:
        """OpenVINO performance counters of one inference (compiled with ``PERF_COUNT``)."""
        feed = model_inputs(feed, self.input_names)
        return self._runner(feed).profile(feed)

    def specialize(self, feed: Mapping[str, Any]) -> bool:
        """Compile (or wait for) the static-shape copy for this feed's shapes; True when calls with these
        shapes now run on one. False where static shapes are off, the limit is reached or compiling failed."""
        if self.static_limit == 0:
            return False
        key = self._key(model_inputs(feed, self.input_names))
        with self._lock:
            if key in self._static:
                return True
            if key not in self._pending and not self._start(key):
                return False
            future = self._pending[key]
        future.result()  # never raises: _compile_static records a failure instead
        with self._lock:
            return key in self._static

    def _key(self, feed: Mapping[str, np.ndarray]) -> ShapeKey:
        return tuple(tuple(int(d) for d in feed[name].shape) for name in self.input_names)

    def _runner(self, feed: Mapping[str, np.ndarray]) -> _Requests:
        if self.static_limit == 0:
            return self._dynamic
        key = self._key(feed)
        with self._lock:
            found = self._static.get(key)
            if found is None and key not in self._pending:
                self._start(key)
        return found or self._dynamic

    def _start(self, key: ShapeKey) -> bool:
        """Queue the compilation of a static copy for ``key`` (the lock is held); False when none is due."""
        if key in self._failed or len(self._static) + len(self._pending) >= self.static_limit:
            return False
        if self._executor is None:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pruneofa-static-shapes")
        self._pending[key] = self._executor.submit(self._compile_static, key)
        return True

    def _compile_static(self, key: ShapeKey) -> None:
        try:
            model = self._model.clone()
            model.reshape({name: list(shape) for name, shape in zip(self.input_names, key, strict=True)})
            specialize = getattr(self.prepared, "specialize", None)
            if specialize is not None:  # what ``prepare`` can do only at fixed shapes
                specialize(model)
            compiled = _Requests(self._core.compile_model(model, "CPU", self._config))
        except Exception as err:  # the dynamic model keeps answering; say why once per shape
            logger.warning("static-shape compilation for %s failed (%s); the dynamic model runs it", key, err)
            with self._lock:
                self._failed.add(key)
                self._pending.pop(key, None)
            return
        with self._lock:
            self._static[key] = compiled
            self._pending.pop(key, None)


def exact_engine(model_file: Path, names: tuple[str, ...], prepare: Prepare | None = None) -> Engine:
    """An engine for checks: FP32 execution (no bf16 on AMX CPUs), so parity measures the file's weights;
    ``prepare`` (OpenVINO) changes the model before it compiles, as :class:`Engine` says."""
    runtime = "onnxruntime" if model_file.suffix == ".onnx" else "openvino"
    return Engine(model_file, runtime, names, ov_config={"INFERENCE_PRECISION_HINT": "f32"}, prepare=prepare)


class TorchRunner:
    """Runs a transformers model on a numpy feed and returns the named outputs as float32 arrays."""

    def __init__(self, model: Any, outputs: tuple[str, ...]) -> None:
        self.model = model
        self.outputs = outputs

    def __call__(self, batch: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        with torch.no_grad():
            result = self.model(**{k: torch.from_numpy(v) for k, v in batch.items()}, return_dict=True)
        return [result[name].float().numpy() for name in self.outputs]
