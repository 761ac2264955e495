"""The ``kserve.Model`` that serves a pruneofa folder: the folder opened as ``pruneofa serve`` opens it
(``deploy.load``, the task from the registry, sparse kernels), requests checked and answered by the same
KServe v2 codec (:mod:`pruneofa.deploy.serving.codec`), batched by the same dynamic batcher.

kserve decodes REST v2 and gRPC requests into an ``InferRequest``; :func:`v2_body` turns one back into the
REST v2 body it stands for, so every limit and refusal is the one ``pruneofa serve`` applies. REST v1
(``{"instances": [...]}``) takes the ``/predict`` inputs and answers ``{"predictions": [...]}``.
"""

from __future__ import annotations

from typing import Any

# kserve is the optional extra (pip install 'pruneofa[kserve]'), absent from requirements.lock.
from kserve import InferRequest, InferResponse, Model  # pyright: ignore[reportMissingImports]
from kserve.errors import InferenceError, InvalidInput  # pyright: ignore[reportMissingImports]
from kserve.protocol.infer_type import (  # pyright: ignore[reportMissingImports]
    InferOutput,
    to_http_parameters,
)

from pruneofa.core.errors import InputError
from pruneofa.core.inference import Pipeline
from pruneofa.deploy.config import ServeConfig
from pruneofa.deploy.serving import codec
from pruneofa.deploy.serving.app import load_for_serving, served_name
from pruneofa.deploy.serving.batching import Batcher, Metrics
from pruneofa.deploy.serving.errors import HttpError

_V1_KEYS = {"instances", "parameters"}


def _text(value: Any, what: str) -> Any:
    """A BYTES element as text: bytes (gRPC, binary REST) decoded strictly as UTF-8; anything else as given,
    for the codec to accept (a string) or refuse."""
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as err:
            raise HttpError(
                400, f"{what} is not UTF-8 (bad byte at offset {err.start}); send UTF-8 text"
            ) from None
    return value


def _parameters(parameters: Any) -> dict[str, Any] | None:
    """Request or tensor parameters as plain JSON values (gRPC gives a protobuf map)."""
    if not parameters:
        return None
    return dict(parameters) if isinstance(parameters, dict) else to_http_parameters(parameters)


def v2_body(request: Any, max_items: int) -> dict[str, Any]:
    """The REST v2 body an ``InferRequest`` stands for: each input's name, shape, datatype and data (BYTES
    elements as text), its parameters, the request's id and parameters."""
    inputs = []
    for tensor in request.inputs:
        data: Any = None
        if tensor.datatype == "BYTES":
            values = tensor.as_numpy().reshape(-1).tolist()
            if len(values) > max_items:
                raise HttpError(413, f"{len(values)} texts in one request, over the limit of {max_items}")
            data = [_text(v, f"{tensor.name}[{i}]") for i, v in enumerate(values)]
        entry: dict[str, Any] = {
            "name": tensor.name,
            "shape": list(tensor.shape),
            "datatype": tensor.datatype,
            "data": data,
        }
        tensor_parameters = _parameters(tensor.parameters)
        if tensor_parameters is not None:
            entry["parameters"] = tensor_parameters
        inputs.append(entry)
    body: dict[str, Any] = {"inputs": inputs}
    parameters = _parameters(request.parameters)
    if parameters is not None:
        body["parameters"] = parameters
    if request.id:
        body["id"] = request.id
    return body


def _refusal(err: HttpError) -> Exception:
    """A refusal as the kserve error its servers answer: 4xx → InvalidInput (HTTP 400, gRPC
    INVALID_ARGUMENT), else InferenceError (500, INTERNAL); the one-line message is kept."""
    return InvalidInput(err.message) if 400 <= err.status < 500 else InferenceError(err.message)


class PruneofaModel(Model):
    """One exported folder served by ``kserve.ModelServer``.

    ``config`` carries the limits and load options of ``pruneofa serve`` (:class:`ServeConfig`: task,
    runtime, sparse kernels, hint, batch size and delay, texts per request, characters per text); the
    model's name is ``config.name``, else the one derived from the folder's ``pruneofa.json``."""

    def __init__(self, folder: str, config: ServeConfig) -> None:
        name = served_name(folder, config)
        super().__init__(name)
        self.folder = folder
        self.config = config.model_copy(update={"name": name})
        self.pipeline: Pipeline | None = None
        self.metrics = Metrics()
        self._batcher: Batcher | None = None

    def load(self) -> bool:
        """Open the folder (refusing custom code), warm it up, and report ready."""
        from pruneofa.core.modelio import refuse_custom_code

        refuse_custom_code(self.folder)
        pipeline = load_for_serving(self.folder, self.config)
        self.pipeline = pipeline
        self.ready = True
        return self.ready

    # --- metadata (GET /v2/models/{name}, gRPC ModelMetadata) -------------------------------------------

    def _metadata(self) -> dict[str, Any]:
        if self.pipeline is None:
            return {"inputs": [], "outputs": []}
        return codec.model_metadata(self.name, self.pipeline)

    def get_input_types(self) -> list[dict]:
        return self._metadata()["inputs"]

    def get_output_types(self) -> list[dict]:
        return self._metadata()["outputs"]

    # --- inference ------------------------------------------------------------------------------------

    async def _run(self, items: list[Any], parameters: dict[str, Any]) -> list[Any]:
        """Items through the dynamic batcher, started on the server's event loop at the first request."""
        batcher = self._batcher
        if batcher is None:
            assert self.pipeline is not None, "predict before load"
            batcher = self._batcher = Batcher(self.pipeline, self.config, self.metrics)
            batcher.start()
        try:
            return await batcher.submit(items, parameters)
        except InputError as err:
            raise HttpError(400, str(err)) from None

    async def predict(
        self,
        payload: Any,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> Any:
        """A v2 request (REST or gRPC, an ``InferRequest``) answered with the task's output tensors (an
        ``InferResponse``); a v1 request (a dict) with the pipeline's results."""
        try:
            if isinstance(payload, dict):
                return await self._predict_v1(payload)
            if not isinstance(payload, InferRequest):
                raise HttpError(400, 'a request is a v2 InferRequest or a v1 {"instances": [...]}')
            return await self._predict_v2(payload)
        except HttpError as err:
            raise _refusal(err) from None

    async def _predict_v2(self, request: Any) -> Any:
        assert self.pipeline is not None, "predict before load"
        task, config = self.pipeline.task, self.config
        body = v2_body(request, config.max_items)
        items, parameters = codec.v2_items(task, body, config, self.pipeline.tokenizer)
        results = await self._run(items, codec.v2_parameters(task, parameters))
        outputs = [
            InferOutput(name=t["name"], shape=t["shape"], datatype=t["datatype"], data=t["data"])
            for t in codec.v2_outputs(task, results)
        ]
        return InferResponse(
            response_id=request.id or "",
            model_name=self.name,
            model_version="1",
            infer_outputs=outputs,
            use_binary_outputs=request.use_binary_outputs,
        )

    async def _predict_v1(self, payload: dict[str, Any]) -> dict[str, Any]:
        assert self.pipeline is not None, "predict before load"
        task, config = self.pipeline.task, self.config
        if not isinstance(payload.get("instances"), list) or set(payload) - _V1_KEYS:
            raise HttpError(400, 'a v1 request is {"instances": [...], "parameters": {...}}')
        instances = payload["instances"]
        parameters = codec.check_parameters(task, payload.get("parameters"))
        items, many = codec.plain_items(task, instances, config, self.pipeline.tokenizer)
        results = await self._run(items, parameters)
        return {"predictions": task.plain_result(instances, parameters, results, many)}
