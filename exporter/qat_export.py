"""Export of a quantization-aware-trained model (a :mod:`pruneofa.core.qatfolder` folder) with INT8 weights.

Checked with nncf 3.4 / torch 2.13 / transformers 5.5 (see docs/qat.md): the model with NNCF's
quantizer hooks exports only through TorchScript tracing — ``torch.export``/dynamo stops on data-
dependent guards inside the quantizers — and transformers 5 builds its attention mask in a way that
tracing cannot follow, unless it is handed a ready 4-D additive mask. So the traced module takes the
usual 2-D ``attention_mask`` and turns it into that 4-D mask itself; the graph keeps the standard
input names and dynamic batch and sequence axes.

- OpenVINO: ``openvino.convert_model`` on the QAT model gives FakeQuantize operations;
  ``openvino.save_model`` stores the weights behind them as INT8 constants with their scales.
- ONNX: the model is stripped to PyTorch's own fake quantizers (``StripFormat.NATIVE``, the only strip
  format that worked) and exported with QuantizeLinear/DequantizeLinear; then every QuantizeLinear of
  a constant weight is folded into an INT8 initializer (what ONNX Runtime would compute at load time),
  so the file holds INT8 weights too.

Sparsity is accounted by name: each PyTorch weight is paired with the INT8 constant feeding the same
operation, and zeros are compared position by position (a zero may never become non-zero).
"""

from __future__ import annotations

import contextlib
import copy
import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pruneofa.core.errors import PruneofaError, first_line
from pruneofa.core.manifest import SparsityReport, TensorSparsity
from pruneofa.core.modelio import hf_config
from pruneofa.core.progress import quiet_libraries
from pruneofa.core.support import ArchitectureSpec, ExportTask
from pruneofa.exporter.graph import NamedOutputs, input_names, max_sequence_length
from pruneofa.exporter.int8_weights import StoredWeight, onnx_weights, openvino_weights
from pruneofa.exporter.sparsity import TorchWeight, summarize

_HOOKS = "__nncf_hooks"


def _example(model: nn.Module, names: list[str]) -> tuple[torch.Tensor, ...]:
    config = hf_config(model)
    length = min(16, max_sequence_length(config))
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, int(config.vocab_size), (2, length), generator=generator)
    mask = torch.ones(2, length, dtype=torch.long)
    mask[1, length // 2 :] = 0
    example = [ids, mask]
    if "token_type_ids" in names:
        example.append(torch.zeros(2, length, dtype=torch.long))
    return tuple(example)


@contextlib.contextmanager
def _quiet():
    with torch.no_grad(), quiet_libraries("torch.onnx", "torch.jit", "nncf", capture=True) as chatter:
        yield chatter


def _failure(what: str, err: Exception, chatter: io.StringIO) -> PruneofaError:
    tail = " | ".join(chatter.getvalue().strip().splitlines()[-3:])
    return PruneofaError(
        f"{what} failed: {type(err).__name__}: {first_line(err)} {tail}".strip(), exit_code=1
    )


def export_openvino(model: nn.Module, spec: ArchitectureSpec, task: ExportTask, xml_path: Path) -> None:
    """Trace the QAT model into OpenVINO IR; INT8 weight constants, dynamic batch and sequence."""
    import openvino as ov

    names = input_names(spec)
    wrapper = NamedOutputs(model.eval(), names, task.outputs, additive_mask=True).eval()
    with _quiet() as chatter:
        try:
            converted = ov.convert_model(
                wrapper,
                example_input=_example(model, names),
                input=[(ov.PartialShape([-1, -1]), ov.Type.i64)] * len(names),
            )
        except Exception as err:  # the converter raises many types; none of them is the user's fault
            raise _failure("openvino.convert_model of the QAT model", err, chatter) from err
    for port, name in zip(converted.inputs, names, strict=True):
        port.get_tensor().set_names({name})
    for port, name in zip(converted.outputs, task.outputs, strict=True):
        port.get_tensor().set_names({name})
    ov.save_model(converted, str(xml_path), compress_to_fp16=False)


def export_onnx(
    model: nn.Module, spec: ArchitectureSpec, task: ExportTask, path: Path, *, opset: int
) -> None:
    """Strip to PyTorch fake quantizers, trace to ONNX QDQ, fold weight quantization into INT8 initializers."""
    import nncf
    from nncf.parameters import StripFormat

    names = input_names(spec)
    example = _example(model, names)
    with _quiet() as chatter:
        try:
            stripped = nncf.strip(
                copy.deepcopy(model).eval(),
                do_copy=False,
                strip_format=StripFormat.NATIVE,
                example_input=dict(zip(names, example, strict=True)),
            )
            torch.onnx.export(
                NamedOutputs(stripped, names, task.outputs, additive_mask=True).eval(),
                example,
                str(path),
                dynamo=False,
                input_names=names,
                output_names=list(task.outputs),
                dynamic_axes={name: {0: "batch", 1: "sequence"} for name in names},
                opset_version=min(opset, 21),
            )
        except Exception as err:
            raise _failure("ONNX export (TorchScript) of the QAT model", err, chatter) from err
    fold_weight_quantization(path)


def fold_weight_quantization(path: Path) -> int:
    """Replace ``QuantizeLinear(constant weight)`` by an INT8 initializer; returns how many were folded.

    Names follow ONNX Runtime's convention (``<weight>_quantized``, ``_scale``, ``_zero_point``), so the
    same reader serves QAT and post-training INT8 files. The float weights are dropped.
    """
    import onnx
    from onnx import numpy_helper

    from pruneofa.exporter.sparsity import onnx_arrays

    model = onnx.load(str(path))
    graph = model.graph
    arrays = onnx_arrays(graph)
    initializers = {init.name for init in graph.initializer}
    consumers: dict[str, list] = {}
    producers = {output: node for node in graph.node for output in node.output}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def constant(name: str) -> np.ndarray | None:
        """The value of ``name`` where it is a constant, looking through ``Identity`` (shared constants)."""
        while name not in arrays and name in producers and producers[name].op_type == "Identity":
            name = producers[name].input[0]
        return arrays.get(name)

    folded, drop_nodes, new_inits = 0, [], []
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] not in initializers:
            continue
        weight = arrays[node.input[0]].astype(np.float32)
        scale = constant(node.input[1])
        zero_point = constant(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if scale is None or (len(node.input) > 2 and node.input[2] and zero_point is None):
            continue  # not a constant quantization: left as it is (the accounting reports a float weight)
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        dtype = zero_point.dtype if zero_point is not None else np.uint8
        info = np.iinfo(dtype)
        shape = [1] * weight.ndim
        if scale.size > 1:
            shape[axis] = scale.size
        zp = (
            np.zeros(1, np.float32)
            if zero_point is None
            else zero_point.astype(np.float32).reshape(shape if zero_point.size > 1 else [1])
        )
        q = np.clip(
            np.rint(weight / scale.astype(np.float32).reshape(shape if scale.size > 1 else [1])) + zp,
            info.min,
            info.max,
        )
        base = node.input[0]
        new_inits += [
            numpy_helper.from_array(q.astype(dtype), f"{base}_quantized"),
            numpy_helper.from_array(scale, f"{base}_scale"),
            numpy_helper.from_array(
                zero_point if zero_point is not None else np.zeros(scale.shape, dtype), f"{base}_zero_point"
            ),
        ]
        for dq in consumers.get(node.output[0], []):
            if dq.op_type != "DequantizeLinear":
                raise PruneofaError(
                    f"QuantizeLinear of {base} feeds {dq.op_type}, not DequantizeLinear", exit_code=1
                )
            dq.input[0], dq.input[1] = f"{base}_quantized", f"{base}_scale"
            if len(dq.input) > 2:
                dq.input[2] = f"{base}_zero_point"
            else:
                dq.input.append(f"{base}_zero_point")
        drop_nodes.append(node)
        folded += 1
    for node in drop_nodes:
        graph.node.remove(node)
    graph.initializer.extend(new_inits)
    used = {name for node in graph.node for name in node.input}
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return folded


# OpenVINO names operations after the traced module path: "__module.model.<module>/aten::linear/MatMul".
OV_CONSUMER = re.compile(r"^__module\.model\.(?P<module>[\w.]+)/aten::(?P<op>linear|embedding|matmul)")


def stored_int8_weights(target: str, model_file: Path) -> dict[str, StoredWeight]:
    """INT8 (dequantized) and float weight matrices of an exported QAT model, keyed by PyTorch name."""
    if target == "onnx":
        return {name.removeprefix("model."): weight for name, weight in onnx_weights(model_file).items()}
    _, by_key = openvino_weights(model_file)
    found: dict[str, StoredWeight] = {}
    for (consumer, _port), weight in by_key.items():
        match = OV_CONSUMER.match(consumer)
        if match and weight.values.ndim >= 2:
            name = f"{match['module']}.weight"
            if name not in found or found[name].precision != "int8":
                found[name] = weight
    return found


def qat_weights(weights: list[TorchWeight]) -> list[TorchWeight]:
    """The model's own weight matrices (NNCF's per-channel scales are parameters too: left out)."""
    return [w for w in weights if _HOOKS not in w.name]


def account_int8_by_name(
    weights: list[TorchWeight], stored: dict[str, StoredWeight]
) -> tuple[SparsityReport, list[str]]:
    """Pair each PyTorch weight with its stored INT8 weight by name; compare zeros position by position."""
    rows, problems = [], []
    for weight in weights:
        original = weight.values
        row: dict[str, Any] = dict(
            linear=weight.is_linear,
            name=weight.name,
            shape=list(original.shape),
            numel=int(original.size),
            zeros_before=int((original == 0).sum()),
        )
        found = stored.get(weight.name)
        values = None if found is None else _aligned(found.values, original.shape)
        if found is None or values is None:
            if weight.used and weight.is_linear:
                problems.append(f"Linear weight {weight.name} was not found in the exported graph")
            rows.append(TensorSparsity(status="folded" if weight.used else "unused", **row))
            continue
        before, after = original == 0, values == 0
        rows.append(
            TensorSparsity(
                status="matched",
                zeros_after=int(after.sum()),
                extra_zeros=int((after & ~before).sum()),
                lost_zeros=int((before & ~after).sum()),
                exported_name=found.name,
                precision=found.precision,
                **row,
            )
        )
    in_float = [r.name for r in rows if r.linear and r.status == "matched" and r.precision != "int8"]
    if in_float:
        problems.append(f"{len(in_float)} Linear weights were not stored as INT8 (e.g. {in_float[0]})")
    report = summarize(
        rows,
        "int8",
        problems,
        lost_message="{lost} weights that were zero in the QAT model are non-zero in the INT8 export",
    )
    return report, problems


def _aligned(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    if values.shape == tuple(shape):
        return values
    if values.ndim == 2 and values.T.shape == tuple(shape):
        return values.T
    return None
