"""The options of ``pruneofa export``: the public API of the exporter and the one source of its flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pruneofa.core.cliargs import cli
from pruneofa.core.errors import validated
from pruneofa.core.fidelity import (
    DEFAULT_MIN_COSINE,
    DEFAULT_MIN_NEIGHBOURS,
    DEFAULT_MIN_TOPK_OVERLAP,
    MinAgreement,
    MinCosine,
    MinNeighbours,
    MinTopkOverlap,
)
from pruneofa.core.support import DEFAULT_OPSET, MIN_OPSET

# FP32 exports change nothing but the order of floating-point operations; FP16 weights round.
DEFAULT_ATOL = {"fp32": 1e-4, "fp16": 5e-2}


class ExportConfig(BaseModel):
    """Validated options of one export (the CLI builds this from its flags)."""

    model_config = ConfigDict(extra="forbid")

    targets: list[Literal["openvino", "onnx"]] = Field(
        min_length=1,
        description="openvino, onnx, or both as openvino,onnx",
        json_schema_extra=cli(flag="--target", metavar="TARGETS"),
    )
    task: str | None = Field(
        default=None, description="export task (inferred from config.json architectures when omitted)"
    )
    output: Path | None = Field(
        default=None,
        description="output folder",
        json_schema_extra=cli(default_text="exports/NAME-TARGET; with several targets, one sub-folder each"),
    )
    opset: int = Field(default=DEFAULT_OPSET, description=f"ONNX opset (min {MIN_OPSET})")
    weight_format: Literal["fp32", "fp16"] = Field(
        default="fp32",
        description="how OpenVINO stores weights (fp32 is lossless; fp16 halves the file; ONNX is fp32)",
    )
    shrink: bool = Field(default=False, description="remove all-zero attention heads and FFN neurons")
    parity_samples: int = Field(default=48, ge=1, le=10_000, description="inputs compared with PyTorch")
    atol: float | None = Field(
        default=None,
        gt=0,
        description="max absolute output error",
        json_schema_extra=cli(
            default_text=f"{DEFAULT_ATOL['fp32']:g} for fp32, {DEFAULT_ATOL['fp16']:g} for fp16"
        ),
    )
    # Parity bounds: which apply follows the task (pruneofa.core.fidelity, the same fields as calibrate's).
    # Label agreement is stricter than calibrate's 0.95: an FP32/FP16 export should change no decision
    # beyond numerical near-ties, and --atol gates its raw outputs as well.
    min_agreement: MinAgreement = 0.99
    min_cosine: MinCosine = DEFAULT_MIN_COSINE
    min_neighbours: MinNeighbours = DEFAULT_MIN_NEIGHBOURS
    min_topk_overlap: MinTopkOverlap = DEFAULT_MIN_TOPK_OVERLAP
    overwrite: bool = Field(default=False, description="replace a non-empty output folder")
    convert_tokenizer: bool = Field(
        default=True,
        description="also write the OpenVINO tokenizer model",
        json_schema_extra=cli(flag="--tokenizer"),
    )
    sparse_ir: bool = Field(
        default=False,
        description="openvino: also write openvino_model_sparse.xml, whose sparse layers are pruneofa's "
        "SparseLinear op (for C++/OVMS deployment with the kernels library; checked against the standard IR)",
    )
    sparse_kernels: Literal["auto", "on"] = Field(
        default="auto",
        description="with --sparse-ir, which layers become the op: auto (those sparse enough to gain on this "
        "CPU, by the measured crossover), on (every eligible layer)",
    )

    @field_validator("opset")
    @classmethod
    def _opset_in_range(cls, value: int) -> int:
        import onnx

        newest = onnx.defs.onnx_opset_version()
        if value < MIN_OPSET:
            raise ValueError(f"opset {value} is too low: the exporter needs at least {MIN_OPSET}")
        if value > newest:
            raise ValueError(f"opset {value} is newer than this onnx ({newest}) supports")
        return value

    @field_validator("targets")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _sparse_ir_is_openvino(self) -> ExportConfig:
        if self.sparse_ir and "openvino" not in self.targets:
            raise ValueError("--sparse-ir writes an OpenVINO IR; add openvino to --target")
        return self


def make_config(**options: Any) -> ExportConfig:
    """Build a :class:`ExportConfig` from keyword options; bad values are a one-line :class:`InputError`."""
    return validated(ExportConfig, **options)
