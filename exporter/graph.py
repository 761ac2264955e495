"""torch → ONNX → OpenVINO IR, with the input/output names optimum's model classes expect.

ONNX goes through PyTorch's own dynamo exporter (``torch.onnx.export(dynamo=True)``), which handles
transformers 5's mask construction with dynamic batch and sequence axes (the TorchScript paths fail
inside ``masking_utils`` there; see shared/TOOLCHAIN.md). The OpenVINO IR is converted from that ONNX
file by ``openvino.convert_model``, so both targets come from one traced graph, and a shrunk model
(whose per-layer shapes transformers cannot describe in a config) exports the same way.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pruneofa.core.errors import PruneofaError, first_line
from pruneofa.core.modelio import hf_config
from pruneofa.core.progress import quiet_libraries
from pruneofa.core.runtime import OPENVINO_TOKENIZER_XML
from pruneofa.core.support import ARCHITECTURES, ArchitectureSpec, ExportTask


def input_names(spec: ArchitectureSpec, config: Any = None) -> list[str]:
    """The graph's inputs, in order; with ``config``, exactly those of that checkpoint (DeBERTa without
    token type embeddings takes no ``token_type_ids``), without it the family's widest set."""
    names = ["input_ids", "attention_mask"]
    if spec.takes_token_type_ids(config):
        names.append("token_type_ids")
    return names


class NamedOutputs(nn.Module):
    """Positional inputs in a fixed order in, the task's outputs as a tuple out (for tracing).

    ``additive_mask``: hand the model a ready 4-D additive attention mask made from the 2-D padding
    mask, so that transformers 5 skips its own mask construction, which TorchScript tracing cannot
    follow (the graph still takes the usual 2-D ``attention_mask``).
    """

    def __init__(
        self, model: nn.Module, inputs: list[str], outputs: tuple[str, ...], *, additive_mask: bool = False
    ) -> None:
        super().__init__()
        self.model = model
        self._inputs = inputs
        self._outputs = outputs
        self._additive_mask = additive_mask

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        if self._additive_mask:
            attention_mask = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * torch.finfo(
                torch.float32
            ).min
        given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        result = self.model(**{name: given[name] for name in self._inputs}, return_dict=True)
        return tuple(result[name] for name in self._outputs)


def max_sequence_length(config: Any) -> int:
    """Longest input the position embeddings allow (RoBERTa-style models offset positions by pad+1)."""
    limit = int(getattr(config, "max_position_embeddings", 512))
    spec = ARCHITECTURES.get(getattr(config, "model_type", ""))
    if spec is not None and spec.positions_after_pad:
        limit -= int(getattr(config, "pad_token_id", 1) or 0) + 1
    return limit


def export_onnx(
    model: nn.Module, spec: ArchitectureSpec, task: ExportTask, path: Path, *, opset: int
) -> None:
    """Export ``model`` to a single ONNX file with dynamic ``batch`` and ``sequence`` axes."""
    config = hf_config(model)
    names = input_names(spec, config)
    batch = torch.export.Dim("batch", min=1, max=4096)
    sequence = torch.export.Dim("sequence", min=1, max=max_sequence_length(config))
    example_len = min(16, max_sequence_length(config))
    vocab = int(config.vocab_size)
    generator = torch.Generator().manual_seed(0)
    example = [
        torch.randint(0, vocab, (2, example_len), generator=generator),
        torch.ones(2, example_len, dtype=torch.long),
    ]
    example[1][1, example_len // 2 :] = 0
    if "token_type_ids" in names:
        example.append(torch.zeros(2, example_len, dtype=torch.long))
    wrapper = NamedOutputs(model, names, task.outputs).eval()
    chatter = io.StringIO()
    try:
        with (
            torch.no_grad(),
            contextlib.redirect_stdout(chatter),
            warnings.catch_warnings(),
            quiet_libraries("torch.onnx", "torch.export", "torch._dynamo", "onnxscript"),
        ):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                tuple(example),
                str(path),
                dynamo=True,
                input_names=names,
                output_names=list(task.outputs),
                opset_version=opset,
                dynamic_shapes={name: {0: batch, 1: sequence} for name in names},
                external_data=False,
            )
    except Exception as err:  # the exporter raises many types; none of them is the user's fault
        log = chatter.getvalue().strip().splitlines()[-5:]
        raise PruneofaError(
            f"torch.onnx.export failed for {type(model).__name__} at opset {opset}: {type(err).__name__}: "
            f"{first_line(err)} {' | '.join(log)}",
            exit_code=1,
        ) from err


def convert_to_openvino(onnx_path: Path, xml_path: Path, *, weight_format: str) -> None:
    """ONNX → OpenVINO IR; ``fp16`` stores weights in half precision (OpenVINO's own default)."""
    import openvino as ov

    ov_model = ov.convert_model(str(onnx_path))
    ov.save_model(ov_model, str(xml_path), compress_to_fp16=weight_format == "fp16")


def convert_tokenizer(tokenizer: Any, folder: Path, *, pair_input: bool) -> tuple[bool, str | None]:
    """Write ``openvino_tokenizer.xml/.bin`` so a deployment can take raw strings; say why when not."""
    try:
        import openvino as ov
        from openvino_tokenizers import convert_tokenizer as ov_convert_tokenizer

        ov_tokenizer = ov_convert_tokenizer(tokenizer, number_of_inputs=2 if pair_input else 1)
        ov.save_model(ov_tokenizer, str(folder / OPENVINO_TOKENIZER_XML))
    except Exception as err:  # openvino-tokenizers raises a variety of errors for unsupported tokenizers
        message = first_line(err)
        return False, f"openvino-tokenizers could not convert {type(tokenizer).__name__}: {message}"
    return True, None
