"""KServe v2 over gRPC beside REST (``pruneofa serve --grpc-port``): the standard
``inference.GRPCInferenceService`` with the messages and service stubs ``tritonclient`` ships.

It runs on the REST server's event loop and goes through the same :class:`ModelService`: the same model
check, the same codec (a gRPC request is turned into the REST body it stands for, so every limit and
refusal is the REST one), the same batcher and the same Prometheus metrics (``endpoint`` is
``grpc <Method>``, ``status`` the gRPC status name). A refusal's HTTP status maps to a gRPC status
(:data:`STATUS_CODES`) with the same one-line message; a message larger than ``max_body_bytes`` is refused
by gRPC itself (``RESOURCE_EXHAUSTED``).

Implemented: ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata, ModelInfer (BYTES
inputs in ``contents.bytes_contents`` or ``raw_input_contents``; outputs in ``raw_output_contents``, as
Triton answers), RepositoryIndex. The rest (streaming, model config and statistics, load and unload,
shared memory, trace and log settings) answer ``UNIMPLEMENTED``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np
from tritonclient.grpc import service_pb2 as _service_pb2
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from pruneofa import __version__
from pruneofa.deploy.serving import codec
from pruneofa.deploy.serving.errors import INTERNAL_ERROR, HttpError

# The generated protobuf module builds its message classes at import time, which type checkers cannot see.
pb: Any = _service_pb2

if TYPE_CHECKING:
    from pruneofa.deploy.serving.app import ModelService

logger = logging.getLogger("pruneofa.serve")

STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
    500: grpc.StatusCode.INTERNAL,
}
_RAW_DTYPES = {"FP32": "<f4", "FP64": "<f8", "INT32": "<i4", "INT64": "<i8"}


def _parameter(value: Any) -> Any:  # a pb.InferParameter
    """An ``InferParameter`` as the JSON value the REST body would carry (``None`` when unset)."""
    which = value.WhichOneof("parameter_choice")
    return None if which is None else getattr(value, which)


def _parameters(parameters: Any) -> dict[str, Any]:
    return {key: _parameter(value) for key, value in parameters.items()}


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")  # strict: no lone surrogates can come out of it
    except UnicodeDecodeError as err:
        raise HttpError(
            400, f"{what} is not UTF-8 (bad byte at offset {err.start}); send UTF-8 text"
        ) from None


def split_raw_bytes(raw: bytes, name: str, max_items: int) -> list[str]:
    """A BYTES tensor in ``raw_input_contents``: each element a 4-byte little-endian length and its bytes."""
    texts: list[str] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise HttpError(400, f"input {name!r}: raw contents end inside an element's 4-byte length")
        (size,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise HttpError(400, f"input {name!r}: raw contents end inside element {len(texts)}")
        texts.append(_text(raw[offset : offset + size], f"{name}[{len(texts)}]"))
        offset += size
        if len(texts) > max_items:
            raise HttpError(413, f"more than {max_items} texts in one request, over the limit of {max_items}")
    return texts


def request_body(request: Any, max_items: int) -> dict[str, Any]:  # a pb.ModelInferRequest
    """The REST v2 body a ``ModelInferRequest`` stands for (the codec then checks it as it checks REST)."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise HttpError(
            400,
            f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs; send one per input or none",
        )
    inputs = []
    for index, tensor in enumerate(request.inputs):
        data: list[Any] = []
        if tensor.datatype == "BYTES":
            if raw:
                data = split_raw_bytes(raw[index], tensor.name, max_items)
            else:
                contents = tensor.contents.bytes_contents
                if len(contents) > max_items:
                    raise HttpError(
                        413, f"{len(contents)} texts in one request, over the limit of {max_items}"
                    )
                data = [_text(b, f"{tensor.name}[{i}]") for i, b in enumerate(contents)]
        entry: dict[str, Any] = {
            "name": tensor.name,
            "shape": list(tensor.shape),
            "datatype": tensor.datatype,
            "data": data,
        }
        if tensor.parameters:
            entry["parameters"] = _parameters(tensor.parameters)
        inputs.append(entry)
    body: dict[str, Any] = {"inputs": inputs}
    if request.id:
        body["id"] = request.id
    if request.parameters:
        body["parameters"] = _parameters(request.parameters)
    return body


def raw_output(datatype: str, data: list[Any]) -> bytes:
    """One output tensor's flat data in Triton's raw layout (``raw_output_contents``)."""
    if datatype == "BYTES":
        out = bytearray()
        for item in np.asarray(data, dtype=object).reshape(-1):
            encoded = (item if isinstance(item, str) else json.dumps(item)).encode("utf-8")
            out += struct.pack("<I", len(encoded)) + encoded
        return bytes(out)
    return np.asarray(data, dtype=_RAW_DTYPES[datatype]).reshape(-1).tobytes()


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The gRPC methods of one :class:`ModelService`, each answered, refused and counted as REST is."""

    def __init__(self, service: ModelService) -> None:
        self.service = service

    async def _answer(self, method: str, context: Any, handler: Callable[[], Awaitable[Any]]) -> Any:
        metrics = self.service.metrics
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            return await handler()
        except HttpError as err:
            code = STATUS_CODES.get(err.status, grpc.StatusCode.UNKNOWN)
            await context.abort(code, err.message)
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception:
            logger.exception("gRPC %s failed", method)
            code = grpc.StatusCode.INTERNAL
            await context.abort(code, INTERNAL_ERROR)
        finally:
            metrics.requests.labels(f"grpc {method}", code.name).inc()
            metrics.latency.labels(f"grpc {method}").observe(time.perf_counter() - started)

    async def ServerLive(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
        return await self._answer("ServerLive", context, self._live)

    async def _live(self) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        async def ready() -> Any:
            return pb.ServerReadyResponse(ready=self.service.lifecycle.serving)

        return await self._answer("ServerReady", context, ready)

    async def ModelReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        async def ready() -> Any:
            self.service.check_model(request.name, request.version or None)
            return pb.ModelReadyResponse(ready=self.service.lifecycle.serving)

        return await self._answer("ModelReady", context, ready)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        async def metadata() -> Any:
            return pb.ServerMetadataResponse(name="pruneofa", version=__version__, extensions=[])

        return await self._answer("ServerMetadata", context, metadata)

    async def ModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        async def metadata() -> Any:
            rest = await self.service.model_metadata(request.name, request.version or None)
            tensor = pb.ModelMetadataResponse.TensorMetadata
            return pb.ModelMetadataResponse(
                name=rest["name"],
                versions=rest["versions"],
                platform=rest["platform"],
                inputs=[tensor(**t) for t in rest["inputs"]],
                outputs=[tensor(**t) for t in rest["outputs"]],
            )

        return await self._answer("ModelMetadata", context, metadata)

    async def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
        async def infer() -> Any:
            service = self.service
            service.check_model(request.model_name, request.model_version or None)
            body = request_body(request, service.config.max_items)
            items, parameters = codec.v2_items(service.task, body, service.config, service.pipeline.tokenizer)
            parameters = codec.v2_parameters(service.task, parameters)
            results = await service.run(items, parameters)
            response = pb.ModelInferResponse(model_name=service.name, model_version="1", id=request.id)
            for tensor in codec.v2_outputs(service.task, results):
                response.outputs.add(name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"])
                response.raw_output_contents.append(raw_output(tensor["datatype"], tensor["data"]))
            return response

        return await self._answer("ModelInfer", context, infer)

    async def RepositoryIndex(self, request: Any, context: Any) -> Any:  # noqa: N802
        async def index() -> Any:
            entries = self.service.repository_entries(request.ready)
            model = pb.RepositoryIndexResponse.ModelIndex
            return pb.RepositoryIndexResponse(models=[model(**e) for e in entries])

        return await self._answer("RepositoryIndex", context, index)


async def start_grpc_server(service: ModelService) -> tuple[Any, int]:
    """The gRPC server of ``service`` listening on ``--host`` and ``--grpc-port`` (0: a free one), on the
    running event loop; returns it and its port. A request message is bounded by ``max_body_bytes`` and its
    metadata by ``max_header_bytes``, as REST bounds the body and the headers."""
    config = service.config
    limit = config.max_body_bytes
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_metadata_size", config.max_header_bytes),
        ]
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(service), server)
    host = f"[{config.host}]" if ":" in config.host else config.host
    port = server.add_insecure_port(f"{host}:{config.grpc_port}")
    if port == 0:
        raise RuntimeError(f"cannot listen for gRPC on {config.host}:{config.grpc_port}")
    await server.start()
    return server, port
