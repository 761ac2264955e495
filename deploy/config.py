"""The options of ``pruneofa validate | benchmark | serve | package``: the public API of deployment and the
one source of those commands' flags. Light to import (pydantic only), so ``pruneofa --help`` stays fast."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pruneofa.core.choices import DEFAULT_HINT, DEFAULT_PRECISION, Hint, KernelMode, Precision, Runtime
from pruneofa.core.cliargs import cli
from pruneofa.core.errors import validated

PEERS = ("torch", "onnxruntime", "optimum-intel")
PACKAGE_FORMATS = ("ovms", "triton", "archive", "folder")
SPARSE_KERNELS_HELP = (
    "pruneofa's sparse kernels for OpenVINO: auto (layers sparse enough to gain on this CPU), on (every "
    "eligible layer), off"
)
StaticShapes = Literal["sparse", "all"]
STATIC_SHAPES_HELP = (
    "OpenVINO models that compile a static-shape copy for each of their first PRUNEOFA_KERNELS_STATIC_SHAPES "
    "(default 4) input shapes: sparse (models with sparse layers, whose kernels need it), all (dense models "
    "too: faster calls, one more compiled model in memory per shape)"
)
PRECISION_HELP = (
    "OpenVINO's inference precision: f32 (the outputs export and calibrate checked) or bf16 (OpenVINO's own "
    "default on CPUs with native bf16, AVX512_BF16 or AMX: faster, outputs move by bf16 rounding; refused on "
    "other CPUs)"
)


class ValidateConfig(BaseModel):
    """Validated options of ``pruneofa validate`` (the accuracy-parity gate)."""

    model_config = ConfigDict(extra="forbid")

    reference: str = Field(description="PyTorch model folder or hub id, or another exported folder")
    data: str = Field(description="hub dataset id, a GLUE task folder, or a TSV/CSV/JSON/JSONL/SQuAD file")
    task: str | None = Field(
        default=None,
        description="cola, sst2, mrpc, qqp, stsb, mnli, mnli-mm, qnli, rte, wnli, squad",
        json_schema_extra=cli(default_text="from a calibrated folder's manifest"),
    )
    inference_task: str | None = Field(
        default=None,
        description="score the models as this inference task (zero-shot-classification: an NLI export on "
        "an NLI data set, its labels matched to the data's by name)",
        json_schema_extra=cli(default_text="the data task's export task"),
    )
    split: Literal["dev", "train"] = Field(default="dev", description="split to evaluate")
    max_drop: float = Field(default=1.0, ge=0, description="max drop of the primary metric, in points")
    min_agreement: float = Field(
        default=0.99,
        ge=0,
        le=1,
        description="min share of identical predictions on the data set",
        # agreement on the data set; export's and calibrate's --min-parity-agreement is output parity
        json_schema_extra=cli(flag="--min-label-agreement", deprecated=("--min-agreement",)),
    )
    max_class_drop: float | None = Field(
        default=None,
        ge=0,
        description="max drop, in points, of the worst class's F1 or slice's score (classes and slices with "
        "at least --min-slice-size examples)",
        json_schema_extra=cli(metavar="POINTS", default_text="not gated"),
    )
    max_ece_increase: float | None = Field(
        default=None,
        ge=0,
        description="max rise of the expected calibration error (15 equal-width bins), in points; "
        "classification tasks",
        json_schema_extra=cli(metavar="POINTS", default_text="not gated"),
    )
    min_slice_size: int = Field(
        default=20,
        ge=1,
        description="classes and slices with fewer examples are reported but not gated",
        json_schema_extra=cli(metavar="N"),
    )
    slice_by: list[str] = Field(
        default_factory=list,
        description="also compare the models on each value of these data columns (TSV/CSV header names, "
        "JSON record keys; SQuAD: title); inputs are always sliced by length",
        json_schema_extra=cli(metavar="COLUMN[,COLUMN]"),
    )
    flipped: int = Field(
        default=20,
        ge=0,
        description="write the N most confident disagreements (texts, both predictions and confidences, "
        "gold label) to the reports",
        json_schema_extra=cli(metavar="N"),
    )
    limit: int | None = Field(
        default=None, ge=1, description="evaluate only the first N examples (quick runs)"
    )
    batch_size: int = Field(
        default=16, ge=1, le=4096, description="examples per batch, padded to the batch's longest"
    )
    report: Path | None = Field(default=None, description="write the JSON report to this file")
    junit: Path | None = Field(
        default=None,
        description="write JUnit XML to this file, one test case per gate (metric_drop, prediction_agreement, "
        "class_drop, ece_increase)",
    )
    html: Path | None = Field(
        default=None,
        description="write the behaviour report as one self-contained HTML page (tables and plots)",
        json_schema_extra=cli(metavar="REPORT.html"),
    )
    sparse_kernels: KernelMode = Field(
        default="auto", description=SPARSE_KERNELS_HELP + " (for the candidate)"
    )
    precision: Precision = Field(
        default=DEFAULT_PRECISION,
        description=PRECISION_HELP
        + "; for an exported OpenVINO candidate: validate at the precision it will serve at",
    )

    @field_validator("slice_by")
    @classmethod
    def _columns(cls, value: list[str]) -> list[str]:
        names = [name.strip() for name in value]
        if any(not name for name in names):
            raise ValueError("column names must not be empty")
        return list(dict.fromkeys(names))


class BenchmarkConfig(BaseModel):
    """Validated options of ``pruneofa benchmark``."""

    model_config = ConfigDict(extra="forbid")

    vs: list[Literal["torch", "onnxruntime", "optimum-intel"]] = Field(
        default_factory=lambda: list(PEERS),
        description="peers run in the same process: torch,onnxruntime,optimum-intel or none",
        json_schema_extra=cli(metavar="PEERS"),
    )
    batches: list[int] = Field(
        default_factory=lambda: [1, 16],
        min_length=1,
        description="batch sizes",
        json_schema_extra=cli(flag="--batch", metavar="N,M"),
    )
    seq: int = Field(default=128, ge=2, le=4096, description="tokens per sequence")
    duration: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description=(
            "timed seconds per variant and batch size, split over the rounds (each round runs a variant at "
            "least 3 times); loading, building peers, warm-up and static-shape compiles come on top, "
            "so the whole run takes longer: it prints its estimate of the total before measuring"
        ),
    )
    repeats: int = Field(default=3, ge=1, le=100, description="interleaved rounds")
    warmup: int = Field(default=3, ge=0, le=1000, description="warm-up runs per variant")
    threads: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="threads for every variant",
        json_schema_extra=cli(default_text="all cores available"),
    )
    precision: Precision = Field(
        default=DEFAULT_PRECISION,
        description=PRECISION_HELP + "; every OpenVINO variant, optimum-intel's peer included, runs at it",
    )
    output: Path | None = Field(
        default=None,
        description="output folder",
        json_schema_extra=cli(default_text="bench-out/benchmark/NAME"),
    )
    overwrite: bool = Field(default=False, description="replace a non-empty output folder")
    sparse_kernels: KernelMode = Field(
        default="auto",
        description=SPARSE_KERNELS_HELP + "; a candidate that ran sparse is also measured with them off",
    )

    @field_validator("vs", mode="before")
    @classmethod
    def _none(cls, value: Any) -> Any:
        if value == ["none"] or value == "none":
            return []
        return value

    @field_validator("batches")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(b < 1 or b > 4096 for b in value):
            raise ValueError("batch sizes must be between 1 and 4096")
        return list(dict.fromkeys(value))

    @field_validator("vs")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class ServeConfig(BaseModel):
    """Validated options of ``pruneofa serve``."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="address to listen on")
    port: int = Field(default=8000, ge=0, le=65535, description="port (0 picks a free one)")
    grpc_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="also serve KServe v2 over gRPC (inference.GRPCInferenceService) on this port, e.g. "
        "8001 as Triton does (0 picks a free one); needs pip install 'pruneofa[grpc]'",
        json_schema_extra=cli(default_text="off: REST only"),
    )
    name: str | None = Field(
        default=None,
        description="model name in the v2 URLs (letters, digits, _ . -)",
        json_schema_extra=cli(
            default_text="from pruneofa.json: source model, target and precision unless FP32, e.g. "
            "all-MiniLM-L6-v2-openvino-int8; else the folder's name"
        ),
    )
    runtime: Runtime | None = Field(
        default=None, description="force a runtime", json_schema_extra=cli(default_text="the folder's own")
    )
    task: str | None = Field(
        default=None,
        description="serve the folder as this task (zero-shot-classification: an NLI text-classification "
        "export)",
        json_schema_extra=cli(default_text="the folder's export task"),
    )
    sparse_kernels: KernelMode = Field(default="auto", description=SPARSE_KERNELS_HELP)
    static_shapes: StaticShapes = Field(default="sparse", description=STATIC_SHAPES_HELP)
    hint: Hint = Field(default=DEFAULT_HINT, description="OpenVINO performance hint")
    precision: Precision = Field(default=DEFAULT_PRECISION, description=PRECISION_HELP)
    max_batch: int = Field(default=16, ge=1, le=4096, description="texts per dynamic batch")
    max_delay_ms: float = Field(default=5.0, ge=0, le=10_000, description="wait for a batch to fill, in ms")
    max_queue: int = Field(default=256, ge=1, le=1_000_000, description="waiting requests before 503")
    max_body_bytes: int = Field(default=1 << 20, ge=64, description="request body limit in bytes")
    max_items: int = Field(default=64, ge=1, description="texts per request")
    max_text_chars: int = Field(default=10_000, ge=1, description="characters per text")
    max_json_depth: int = Field(
        default=32, ge=4, le=256, description="deepest JSON nesting accepted in a request body"
    )
    max_header_bytes: int = Field(
        default=16384, ge=1024, le=1 << 20, description="request line and headers limit in bytes"
    )
    header_timeout_s: float = Field(
        default=10.0, gt=0, le=3600, description="seconds a client has to send a request's headers (then 408)"
    )
    body_timeout_s: float = Field(
        default=30.0, gt=0, le=3600, description="seconds a client has to send a request's body (then 408)"
    )
    graceful_timeout_s: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description="after SIGTERM, seconds to answer the requests already accepted; what is left then "
        "gets 503 and the command exits 1",
        json_schema_extra=cli(flag="--graceful-timeout", metavar="SECONDS"),
    )
    docs: bool = Field(
        default=False, description="serve /docs and /openapi.json (off: the API is documented in docs/)"
    )


class PackageConfig(BaseModel):
    """Validated options of ``pruneofa package``."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["ovms", "triton", "archive", "folder"] = Field(
        description="ovms or triton repository, a compressed archive, or folder (restore an archive)"
    )
    output: Path | None = Field(
        default=None,
        description="output folder",
        json_schema_extra=cli(default_text="FOLDER-FORMAT beside FOLDER"),
    )
    name: str | None = Field(
        default=None,
        description="model name in the repository, or the archive's file name",
        json_schema_extra=cli(
            default_text="from pruneofa.json: source model, target and precision unless FP32, as pruneofa "
            "serve names it, e.g. all-MiniLM-L6-v2-openvino-int8; else, and for an archive, the folder's name"
        ),
    )
    max_batch_size: int = Field(default=64, ge=1, le=1_000_000, description="Triton max_batch_size")
    sparse_kernels: KernelMode = Field(
        default="auto",
        description="ovms: ship the folder's sparse IR (openvino_model_sparse.xml, from 'pruneofa export "
        "--sparse-ir') as the model, with pruneofa's kernels library in extensions/ and the OVMS setting "
        "that loads it (--cpu_extension): auto (when the folder has a sparse IR), on (require it), off (the "
        "standard IR)",
    )
    overwrite: bool = Field(default=False, description="replace a non-empty output folder")
    skip_outside_links: bool = Field(
        default=False,
        description="leave out links that point outside the folder (default: refuse the folder)",
    )
    sign: Path | None = Field(
        default=None,
        description="sign the archive with this ed25519 private key (PEM), for --verify on restore",
        json_schema_extra=cli(metavar="KEY"),
    )
    verify: Path | None = Field(
        default=None,
        description="restore only an archive signed by the key matching this ed25519 public key (PEM or "
        "OpenSSH)",
        json_schema_extra=cli(metavar="PUBKEY"),
    )
    max_unpacked_bytes: int = Field(
        default=32 << 30,
        ge=1,
        description="restore: refuse an archive whose files add up to more bytes than this",
    )


class OpenConfig(BaseModel):
    """How an exported folder is opened (:func:`pruneofa.deploy.opening.open_folder`): runtime, task,
    compile settings and sparse kernels."""

    model_config = ConfigDict(extra="forbid")

    runtime: str | None = Field(
        default=None,
        description="openvino or onnxruntime (aliases ov, onnx)",
        json_schema_extra=cli(default_text="OpenVINO for an IR folder, ONNX Runtime for an ONNX one"),
    )
    task: str | None = Field(
        default=None,
        description="run the folder as this task (zero-shot-classification: an NLI text-classification "
        "export)",
        json_schema_extra=cli(default_text="the folder's export task"),
    )
    hint: Hint = Field(default=DEFAULT_HINT, description="OpenVINO performance hint")
    precision: Precision = Field(default=DEFAULT_PRECISION, description=PRECISION_HELP)
    threads: int | None = Field(
        default=None, ge=1, description="inference threads (default: chosen for this CPU)"
    )
    streams: int | None = Field(
        default=None, ge=1, description="inference streams (default: chosen for this CPU)"
    )
    sparse_kernels: KernelMode = Field(default="auto", description=SPARSE_KERNELS_HELP)
    static_shapes: StaticShapes = Field(default="sparse", description=STATIC_SHAPES_HELP)


class LoadConfig(OpenConfig):
    """Options of ``deploy.load(folder, **options)``: how the folder is opened, and the pipeline's batch
    size, truncation length and tokenizer."""

    batch_size: int = Field(default=16, ge=1, description="inputs per model call")
    max_length: int | None = Field(
        default=None,
        ge=2,
        description="truncate inputs to this many tokens (at most the model's own maximum)",
    )
    use_openvino_tokenizer: bool = Field(
        default=True,
        description="tokenize with the folder's OpenVINO tokenizer model where the task allows it",
    )


def validate_config(**options: Any) -> ValidateConfig:
    return validated(ValidateConfig, **options)


def benchmark_config(**options: Any) -> BenchmarkConfig:
    return validated(BenchmarkConfig, **options)


def serve_config(**options: Any) -> ServeConfig:
    return validated(ServeConfig, **options)


def package_config(**options: Any) -> PackageConfig:
    return validated(PackageConfig, **options)
