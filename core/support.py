"""What pruneofa supports, in one place: architectures, export tasks and targets.

This module imports nothing heavy so that ``pruneofa export --help`` can print the table at once.
Everything that differs between architectures (where the layers are, which inputs the model takes)
is data here, looked up by ``config.model_type``, instead of ``if model_type == ...`` chains.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArchitectureSpec:
    """How to find the prunable parts of one architecture (paths are dotted attribute paths).

    ``layers`` is relative to ``model.base_model``; the other paths are relative to one layer.
    """

    model_type: str
    label: str
    uses_token_type_ids: bool
    layers: str
    query: str
    key: str
    value: str
    attention_output: str
    ffn_in: str
    ffn_out: str
    num_heads_attr: str

    def linear_paths(self) -> tuple[str, ...]:
        return (self.query, self.key, self.value, self.attention_output, self.ffn_in, self.ffn_out)


_BERT_LAYOUT = dict(
    layers="encoder.layer",
    query="attention.self.query",
    key="attention.self.key",
    value="attention.self.value",
    attention_output="attention.output.dense",
    ffn_in="intermediate.dense",
    ffn_out="output.dense",
    num_heads_attr="num_attention_heads",
)

ARCHITECTURES: dict[str, ArchitectureSpec] = {
    spec.model_type: spec
    for spec in (
        ArchitectureSpec("bert", "BERT (and MiniLM-style BERT, e.g. all-MiniLM-L6-v2)", True, **_BERT_LAYOUT),
        ArchitectureSpec("roberta", "RoBERTa", False, **_BERT_LAYOUT),
        ArchitectureSpec("xlm-roberta", "XLM-RoBERTa", False, **_BERT_LAYOUT),
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
    )
}


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

TARGETS: tuple[str, ...] = ("openvino", "onnx")

# The dynamo-based torch.onnx exporter emits opset 18 and newer; older opsets would need a lossy
# down-conversion, so they are refused rather than attempted.
MIN_OPSET = 18
DEFAULT_OPSET = 18


def task_from_architecture(architecture: str) -> str | None:
    """The export task an ``architectures`` entry (e.g. ``BertForMaskedLM``) was trained for."""
    for task in EXPORT_TASKS.values():
        if task.name == "feature-extraction":
            continue
        if any(architecture.endswith(suffix) for suffix in task.architecture_suffixes):
            return task.name
    if architecture.endswith("Model"):
        return "feature-extraction"
    return None


def support_table() -> str:
    """The Markdown-ish table printed by ``pruneofa export --help`` and copied into docs/."""
    lines = ["Supported architectures (config.model_type):"]
    for spec in ARCHITECTURES.values():
        token_types = "input_ids, attention_mask" + (", token_type_ids" if spec.uses_token_type_ids else "")
        lines.append(f"  {spec.model_type:<12} {spec.label}; inputs: {token_types}")
    lines.append("Tasks (outputs; optimum-intel class that loads the OpenVINO folder):")
    for task in EXPORT_TASKS.values():
        lines.append(f"  {task.name:<21} {', '.join(task.outputs):<26} {task.optimum_ov_class}")
    lines.append("Targets: " + ", ".join(TARGETS) + f"; ONNX opset >= {MIN_OPSET} (default {DEFAULT_OPSET})")
    return "\n".join(lines)
