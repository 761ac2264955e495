"""Serving an exported folder over HTTP: the app (:mod:`.app`), batching and metrics (:mod:`.batching`),
HTTP hardening (:mod:`.hardening`), request bodies (:mod:`.requests`) and the KServe v2 codec
(:mod:`.codec`). ``pruneofa serve`` is :func:`pruneofa.deploy.serve.serve`."""

from pruneofa.deploy.config import ServeConfig, serve_config
from pruneofa.deploy.serving.app import create_app, infer_url, served_name
from pruneofa.deploy.serving.batching import Lifecycle
from pruneofa.deploy.serving.errors import INTERNAL_ERROR, HttpError
from pruneofa.deploy.serving.hardening import uvicorn_server
from pruneofa.deploy.serving.requests import parse_json

__all__ = [
    "INTERNAL_ERROR",
    "HttpError",
    "Lifecycle",
    "ServeConfig",
    "create_app",
    "infer_url",
    "parse_json",
    "serve_config",
    "served_name",
    "uvicorn_server",
]
