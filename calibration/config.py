"""The options of ``pruneofa calibrate``: the public API of calibration and the one source of its flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pruneofa.core.cliargs import cli
from pruneofa.core.errors import validated
from pruneofa.core.fidelity import (
    DEFAULT_MIN_AGREEMENT,
    DEFAULT_MIN_COSINE,
    DEFAULT_MIN_NEIGHBOURS,
    DEFAULT_MIN_TOPK_OVERLAP,
    MinAgreement,
    MinCosine,
    MinNeighbours,
    MinTopkOverlap,
)

OverflowChoice = Literal["auto", "enable", "disable", "first-layer"]
MethodChoice = Literal["auto", "minmax", "entropy", "percentile", "dynamic"]
# The ONNX methods that calibrate activation ranges on samples (static QDQ); ``dynamic`` needs no samples.
STATIC_METHODS = ("minmax", "entropy", "percentile")
# The options that choose calibration samples out of --data.
SAMPLE_OPTIONS = ("split", "samples", "seed")


class CalibrateConfig(BaseModel):
    """Validated options of one calibration (the CLI builds this from its flags)."""

    model_config = ConfigDict(extra="forbid")

    task: str | None = Field(
        default=None,
        description="task of the data: cola, sst2, mrpc, qqp, stsb, mnli, mnli-mm, qnli, rte, wnli, squad, mlm",
    )
    data: str | None = Field(
        default=None,
        description="calibration data: hub dataset id, a GLUE task folder, or a TSV/CSV/JSON/JSONL/SQuAD/text "
        "file (OpenVINO and static ONNX methods need it; dynamic quantization does not)",
        json_schema_extra=cli(default_text="none: ONNX is quantized dynamically"),
    )
    split: Literal["train", "dev"] = Field(
        default="train", description="split the calibration set is drawn from"
    )
    samples: int = Field(default=300, ge=1, le=100_000, description="calibration samples")
    seed: int = Field(default=0, description="seed for drawing the samples (recorded)")
    method: MethodChoice = Field(
        default="auto",
        description="ONNX: auto (static minmax, and dynamic if its parity fails or without --data), a static "
        "QDQ calibration method, or dynamic; OpenVINO calibrates with NNCF and takes only auto",
    )
    per_channel: bool = Field(
        default=True,
        description="ONNX: one weight scale per output channel (NNCF always does this for OpenVINO)",
    )
    preset: Literal["mixed", "performance"] = Field(default="mixed", description="OpenVINO: NNCF preset")
    overflow_fix: OverflowChoice = Field(
        default="auto",
        description="7-bit weights against INT8 saturation; auto: on when the CPU lacks VNNI/AMX",
    )
    output: Path | None = Field(
        default=None, description="output folder", json_schema_extra=cli(default_text="EXPORTED_DIR-int8")
    )
    overwrite: bool = Field(default=False, description="replace a non-empty output folder")
    max_drop: float | None = Field(
        default=None,
        gt=0,
        le=100,
        description="OpenVINO, GLUE tasks: accuracy-controlled quantization, max metric drop in points",
    )
    eval_data: str | None = Field(
        default=None, description="labelled data for --max-drop (its dev split is used)"
    )
    eval_limit: int | None = Field(default=None, ge=1, description="use only the first N evaluation examples")
    parity_samples: int = Field(
        default=48, ge=1, le=10_000, description="inputs compared with the FP32 export"
    )
    # Parity with the FP32 export: which bound applies follows the export task (pruneofa.core.fidelity).
    min_agreement: MinAgreement = DEFAULT_MIN_AGREEMENT
    min_cosine: MinCosine = DEFAULT_MIN_COSINE
    min_neighbours: MinNeighbours = DEFAULT_MIN_NEIGHBOURS
    min_topk_overlap: MinTopkOverlap = DEFAULT_MIN_TOPK_OVERLAP
    atol: float | None = Field(
        default=None,
        gt=0,
        description="max absolute output error vs FP32",
        json_schema_extra=cli(default_text="reported, not gated"),
    )

    @model_validator(mode="after")
    def _max_drop_needs_eval_data(self) -> CalibrateConfig:
        if self.max_drop is not None and self.eval_data is None:
            raise ValueError("--max-drop needs --eval-data (the labelled examples the drop is measured on)")
        return self

    @model_validator(mode="after")
    def _data_where_it_is_read(self) -> CalibrateConfig:
        """Calibration data and the options that draw samples from it, only where they are read."""
        if self.data is not None and self.task is None:
            raise ValueError("--data needs --task (how to read it: sst2, mrpc, squad, ...)")
        chosen = [f"--{name}" for name in SAMPLE_OPTIONS if name in self.model_fields_set]
        if self.method == "dynamic" and chosen:
            raise ValueError(
                f"{', '.join(chosen)} given, but --method dynamic draws no calibration samples; drop them"
            )
        if self.method in STATIC_METHODS and self.data is None:
            raise ValueError(
                f"--method {self.method} calibrates on samples: give --task and --data (--method dynamic needs none)"
            )
        if self.data is None and chosen:
            raise ValueError(
                f"{', '.join(chosen)} given without --data, the samples they choose from; give --task and --data"
            )
        return self

    @property
    def reads_data(self) -> bool:
        """Whether calibration samples are drawn from ``data`` (every method but dynamic, when given)."""
        return self.data is not None and self.method != "dynamic"


def make_config(**options: Any) -> CalibrateConfig:
    """Build a :class:`CalibrateConfig` from keyword options; bad values are a one-line :class:`InputError`."""
    return validated(CalibrateConfig, **options)
