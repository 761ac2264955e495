"""``pruneofa.json``: the manifest every stage writes beside the model it produced.

It records what produced the folder (stage, command, library versions, hashes of the source), the
per-layer sparsity, output parity and later metrics, so that any stage can be run alone on any folder
and a user can tell from the folder itself what it is. The schema is validated when read: a malformed
or unknown manifest is a one-line :class:`~pruneofa.core.errors.InputError`, never a traceback.
"""

from __future__ import annotations

import hashlib
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pruneofa.core.errors import InputError
from pruneofa.core.jsonfile import read_json

MANIFEST_NAME = "pruneofa.json"
MANIFEST_BYTES = 16 << 20  # a manifest with per-tensor records of a large model is a few MB
SCHEMA_VERSION = 1
_TRACKED_LIBRARIES = (
    "pruneofa",
    "torch",
    "transformers",
    "optimum",
    "optimum-intel",
    "openvino",
    "openvino-tokenizers",
    "nncf",
    "onnx",
    "onnxruntime",
    "onnxscript",
)


# How an exported graph stores its weights, and which file format holds it.
WeightFormat = Literal["fp32", "fp16", "int8"]
ExportTarget = Literal["openvino", "onnx"]
# What a training run made.
TrainingKind = Literal["mlm-teacher", "task-teacher", "prune", "finetune", "qat"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceInfo(_Strict):
    """The model a stage read: a local folder (hashed) or a hub id (with the revision it resolved to)."""

    model: str
    model_type: str
    architecture: str | None = None
    revision: str | None = None
    file_sha256: dict[str, str] = Field(default_factory=dict)

    def content_digest(self) -> str | None:
        """One SHA-256 over the folder's weight, config and tokenizer file hashes (None for a hub id):
        what a later stage's lineage records, and what ``validate`` compares a reference folder with."""
        return content_digest(self.file_sha256)


class LineageEntry(_Strict):
    """One earlier stage, copied from the source folder's own manifest."""

    stage: str
    command: list[str]
    created_at: str
    source: str
    source_sha256: str | None = None  # content digest of the folder that stage read (absent: older manifests)


class TensorSparsity(_Strict):
    """Zeros of one weight tensor before export and in the exported graph's constants.

    ``status``: ``matched`` (found in the graph, counted), ``unused`` (no path from this tensor to
    the task's outputs, so the exporter dropped it), ``folded`` (the exporter merged it into another
    constant, so it cannot be read back on its own; only ever allowed for non-Linear tensors).
    """

    name: str
    shape: list[int]
    numel: int
    zeros_before: int
    status: Literal["matched", "unused", "folded"]
    linear: bool = False  # an nn.Linear weight (what pruning targets), as opposed to an embedding
    zeros_after: int | None = None
    extra_zeros: int | None = None
    lost_zeros: int | None = None
    exported_name: str | None = None
    precision: str | None = None  # after INT8 calibration: "int8", or "fp32" where a layer was kept in float


class SparsityReport(_Strict):
    """Per-tensor table plus totals over the matched tensors.

    ``lost_zeros`` counts weights that were zero before export and are non-zero after: it must be 0.
    ``extra_zeros`` counts weights that rounding (FP16/INT8) turned into zeros: allowed, reported.
    """

    weight_format: str
    tensors: list[TensorSparsity]
    linear_numel: int
    linear_zeros_before: int
    linear_zeros_after: int
    total_numel: int
    total_zeros_before: int
    total_zeros_after: int
    extra_zeros: int
    lost_zeros: int
    position_exact: bool
    passed: bool

    @property
    def linear_sparsity_before(self) -> float:
        return self.linear_zeros_before / max(self.linear_numel, 1)

    @property
    def linear_sparsity_after(self) -> float:
        return self.linear_zeros_after / max(self.linear_numel, 1)


class OutputParity(_Strict):
    name: str
    max_abs_error: float
    mean_abs_error: float
    max_rel_error: float
    argmax_agreement: float


class ParityCheck(_Strict):
    """One measure of parity that fits the task (:mod:`pruneofa.core.fidelity`) and the bound it met or missed."""

    measure: str  # e.g. "cosine_min"
    label: str  # e.g. "embedding cosine min"
    value: float
    bound: float | None = None  # the smallest value allowed; None: reported, not gated
    option: str | None = None  # the option that sets the bound, e.g. "--min-cosine"
    passed: bool = True


class ParityReport(_Strict):
    """Exported model vs the PyTorch model it came from (the unshrunk one when ``--shrink`` was used)."""

    reference: str
    samples: int
    atol: float | None  # None: the error is reported, not gated (INT8 vs FP32)
    min_agreement: float
    outputs: list[OutputParity]
    passed: bool
    task: str | None = None  # the export task whose measures were compared (older manifests: absent)
    checks: list[ParityCheck] = Field(default_factory=list)


class ShrinkLayer(_Strict):
    layer: int
    heads_before: int
    heads_after: int
    neurons_before: int
    neurons_after: int


class ShrinkReport(_Strict):
    layers: list[ShrinkLayer]
    params_before: int
    params_after: int


class SparseIRInfo(_Strict):
    """``pruneofa export --sparse-ir``: the extra IR with pruneofa's SparseLinear op, and its checks."""

    file: str
    sparse_layers: int
    linear_layers: int
    formats: dict[str, int]  # format → layers
    kernel_path: str | None  # the ISA whose measured crossover chose the layers (mode auto)
    weights_identical: (
        bool  # every op's constants read back equal the dense IR's weights, position for position
    )
    max_abs_error: float  # outputs against the standard IR on the parity inputs
    # Written by later stages (older manifests lack them; their sparse IRs were FP32, chosen in mode auto):
    precision: Literal["fp32", "int8"] = "fp32"  # the op's weight values (INT8: the calibrated folder's)
    mode: Literal["auto", "on"] = "auto"  # how the layers were chosen (the export's --sparse-kernels)
    activation_quant: dict[str, int] = {}  # INT8 compute: "static" (folded FakeQuantize) / "dynamic" → layers
    # FP32: the bound max_abs_error was held to; INT8: the bound of p99_abs_error (exporter.sparse_ir.int8_bound)
    tolerance: float | None = None
    mean_abs_error: float | None = None  # INT8: mean |difference| from the dense INT8 IR
    p99_abs_error: float | None = None  # INT8: its 99th percentile
    # INT8: FakeQuantize nodes removed in front of attention's MatMuls (the attention runs in FP32, as in
    # the dense INT8 IR the check compared with; pruneofa.kernels.attention); 0: none removed
    attention_fp32: int = 0
    # INT8: layers that took SmoothQuant's per-input factors into the op (input_scale; the Multiply in front
    # of their FakeQuantize folded, pruneofa.kernels.rewrite); 0: none
    smooth_quant_folded: int = 0


class ExportInfo(_Strict):
    target: ExportTarget
    task: str
    opset: int
    weight_format: WeightFormat
    inputs: list[str]
    outputs: list[str]
    files: dict[str, int]
    tokenizer_converted: bool
    tokenizer_note: str | None = None
    wall_time_s: float
    sparse_ir: SparseIRInfo | None = None


class AccuracyControl(_Strict):
    """NNCF's accuracy-controlled quantization: which layers had to stay in floating point."""

    metric: str
    max_drop: float
    fp32_metric: float
    int8_metric: float
    kept_in_float: list[str]
    ptq_metric: float | None = None  # the INT8 model before accuracy control reverted anything
    passed: bool = True  # fp32_metric - int8_metric <= max_drop, measured after accuracy control


class CalibrationInfo(_Strict):
    """How an exported model was quantized to INT8, on which CPU, and with what calibration data."""

    target: ExportTarget
    method: str
    calibration: str | None
    preset: str | None
    per_channel: bool
    saturation_fix: str
    cpu: str
    samples: int  # 0 where no calibration data was read (dynamic quantization)
    seed: int | None = None
    data: str | None = None
    task: str | None = None
    split: str | None = None
    fp32_bytes: int
    int8_bytes: int
    wall_time_s: float
    accuracy_control: AccuracyControl | None = None
    # Methods tried before the kept one, each with why it was not kept (``--method auto``: static QDQ
    # whose parity failed, before dynamic quantization).
    tried: list[str] = Field(default_factory=list)


class TrainingInfo(_Strict):
    """How a training stage ran: its inputs, budget, per-layer sparsity at the end and the loss curve."""

    kind: TrainingKind
    task: str
    data: str
    teacher: str | None = None
    recipe: str | None = None
    steps: int
    batch_size: int
    seq_len: int
    learning_rate: float
    seed: int
    wall_time_s: float
    step_time_s: float
    layer_sparsity: dict[str, float] = Field(default_factory=dict)
    loss_curve: list[dict[str, float]] = Field(default_factory=list)


class QATInfo(_Strict):
    """How NNCF quantization-aware training was set up, and the metric it started from."""

    method: str  # "nncf.quantize (torch, transformer) + fine-tuning"
    preset: str
    saturation_fix: str  # the overflow fix applied and why (this CPU's INT8 instructions)
    cpu: str
    calibration_samples: int
    weight_quantizers: int
    activation_quantizers: int
    transfer_steps: int  # stage 1 (FP32 sparse transfer) steps run by this command; 0 when skipped
    metric_before_qat: dict[str, float] = Field(default_factory=dict)  # FP32 input model
    metric_ptq_only: dict[str, float] = Field(default_factory=dict)  # right after nncf.quantize


class Manifest(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    tool: Literal["pruneofa"] = "pruneofa"
    stage: str
    command: list[str]
    created_at: str
    versions: dict[str, str]
    source: SourceInfo
    lineage: list[LineageEntry] = Field(default_factory=list)
    export: ExportInfo | None = None
    shrink: ShrinkReport | None = None
    sparsity: SparsityReport | None = None
    parity: ParityReport | None = None
    calibration: CalibrationInfo | None = None
    training: TrainingInfo | None = None
    qat: QATInfo | None = None
    metrics: dict[str, float] = Field(default_factory=dict)

    def as_lineage(self) -> LineageEntry:
        return LineageEntry(
            stage=self.stage,
            command=self.command,
            created_at=self.created_at,
            source=self.source.model,
            source_sha256=self.source.content_digest(),
        )

    def ancestry_digests(self) -> set[str]:
        """Content digests of every folder this one descends from (its source and its lineage's sources)."""
        found = {e.source_sha256 for e in self.lineage} | {self.source.content_digest()}
        return {d for d in found if d}


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape a result (read from metadata, nothing imported)."""
    versions = {"python": sys.version.split()[0]}
    for name in _TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def hash_model_files(folder: Path) -> dict[str, str]:
    """Hashes of the files that define a model (weights, config, tokenizer) in a local folder."""
    wanted = (
        "*.safetensors",
        "*.bin",
        "config.json",
        "tokenizer.json",
        "vocab.txt",
        "vocab.json",
        "merges.txt",
    )
    files = sorted({p for pattern in wanted for p in folder.glob(pattern) if p.is_file()})
    return {p.name: sha256_file(p) for p in files}


def content_digest(file_sha256: dict[str, str]) -> str | None:
    """SHA-256 over ``name=hash`` lines of a folder's model files (see :func:`hash_model_files`)."""
    if not file_sha256:
        return None
    lines = "".join(f"{name}={digest}\n" for name, digest in sorted(file_sha256.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def read_manifest(folder: Path) -> Manifest | None:
    """The folder's manifest, ``None`` when it has none; a malformed one is an :class:`InputError`."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return None
    # Bounded (size, nesting depth): a folder from elsewhere may hold any pruneofa.json.
    raw = read_json(path, limit=MANIFEST_BYTES, fix="delete it or re-run the stage that wrote it")
    if not isinstance(raw, dict) or raw.get("tool") != "pruneofa":
        raise InputError(
            f'{path} is not a pruneofa manifest (no "tool": "pruneofa"); move it away or delete it'
        )
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise InputError(
            f"{path} has schema_version {raw.get('schema_version')!r}, this pruneofa reads {SCHEMA_VERSION}; "
            "upgrade pruneofa or re-run the stage that wrote it"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise InputError(
            f"{path} is malformed at {where}: {first['msg']}; delete it or re-run the stage that wrote it"
        ) from err


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    path = Path(folder) / MANIFEST_NAME
    path.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path
