"""An exported folder as an OpenVINO Model Server or Triton model repository.

Both servers load the repository as it is, from the directory given to ``--model_repository`` /
``--config_path``:

* ``ovms``: ``config.json`` (``model_config_list`` with the model's name, its base path relative to the
  config file, CPU, dynamic ``shape`` for every input) and ``NAME/1/model.xml|bin`` (or ``model.onnx``).
* ``triton``: ``NAME/config.pbtxt`` (backend ``openvino`` for an IR folder, ``onnxruntime`` for ONNX;
  ``max_batch_size`` with the batch axis left out of ``dims``, the sequence axis ``-1``, dynamic batching,
  CPU instances) and ``NAME/1/model.xml|bin`` or ``NAME/1/model.onnx``. Triton's OpenVINO backend runs the
  standard IR: it cannot load pruneofa's kernels, so a sparse IR is never put in a Triton repository.

Both carry ``tokenizer/`` (the Hugging Face tokenizer files and config, and the OpenVINO tokenizer model
where the folder has one) so that a client can turn text into the ``input_ids`` the servers expect: at the
top of an OVMS repository (OVMS serves only what config.json lists), inside ``NAME/`` in a Triton one
(Triton loads every top-level folder as a model, and ignores a model folder's entries that are not
numbered versions), with the run's ``pruneofa.json`` beside it. NAME is
the one ``pruneofa serve`` gives the model (:func:`pruneofa.deploy.naming.default_model_name`: source
model, target, precision). An OVMS repository of a sparse IR also ships the kernels (:mod:`.sparse_ir`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from pruneofa.core.errors import InputError, last_line
from pruneofa.core.runtime import OPENVINO_SPARSE_XML, OPENVINO_TOKENIZER_XML
from pruneofa.deploy.packaging.ir_checks import probe
from pruneofa.deploy.packaging.sparse_ir import EXTENSIONS_DIR, OVMS_MOUNT, SparseIR, ship_kernels

_TOKENIZER_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    OPENVINO_TOKENIZER_XML,
    "openvino_tokenizer.bin",
)
_TRITON_TYPES = {"i64": "TYPE_INT64", "i32": "TYPE_INT32", "f32": "TYPE_FP32", "f16": "TYPE_FP16"}


def _signature(model_path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Inputs and outputs of a model file: name, element type, shape with -1 for dynamic axes."""
    import openvino as ov

    try:
        model = ov.Core().read_model(str(model_path))
    except RuntimeError as err:
        raise InputError(
            f"{model_path} cannot be read by OpenVINO ({last_line(err)}); re-run the stage that wrote the "
            "folder (pruneofa export / calibrate)"
        ) from None

    def describe(ports) -> list[dict[str, Any]]:
        rows = []
        for port in ports:
            shape = [d.get_length() if d.is_static else -1 for d in port.get_partial_shape()]
            rows.append(
                {"name": port.get_any_name(), "type": port.get_element_type().get_type_name(), "shape": shape}
            )
        return rows

    return describe(model.inputs), describe(model.outputs)


def _copy_tokenizer(files: dict[str, Path], target: Path) -> list[str]:
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in _TOKENIZER_FILES:
        if name in files:
            shutil.copyfile(files[name], target / name)
            copied.append(name)
    return copied


def ovms_config(name: str, inputs: list[dict[str, Any]], *, f32: bool = False) -> dict[str, Any]:
    """``config.json``; ``f32``: FP32 inference precision (the sparse op takes FP32 activations, and a CPU
    with bf16 or AMX would otherwise run the rest of the model in bf16)."""
    shape = {i["name"]: "(" + ",".join(str(d) for d in i["shape"]) + ")" for i in inputs}
    plugin_config = {"PERFORMANCE_HINT": "THROUGHPUT"}
    if f32:
        plugin_config["INFERENCE_PRECISION_HINT"] = "f32"
    return {
        "model_config_list": [
            {
                "config": {
                    "name": name,
                    "base_path": name,
                    "target_device": "CPU",
                    "shape": shape,
                    "plugin_config": plugin_config,
                }
            }
        ]
    }


def triton_config(
    name: str, backend: str, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]], max_batch: int
) -> str:
    """``config.pbtxt``: the model's tensors with the batch axis implied, dynamic batching, CPU instances."""

    def tensor(row: dict[str, Any]) -> str:
        data_type = _TRITON_TYPES.get(row["type"])
        if data_type is None:
            raise InputError(
                f"tensor {row['name']} has type {row['type']}, which this Triton layout does not map"
            )
        dims = ", ".join(str(d) for d in row["shape"][1:])  # the batch axis is implied by max_batch_size
        return f'  {{\n    name: "{row["name"]}"\n    data_type: {data_type}\n    dims: [ {dims} ]\n  }}'

    return (
        f'name: "{name}"\n'
        f'backend: "{backend}"\n'
        f"max_batch_size: {max_batch}\n"
        "input [\n" + ",\n".join(tensor(i) for i in inputs) + "\n]\n"
        "output [\n" + ",\n".join(tensor(o) for o in outputs) + "\n]\n"
        "dynamic_batching {\n  max_queue_delay_microseconds: 2000\n}\n"
        "instance_group [\n  {\n    count: 1\n    kind: KIND_CPU\n  }\n]\n"
    )


def _release(version: str) -> str:
    """``2026.4.1`` of OpenVINO's ``2026.4.1-22982-e213a147257-releases/2026/4``."""
    return version.split("-", 1)[0]


def ovms_readme(name: str, record: dict[str, Any] | None) -> str:
    """How to start OpenVINO Model Server on the repository, and the URL of the model it serves."""
    if record:  # OVMS images are tagged by release (2026.4 carries OpenVINO 2026.4.x): the library's
        image = "openvino/model_server:" + ".".join(_release(record["openvino_version"]).split(".")[:2])
        extension = f" \\\n    {record['ovms_argument']}"
    else:
        image, extension = "openvino/model_server:latest", ""
    lines = [
        f"# OpenVINO Model Server repository: {name}",
        "",
        "```bash",
        f"docker run --rm -v $PWD:{OVMS_MOUNT}:ro -p 9000:9000 {image} \\",
        f"    --config_path {OVMS_MOUNT}/config.json --rest_port 9000{extension}",
        "```",
        "",
        f"KServe v2 REST: `POST localhost:9000/v2/models/{name}/infer` with the token tensors "
        "(`input_ids`, `attention_mask`, ...) that `tokenizer/` makes; `pruneofa serve` of the same folder "
        "serves the model under the same name and takes text.",
    ]
    if record:
        lines += [
            "",
            f"`{name}/1/model.xml` is the folder's sparse IR: its Linear layers are pruneofa's "
            f"{' and '.join(f'`{op}`' for op in record['operations'])} operations, defined by `{EXTENSIONS_DIR}/{record['library']}`, which OVMS "
            f"loads with `{record['ovms_argument'].split()[0]}` (a server setting, not part of config.json).",
            "",
            f"**The library was built against OpenVINO {_release(record['openvino_version'])} "
            f"({record['openvino_version']}) and must match the OpenVINO inside the OVMS image** (its ABI and "
            "`libopenvino.so` version; the image's `/ovms/bin/ovms --version` prints it): use the image of "
            "that release, or rebuild the library inside the image with `python -m pruneofa.kernels.build` (or "
            "CMake, docs/kernels.md) and replace the file. Without the extension OVMS cannot read this model; "
            "package with `--sparse-kernels off` for the standard IR.",
        ]
    return "\n".join(lines) + "\n"


def write_repository(
    files: dict[str, Path],
    staging: Path,
    format: str,
    name: str,
    kind: str,
    model_files: list[Path],
    max_batch: int,
    sparse: SparseIR | None = None,
) -> dict[str, Any]:
    """The ``ovms`` or ``triton`` repository of the model in ``staging``; returns the run's summary."""
    version = staging / name / "1"
    version.mkdir(parents=True)
    record, probed = None, None
    shipped = f"{name}/1/model.xml"
    if sparse is not None:
        shutil.copyfile(sparse.files[0], version / "model.xml")
        shutil.copyfile(sparse.files[1], version / "model.bin")
        record = ship_kernels(staging, sparse)
        probed = probe(
            version / "model.xml",
            library=staging / EXTENSIONS_DIR / record["library"],
            reference=model_files[0] if kind == "openvino" else None,
            shipped_as=f"{sparse.files[0]} (packaged as {shipped})",
        )
    elif kind == "openvino":
        shutil.copyfile(model_files[0], version / "model.xml")
        shutil.copyfile(model_files[1], version / "model.bin")
        probed = probe(
            version / "model.xml",
            library=None,
            reference=None,
            shipped_as=f"{model_files[0]} (packaged as {shipped})",
        )
    else:
        shutil.copyfile(model_files[0], version / "model.onnx")
    inputs, outputs = _signature(model_files[0])  # the standard model: the same inputs and outputs
    if format == "ovms":
        (staging / "config.json").write_text(
            json.dumps(ovms_config(name, inputs, f32=sparse is not None), indent=2) + "\n", encoding="utf-8"
        )
        (staging / "README.md").write_text(ovms_readme(name, record), encoding="utf-8")
    else:
        backend = "openvino" if kind == "openvino" else "onnxruntime"
        (staging / name / "config.pbtxt").write_text(
            triton_config(name, backend, inputs, outputs, max_batch), encoding="utf-8"
        )
    # Triton treats every top-level folder as a model and ignores a model folder's non-numeric entries
    tokenizer = _copy_tokenizer(files, (staging / name if format == "triton" else staging) / "tokenizer")
    summary: dict[str, Any] = {
        "model_name": name,
        "model_bytes": sum(p.stat().st_size for p in version.iterdir()),
        "tokenizer_files": len(tokenizer),
    }
    if probed is not None:
        summary["probe_outputs"] = len(probed["outputs"])
        summary["probe_sparse_weights_compared"] = probed["sparse_weights_compared"]
    if record is not None:
        summary.update(
            model_file=OPENVINO_SPARSE_XML,
            cpu_extension=f"{EXTENSIONS_DIR}/{record['library']}",
            kernels_openvino_version=record["openvino_version"],
        )
    return summary
