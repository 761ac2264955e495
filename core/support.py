"""What pruneofa supports, in one place: architectures, export tasks and targets.

This module imports nothing heavy so that ``pruneofa export --help`` can print the table at once.
Everything that differs between architectures (where the layers are, which inputs the model takes)
is data here, looked up by ``config.model_type``, instead of ``if model_type == ...`` chains.

The architectures are the encoder-only text families that optimum-intel's OpenVINO exporter registers
for the export tasks below (its ``TasksManager`` entries whose config class is a text encoder), so that
every folder pruneofa writes loads in ``OVModelFor<Task>``. The table is written out rather than read
from optimum-intel at run time (that import takes seconds); ``tests/exporter/test_families.py`` compares
it with the installed optimum-intel's registry and fails, naming the family, when the two differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ExportTask:
    """One export task: the transformers class that loads it, its outputs, and optimum's class."""

    name: str
    auto_class: str
    outputs: tuple[str, ...]
    architecture_suffixes: tuple[str, ...]
    optimum_ov_class: str
    optimum_ort_class: str
    per_token: bool


EXPORT_TASKS: dict[str, ExportTask] = {
    task.name: task
    for task in (
        ExportTask(
            "text-classification",
            "AutoModelForSequenceClassification",
            ("logits",),
            ("ForSequenceClassification",),
            "OVModelForSequenceClassification",
            "ORTModelForSequenceClassification",
            per_token=False,
        ),
        ExportTask(
            "question-answering",
            "AutoModelForQuestionAnswering",
            ("start_logits", "end_logits"),
            ("ForQuestionAnswering",),
            "OVModelForQuestionAnswering",
            "ORTModelForQuestionAnswering",
            per_token=True,
        ),
        ExportTask(
            "token-classification",
            "AutoModelForTokenClassification",
            ("logits",),
            ("ForTokenClassification",),
            "OVModelForTokenClassification",
            "ORTModelForTokenClassification",
            per_token=True,
        ),
        ExportTask(
            "fill-mask",
            "AutoModelForMaskedLM",
            ("logits",),
            ("ForMaskedLM", "ForPreTraining"),
            "OVModelForMaskedLM",
            "ORTModelForMaskedLM",
            per_token=True,
        ),
        ExportTask(
            "feature-extraction",
            "AutoModel",
            ("last_hidden_state",),
            ("Model",),
            "OVModelForFeatureExtraction",
            "ORTModelForFeatureExtraction",
            per_token=True,
        ),
    )
}

ALL_TASKS: tuple[str, ...] = tuple(EXPORT_TASKS)


@dataclass(frozen=True)
class LayerLayout:
    """Where a family keeps its encoder layers and, inside one layer, its six Linear projections."""

    layers: str
    query: str
    key: str
    value: str
    attention_output: str
    ffn_in: str
    ffn_out: str


@dataclass(frozen=True)
class ArchitectureSpec:
    """One architecture: its inputs, tasks, and where its prunable parts are (dotted attribute paths).

    ``layers`` is relative to ``model.base_model``; the other paths are relative to one layer. A family
    whose layers do not fit these fields (shared, fused, convolutional or bottleneck layers) has no
    layout (``layers is None``) and says why in ``no_layout``: it exports, calibrates and validates, but
    ``prune`` and ``export --shrink`` refuse it.
    """

    model_type: str
    label: str
    uses_token_type_ids: bool
    layers: str | None = None
    query: str | None = None
    key: str | None = None
    value: str | None = None
    attention_output: str | None = None
    ffn_in: str | None = None
    ffn_out: str | None = None
    num_heads_attr: str = "num_attention_heads"
    tasks: tuple[str, ...] = ALL_TASKS
    # token_type_ids only when the config has token type embeddings (type_vocab_size > 0), as optimum-intel
    token_types_need_vocab: bool = False
    # position ids start after pad_token_id (RoBERTa-style), which shortens the longest input by pad + 1
    positions_after_pad: bool = False
    no_layout: str | None = None

    @property
    def prunable(self) -> bool:
        """Whether ``prune`` (structured patterns) and ``export --shrink`` know this family's layers."""
        return self.layers is not None

    def layout(self) -> LayerLayout:
        """The module paths of this family's layers (``ValueError`` where it has no layout)."""
        paths = (
            self.layers,
            self.query,
            self.key,
            self.value,
            self.attention_output,
            self.ffn_in,
            self.ffn_out,
        )
        if self.layers is None:
            raise ValueError(f"{self.model_type} has no layer layout: {self.no_layout}")
        if any(path is None for path in paths):
            raise ValueError(f"{self.model_type} declares layers but not every Linear path of a layer")
        return LayerLayout(*(str(path) for path in paths))

    def linear_paths(self) -> tuple[str, ...]:
        layout = self.layout()
        return (
            layout.query,
            layout.key,
            layout.value,
            layout.attention_output,
            layout.ffn_in,
            layout.ffn_out,
        )

    def takes_token_type_ids(self, config: Any = None) -> bool:
        """Whether the exported graph takes ``token_type_ids`` (for ``config`` when given)."""
        if not self.uses_token_type_ids:
            return False
        if self.token_types_need_vocab and config is not None:
            return int(getattr(config, "type_vocab_size", 0) or 0) > 0
        return True


_BERT_LAYOUT: dict[str, Any] = dict(
    layers="encoder.layer",
    query="attention.self.query",
    key="attention.self.key",
    value="attention.self.value",
    attention_output="attention.output.dense",
    ffn_in="intermediate.dense",
    ffn_out="output.dense",
)
_ROBERTA_LIKE: dict[str, Any] = dict(_BERT_LAYOUT, positions_after_pad=True)

ARCHITECTURES: dict[str, ArchitectureSpec] = {
    spec.model_type: spec
    for spec in (
        ArchitectureSpec("bert", "BERT (and MiniLM-style BERT, e.g. all-MiniLM-L6-v2)", True, **_BERT_LAYOUT),
        ArchitectureSpec("roberta", "RoBERTa", False, **_ROBERTA_LIKE),
        ArchitectureSpec("xlm-roberta", "XLM-RoBERTa", False, **_ROBERTA_LIKE),
        ArchitectureSpec("camembert", "CamemBERT", False, **_ROBERTA_LIKE),
        ArchitectureSpec(
            "distilbert",
            "DistilBERT",
            False,
            layers="transformer.layer",
            query="attention.q_lin",
            key="attention.k_lin",
            value="attention.v_lin",
            attention_output="attention.out_lin",
            ffn_in="ffn.lin1",
            ffn_out="ffn.lin2",
            num_heads_attr="n_heads",
        ),
        ArchitectureSpec("electra", "ELECTRA", True, **_BERT_LAYOUT),
        ArchitectureSpec("roformer", "RoFormer (rotary positions)", True, **_BERT_LAYOUT),
        ArchitectureSpec("rembert", "RemBERT", True, **_BERT_LAYOUT),
        ArchitectureSpec(
            "esm",
            "ESM (protein language model)",
            False,
            tasks=("text-classification", "token-classification", "fill-mask", "feature-extraction"),
            positions_after_pad=True,
            no_layout="its feed-forward activation is a plain function, so dead neurons cannot be folded",
        ),
        ArchitectureSpec(
            "albert", "ALBERT", True, no_layout="one set of layer weights is shared by every layer"
        ),
        ArchitectureSpec(
            "convbert",
            "ConvBERT",
            True,
            no_layout="attention mixes heads with span-based convolutions",
        ),
        ArchitectureSpec(
            "deberta",
            "DeBERTa",
            True,
            token_types_need_vocab=True,
            no_layout="query, key and value are one fused projection",
        ),
        ArchitectureSpec(
            "deberta-v2",
            "DeBERTa-v2/v3",
            True,
            token_types_need_vocab=True,
            no_layout="its relative-position attention may have per-head projections of its own",
        ),
        ArchitectureSpec(
            "ibert",
            "I-BERT",
            False,
            positions_after_pad=True,
            no_layout="its layers are QuantLinear modules, not torch Linear",
        ),
        ArchitectureSpec(
            "mobilebert",
            "MobileBERT",
            True,
            no_layout="bottleneck layers with several feed-forward blocks each",
        ),
        ArchitectureSpec(
            "mpnet",
            "MPNet",
            False,
            positions_after_pad=True,
            no_layout="a relative-position bias shared by all layers fixes the head count",
        ),
        ArchitectureSpec(
            "squeezebert", "SqueezeBERT", True, no_layout="its projections are grouped 1-D convolutions"
        ),
    )
}


def prunable_architectures() -> list[str]:
    """The families ``prune`` and ``export --shrink`` support (those with a layer layout)."""
    return [name for name, spec in ARCHITECTURES.items() if spec.prunable]


TARGETS: tuple[str, ...] = ("openvino", "onnx")

# The dynamo-based torch.onnx exporter emits opset 18 and newer; older opsets would need a lossy
# down-conversion, so they are refused rather than attempted.
MIN_OPSET = 18
DEFAULT_OPSET = 18


# Heads whose class name looks like a task's but is not one: ELECTRA's pre-training head is the
# replaced-token discriminator (one logit per token), not a masked-LM head.
NOT_TASK_HEADS: tuple[str, ...] = ("ElectraForPreTraining",)


def task_from_architecture(architecture: str) -> str | None:
    """The export task an ``architectures`` entry (e.g. ``BertForMaskedLM``) was trained for."""
    if architecture in NOT_TASK_HEADS:
        return None
    for task in EXPORT_TASKS.values():
        if task.name == "feature-extraction":
            continue
        if any(architecture.endswith(suffix) for suffix in task.architecture_suffixes):
            return task.name
    if architecture.endswith("Model"):
        return "feature-extraction"
    return None


def support_table() -> str:
    """The table printed by ``pruneofa export --help`` (docs/export.md holds the same in Markdown)."""
    lines = [
        "Supported architectures (config.model_type; tasks; inputs besides input_ids and attention_mask;",
        "'prune' marks the families 'pruneofa prune' and 'export --shrink' support):",
    ]
    for spec in ARCHITECTURES.values():
        tasks = "all tasks" if spec.tasks == ALL_TASKS else ", ".join(spec.tasks)
        token_types = "token_type_ids" if spec.uses_token_type_ids else "-"
        if spec.token_types_need_vocab:
            token_types += " (if type_vocab_size > 0)"
        prune = "prune" if spec.prunable else "-"
        lines.append(f"  {spec.model_type:<12} {prune:<6} {spec.label}; {tasks}; {token_types}")
    lines.append("Tasks (outputs; optimum-intel class that loads the OpenVINO folder):")
    for task in EXPORT_TASKS.values():
        lines.append(f"  {task.name:<21} {', '.join(task.outputs):<26} {task.optimum_ov_class}")
    lines.append("Targets: " + ", ".join(TARGETS) + f"; ONNX opset >= {MIN_OPSET} (default {DEFAULT_OPSET})")
    return "\n".join(lines)
