"""``pruneofa package``: OVMS and Triton repositories checked against the servers' documented schemas
(OVMS's config.json JSON schema, Triton's ModelConfig protobuf) and loaded back; archives that restore
byte for byte and whose size follows the non-zero weights."""

from __future__ import annotations

import filecmp
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from pruneofa.cli import main
from pruneofa.core.errors import InputError
from pruneofa.deploy.config import package_config
from pruneofa.deploy.packaging import package_model, unpack_archive

# The model_config part of OpenVINO Model Server's MODELS_CONFIG_SCHEMA (src/schema.cpp), as documented.
OVMS_SCHEMA = {
    "definitions": {
        "model_config": {
            "type": "object",
            "required": ["config"],
            "properties": {
                "config": {
                    "type": "object",
                    "required": ["name", "base_path"],
                    "properties": {
                        "name": {"type": "string"},
                        "base_path": {"type": "string"},
                        "batch_size": {"type": ["integer", "string"], "minimum": 0},
                        "model_version_policy": {"type": "object"},
                        "shape": {"type": ["object", "string"]},
                        "nireq": {"type": "integer", "minimum": 0},
                        "target_device": {"type": "string"},
                        "plugin_config": {"type": "object"},
                        "stateful": {"type": "boolean"},
                        "idle_sequence_cleanup": {"type": "boolean"},
                        "low_latency_transformation": {"type": "boolean"},
                        "max_sequence_number": {"type": "integer", "minimum": 0},
                    },
                    "additionalProperties": False,
                },
            },
            "additionalProperties": False,
        }
    },
    "type": "object",
    "required": ["model_config_list"],
    "properties": {
        "model_config_list": {"type": "array", "items": {"$ref": "#/definitions/model_config"}},
        "pipeline_config_list": {"type": "array"},
        "custom_node_library_config_list": {"type": "array"},
        "custom_loader_config_list": {"type": "array"},
    },
    "additionalProperties": False,
}


def _triton_model_config_class():
    """Triton's ``inference.ModelConfig`` (common/protobuf/model_config.proto), the fields a CPU model
    repository uses, with the documented names, types and numbers."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="model_config_subset.proto", package="inference", syntax="proto3"
    )
    data_type = proto.enum_type.add(name="DataType")
    for number, value in enumerate(
        "TYPE_INVALID TYPE_BOOL TYPE_UINT8 TYPE_UINT16 TYPE_UINT32 TYPE_UINT64 TYPE_INT8 TYPE_INT16 TYPE_INT32 "
        "TYPE_INT64 TYPE_FP16 TYPE_FP32 TYPE_FP64 TYPE_STRING TYPE_BF16".split()
    ):
        data_type.value.add(name=value, number=number)

    def message(name, fields, nested=()):
        msg = proto.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            msg.field.add(name=field_name, number=number, type=kind, label=label, type_name=type_name or None)
        for build in nested:
            build(msg)
        return msg

    optional, repeated = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    message(
        "ModelInput",
        [
            ("name", 1, F.TYPE_STRING, optional, ""),
            ("data_type", 2, F.TYPE_ENUM, optional, ".inference.DataType"),
            ("dims", 4, F.TYPE_INT64, repeated, ""),
            ("allow_ragged_batch", 7, F.TYPE_BOOL, optional, ""),
            ("optional", 8, F.TYPE_BOOL, optional, ""),
        ],
    )
    message(
        "ModelOutput",
        [
            ("name", 1, F.TYPE_STRING, optional, ""),
            ("data_type", 2, F.TYPE_ENUM, optional, ".inference.DataType"),
            ("dims", 3, F.TYPE_INT64, repeated, ""),
            ("label_filename", 4, F.TYPE_STRING, optional, ""),
        ],
    )

    def kind_enum(msg):
        kind = msg.enum_type.add(name="Kind")
        for number, value in enumerate(["KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL"]):
            kind.value.add(name=value, number=number)

    message(
        "ModelInstanceGroup",
        [
            ("name", 1, F.TYPE_STRING, optional, ""),
            ("count", 2, F.TYPE_INT32, optional, ""),
            ("gpus", 3, F.TYPE_INT32, repeated, ""),
            ("kind", 4, F.TYPE_ENUM, optional, ".inference.ModelInstanceGroup.Kind"),
        ],
        [kind_enum],
    )
    message(
        "ModelDynamicBatching",
        [
            ("preferred_batch_size", 1, F.TYPE_INT32, repeated, ""),
            ("max_queue_delay_microseconds", 2, F.TYPE_UINT64, optional, ""),
            ("preserve_ordering", 3, F.TYPE_BOOL, optional, ""),
        ],
    )
    message("ModelParameter", [("string_value", 1, F.TYPE_STRING, optional, "")])

    def parameters_entry(msg):
        entry = msg.nested_type.add(name="ParametersEntry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=optional)
        entry.field.add(
            name="value", number=2, type=F.TYPE_MESSAGE, label=optional, type_name=".inference.ModelParameter"
        )

    message(
        "ModelConfig",
        [
            ("name", 1, F.TYPE_STRING, optional, ""),
            ("platform", 2, F.TYPE_STRING, optional, ""),
            ("max_batch_size", 4, F.TYPE_INT32, optional, ""),
            ("input", 5, F.TYPE_MESSAGE, repeated, ".inference.ModelInput"),
            ("output", 6, F.TYPE_MESSAGE, repeated, ".inference.ModelOutput"),
            ("instance_group", 7, F.TYPE_MESSAGE, repeated, ".inference.ModelInstanceGroup"),
            ("default_model_filename", 8, F.TYPE_STRING, optional, ""),
            ("dynamic_batching", 11, F.TYPE_MESSAGE, optional, ".inference.ModelDynamicBatching"),
            ("parameters", 14, F.TYPE_MESSAGE, repeated, ".inference.ModelConfig.ParametersEntry"),
            ("backend", 17, F.TYPE_STRING, optional, ""),
        ],
        [parameters_entry],
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("inference.ModelConfig"))


def _outputs(model_path: Path, feed: dict) -> list[np.ndarray]:
    import openvino as ov

    compiled = ov.Core().compile_model(str(model_path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    names = [next(iter(p.get_names())) for p in compiled.inputs]
    result = compiled({n: feed[n] for n in names})
    return [np.asarray(v) for v in result.values()]


FEED = {
    "input_ids": np.array([[2, 40, 41, 42, 3], [2, 50, 3, 0, 0]], dtype=np.int64),
    "attention_mask": np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=np.int64),
    "token_type_ids": np.zeros((2, 5), dtype=np.int64),
}


@pytest.mark.parametrize("target", ["openvino", "onnx"])
def test_ovms_repository_follows_the_documented_schema(export_once, tmp_path, target):
    import jsonschema

    folder = export_once("bert", "text-classification")[target].output
    result = package_model(
        folder, package_config(format="ovms", output=tmp_path / "repo", name="sst2"), quiet=True
    )
    config = json.loads((result.output / "config.json").read_text())
    jsonschema.validate(config, OVMS_SCHEMA)
    entry = config["model_config_list"][0]["config"]
    assert entry["name"] == "sst2" and entry["base_path"] == "sst2"
    assert entry["shape"] == {
        "input_ids": "(-1,-1)",
        "attention_mask": "(-1,-1)",
        "token_type_ids": "(-1,-1)",
    }
    version = result.output / "sst2" / "1"
    model = version / ("model.xml" if target == "openvino" else "model.onnx")
    assert model.is_file() and sorted(p.name for p in (result.output / "sst2").iterdir()) == ["1"]
    original = folder / ("openvino_model.xml" if target == "openvino" else "model.onnx")
    for a, b in zip(_outputs(model, FEED), _outputs(original, FEED), strict=True):
        assert np.array_equal(a, b)  # the same model, dynamic batch and sequence
    assert (result.output / "tokenizer" / "tokenizer.json").is_file()
    assert (result.output / "pruneofa.json").is_file()
    with pytest.raises(jsonschema.ValidationError):  # the schema is strict: it would catch a typo
        jsonschema.validate({"model_config_list": [{"config": {**entry, "batchsize": 1}}]}, OVMS_SCHEMA)


@pytest.mark.parametrize("target,backend", [("openvino", "openvino"), ("onnx", "onnxruntime")])
def test_triton_repository_parses_as_a_model_config(export_once, tmp_path, target, backend):
    from google.protobuf import text_format

    folder = export_once("bert", "question-answering")[target].output
    result = package_model(
        folder,
        package_config(format="triton", output=tmp_path / "repo", name="squad", max_batch_size=32),
        quiet=True,
    )
    text = (result.output / "squad" / "config.pbtxt").read_text()
    config = text_format.Parse(text, _triton_model_config_class()())
    assert config.name == "squad" and config.backend == backend and config.max_batch_size == 32
    assert [i.name for i in config.input] == ["input_ids", "attention_mask", "token_type_ids"]
    assert all(list(i.dims) == [-1] and i.data_type == 9 for i in config.input)  # TYPE_INT64, batch implied
    assert {o.name: list(o.dims) for o in config.output} == {"start_logits": [-1], "end_logits": [-1]}
    assert all(o.data_type == 11 for o in config.output)  # TYPE_FP32
    assert config.HasField("dynamic_batching") and config.instance_group[0].kind == 2  # KIND_CPU
    files = {p.name for p in (result.output / "squad" / "1").iterdir()}
    assert files == ({"model.xml", "model.bin"} if target == "openvino" else {"model.onnx"})
    with pytest.raises(text_format.ParseError):  # the parser is strict about field names
        text_format.Parse(text.replace("max_batch_size", "max_batch"), _triton_model_config_class()())


def test_archive_round_trip_is_byte_identical(export_once, tmp_path, capsys):
    folder = export_once("bert", "text-classification", "unstructured90")["openvino"].output
    code = main(
        [
            "package",
            str(folder),
            "--format",
            "archive",
            "--output",
            str(tmp_path / "dist"),
            "--quiet",
            "--json",
        ]
    )
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["format"] == "archive"
    archive = next((tmp_path / "dist").glob("*.tar.xz"))
    code = main(
        ["package", str(archive), "--format", "folder", "--output", str(tmp_path / "back"), "--quiet"]
    )
    assert code == 0
    comparison = filecmp.dircmp(folder, tmp_path / "back")
    assert not comparison.left_only and not comparison.right_only
    assert all(filecmp.cmp(folder / n, tmp_path / "back" / n, shallow=False) for n in comparison.common_files)


def test_archive_size_follows_the_nonzero_weights(export_once, tmp_path):
    dense = export_once("bert", "text-classification")["onnx"].output
    sparse = export_once("bert", "text-classification", "unstructured90")["onnx"].output
    dense_summary = package_model(
        dense, package_config(format="archive", output=tmp_path / "dense"), quiet=True
    ).summary
    sparse_summary = package_model(
        sparse, package_config(format="archive", output=tmp_path / "sparse"), quiet=True
    ).summary
    for summary in (dense_summary, sparse_summary):
        assert summary["ratio_to_dense_fp32"] == pytest.approx(
            summary["archive_bytes"] / summary["dense_fp32_bytes"], abs=1e-4
        )
    # the tiny model's embeddings are dense; its encoder Linear weights are 90 % zeros, each 4 zero bytes
    from pruneofa.core.manifest import read_manifest

    zero_bytes = 4 * read_manifest(sparse).sparsity.linear_zeros_after
    size = (sparse / "model.onnx").stat().st_size
    assert dense_summary["nonzero_byte_share"] > 0.98
    assert sparse_summary["nonzero_byte_share"] <= 1 - zero_bytes / size + 0.005
    # what is stored follows the non-zeros: the archive shrinks at least in proportion to them
    expected = (
        dense_summary["archive_bytes"]
        * sparse_summary["nonzero_byte_share"]
        / dense_summary["nonzero_byte_share"]
    )
    assert sparse_summary["archive_bytes"] < 1.05 * expected


def test_damaged_or_foreign_archives_are_refused(export_once, tmp_path):
    folder = export_once("bert", "text-classification")["onnx"].output
    archive = package_model(
        folder, package_config(format="archive", output=tmp_path / "a"), quiet=True
    ).output
    packed = next(archive.glob("*.tar.xz"))
    with tarfile.open(packed, "r:xz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    index = json.loads(members["pruneofa-archive.json"])
    index["files"][0]["sha256"] = "0" * 64
    members["pruneofa-archive.json"] = json.dumps(index).encode()
    broken = tmp_path / "broken.tar.xz"
    with tarfile.open(broken, "w:xz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(InputError, match="does not match its recorded SHA-256"):
        unpack_archive(broken, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-written
    (tmp_path / "plain.tar.xz").write_bytes(b"not an archive")
    with pytest.raises(InputError, match="not a readable"):
        unpack_archive(tmp_path / "plain.tar.xz", tmp_path / "out2")


def test_bad_package_input_exits_2(export_once, tmp_path, capsys):
    assert main(["package", str(tmp_path / "missing"), "--format", "ovms"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    folder = export_once("bert", "text-classification")["onnx"].output
    assert main(["package", str(folder), "--format", "ovms", "--name", "bad name!"]) == 2
    assert "--name" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    assert main(["package", str(folder), "--format", "triton", "--output", str(tmp_path / "taken")]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_the_fp32_baseline_of_a_qat_int8_folder_is_not_its_own_int8_file():
    """Issue 16.3: the archive ratio of a QAT export was taken against its own INT8 file as 'FP32'."""
    from types import SimpleNamespace

    from pruneofa.deploy.packaging.archive_writer import _dense_fp32_bytes

    qat = SimpleNamespace(
        calibration=None,
        export=SimpleNamespace(weight_format="int8"),
        sparsity=SimpleNamespace(total_numel=1_000_000),
    )
    dense, what = _dense_fp32_bytes(qat, model_bytes=1_100_000)
    assert dense == 4_000_000 and "QAT" in what
    fp32 = SimpleNamespace(calibration=None, export=SimpleNamespace(weight_format="fp32"), sparsity=None)
    assert _dense_fp32_bytes(fp32, model_bytes=4_100_000) == (4_100_000, "this folder's own FP32 model files")


def test_repositories_name_the_model_as_pruneofa_serve_does(export_once, tmp_path):
    """Issue 16.6: without --name the repository's model is named from the folder's manifest (not the folder,
    which is called openvino/onnx in a two-target export), the name pruneofa serve gives it."""
    from pruneofa.deploy.naming import default_model_name

    folder = export_once("bert", "text-classification")["openvino"].output
    name = default_model_name(folder)
    assert folder.name == "openvino" and name.endswith("-openvino") and name != "openvino"
    ovms = package_model(folder, package_config(format="ovms", output=tmp_path / "ovms"), quiet=True)
    assert (
        json.loads((ovms.output / "config.json").read_text())["model_config_list"][0]["config"]["name"]
        == name
    )
    assert ovms.summary["model_name"] == name and (ovms.output / name / "1" / "model.xml").is_file()
    assert f"/v2/models/{name}/infer" in (ovms.output / "README.md").read_text()
    assert not (ovms.output / "extensions").exists()  # a dense folder: no kernels shipped
    triton = package_model(folder, package_config(format="triton", output=tmp_path / "triton"), quiet=True)
    assert f'name: "{name}"' in (triton.output / name / "config.pbtxt").read_text()


def _with_fake_sparse_ir(folder: Path, tmp_path: Path) -> Path:
    """A copy of an exported folder with a sparse IR's file names (read only after the checks under test)."""
    import shutil

    copy = tmp_path / "folder"
    shutil.copytree(folder, copy)
    (copy / "openvino_model_sparse.xml").write_text("<net/>")
    (copy / "openvino_model_sparse.bin").write_bytes(b"")
    return copy


def test_sparse_kernel_options_that_cannot_work_are_one_line_errors(export_once, tmp_path, capsys):
    dense = export_once("bert", "text-classification")["openvino"].output
    cases = [
        (dense, ["--format", "ovms", "--sparse-kernels", "on"], "has no openvino_model_sparse.xml"),
        (dense, ["--format", "triton", "--sparse-kernels", "on"], "use it with --format ovms"),
    ]
    half = _with_fake_sparse_ir(dense, tmp_path)
    (half / "openvino_model_sparse.bin").unlink()
    cases.append(
        (half, ["--format", "ovms"], "has openvino_model_sparse.xml but not openvino_model_sparse.bin")
    )
    capsys.readouterr()  # what exporting the folder printed
    for index, (folder, flags, message) in enumerate(cases):
        out = tmp_path / f"out{index}"
        assert main(["package", str(folder), *flags, "--output", str(out)]) == 2
        error = capsys.readouterr().err.strip()
        assert message in error and "\n" not in error and not out.exists()


@pytest.fixture
def kernels_unavailable(monkeypatch):
    from pruneofa.kernels import library

    monkeypatch.setenv("PRUNEOFA_KERNELS_DISABLE", "1")
    library.reset()
    yield
    monkeypatch.delenv("PRUNEOFA_KERNELS_DISABLE")
    library.reset()


def test_a_sparse_ir_without_the_kernels_library_is_one_clear_error(
    export_once, tmp_path, capsys, kernels_unavailable
):
    folder = _with_fake_sparse_ir(export_once("bert", "text-classification")["openvino"].output, tmp_path)
    capsys.readouterr()  # what exporting the folder printed
    assert main(["package", str(folder), "--format", "ovms", "--output", str(tmp_path / "repo")]) == 2
    error = capsys.readouterr().err.strip()
    assert (
        "needs pruneofa's kernels library" in error and "--sparse-kernels off" in error and "\n" not in error
    )
    assert not (tmp_path / "repo").exists()
    # --sparse-kernels off packages the standard IR, which needs no library
    result = package_model(
        folder, package_config(format="ovms", output=tmp_path / "dense", sparse_kernels="off"), quiet=True
    )
    assert not (result.output / "extensions").exists()


@pytest.fixture(scope="module")
def sparse_ir_folder(export_once):
    from pruneofa import kernels

    if not kernels.available():
        pytest.skip("the kernels extension could not be built here (no C++ compiler)")
    options = {"targets": ["openvino"], "sparse_ir": True, "sparse_kernels": "on"}
    return export_once("bert", "text-classification", "unstructured90", **options)["openvino"].output


def test_ovms_ships_the_sparse_ir_with_the_kernels_library_and_its_setting(sparse_ir_folder, tmp_path):
    """Issue 12: the OVMS repository of a folder with a sparse IR serves that IR, ships the library next to
    it and names it with OVMS's --cpu_extension; a core that adds that library (as OVMS does) runs it."""
    import jsonschema
    import openvino as ov

    from pruneofa import kernels
    from pruneofa.core.manifest import sha256_file
    from pruneofa.deploy.naming import default_model_name

    folder = sparse_ir_folder
    result = package_model(folder, package_config(format="ovms", output=tmp_path / "repo"), quiet=True)
    repo, name = result.output, default_model_name(folder)
    tokenizer = {f"tokenizer/{p.name}" for p in (repo / "tokenizer").iterdir()}
    assert (
        set(result.files)
        == {
            "config.json",
            "README.md",
            "pruneofa.json",
            f"{name}/1/model.xml",
            f"{name}/1/model.bin",
            "extensions/libpruneofa_kernels.so",
            "extensions/pruneofa_kernels.json",
        }
        | tokenizer
    )
    config = json.loads((repo / "config.json").read_text())
    jsonschema.validate(config, OVMS_SCHEMA)  # the extension is a server setting, not a config.json key
    entry = config["model_config_list"][0]["config"]
    assert entry["name"] == name and entry["plugin_config"]["INFERENCE_PRECISION_HINT"] == "f32"
    model_xml = repo / name / "1" / "model.xml"
    assert filecmp.cmp(model_xml, folder / "openvino_model_sparse.xml", shallow=False)
    assert "SparseLinear" in model_xml.read_text()

    library = repo / "extensions" / "libpruneofa_kernels.so"
    assert sha256_file(library) == sha256_file(kernels.library_path())
    record = json.loads((repo / "extensions" / "pruneofa_kernels.json").read_text())
    assert record["openvino_version"] == ov.get_version() and record["sha256"] == sha256_file(library)
    setting = "--cpu_extension /models/extensions/libpruneofa_kernels.so"
    assert record["ovms_argument"] == setting
    readme = (repo / "README.md").read_text()
    assert setting in readme and "--config_path /models/config.json" in readme
    release = ov.get_version().split("-")[0]  # 2026.4.1 of 2026.4.1-22982-...
    assert f"built against OpenVINO {release}" in readme and "must match the OpenVINO inside" in readme
    assert f"openvino/model_server:{'.'.join(release.split('.')[:2])} " in readme  # that release's image
    assert result.summary["cpu_extension"] == "extensions/libpruneofa_kernels.so"

    with pytest.raises(RuntimeError):  # without the library the packaged model cannot even be read
        ov.Core().read_model(str(model_xml))
    core = ov.Core()
    core.add_extension(str(library))  # what OVMS's --cpu_extension does with the packaged copy
    compiled = core.compile_model(core.read_model(str(model_xml)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    names = [next(iter(p.get_names())) for p in compiled.inputs]
    sparse = [np.asarray(v) for v in compiled({n: FEED[n] for n in names}).values()]
    dense = _outputs(folder / "openvino_model.xml", FEED)
    for got, expected in zip(sparse, dense, strict=True):
        assert got.shape == expected.shape and np.abs(got - expected).max() <= 1e-4

    off = package_model(
        folder, package_config(format="ovms", output=tmp_path / "off", sparse_kernels="off"), quiet=True
    )
    assert filecmp.cmp(off.output / name / "1" / "model.xml", folder / "openvino_model.xml", shallow=False)
    assert not (off.output / "extensions").exists()
    assert "INFERENCE_PRECISION_HINT" not in (off.output / "config.json").read_text()


def test_a_tampered_sparse_ir_is_refused_in_one_line(sparse_ir_folder, tmp_path, capsys):
    """Issue 28: a sparse IR whose constants do not match its op's attributes (here a row_ptr one entry
    short) is refused while package reads it, in one line, and nothing is written (the op checks its
    constants when the model is read, before any inference)."""
    import shutil
    import xml.etree.ElementTree as ET

    folder = tmp_path / "folder"
    shutil.copytree(sparse_ir_folder, folder)
    xml = folder / "openvino_model_sparse.xml"
    tree = ET.parse(xml)
    layers = {layer.get("id"): layer for layer in tree.getroot().find("layers")}
    op = next(layer for layer in layers.values() if layer.get("version") == "pruneofa")
    edge = next(
        edge
        for edge in tree.getroot().find("edges")
        if edge.get("to-layer") == op.get("id") and edge.get("to-port") == "1"
    )
    data = layers[edge.get("from-layer")].find("data")  # row_ptr: out_features + 1 int32
    entries = int(data.get("shape")) - 1
    data.set("shape", str(entries))
    data.set("size", str(4 * entries))
    layers[edge.get("from-layer")].find("output/port/dim").text = str(entries)
    tree.write(xml)
    # Record the tampered size, as an attacker who rewrites the IR would, so that the op's own check at
    # read time (not package's size check) is what refuses it.
    manifest = json.loads((folder / "pruneofa.json").read_text())
    manifest["export"]["files"][xml.name] = xml.stat().st_size
    (folder / "pruneofa.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    code = main(["package", str(folder), "--format", "ovms", "--output", str(tmp_path / "repo")])
    error = capsys.readouterr().err.strip()
    assert code != 0 and "\n" not in error and not (tmp_path / "repo").exists()
    assert "invalid sparse layer" in error and f"row_ptr holds {entries} entries" in error, error


def _tritonclient_model_config():
    """``inference.ModelConfig`` as Triton's own client ships it (``tritonclient/grpc/model_config_pb2.py``,
    generated from Triton's model_config.proto), loaded from the file so that grpcio is not needed."""
    import importlib.util

    spec = importlib.util.find_spec("tritonclient")
    if spec is None or spec.origin is None:
        pytest.skip("tritonclient is not installed (pip install -r requirements.lock)")
    path = Path(spec.origin).parent / "grpc" / "model_config_pb2.py"
    module_spec = importlib.util.spec_from_file_location("_triton_model_config_pb2", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.ModelConfig


@pytest.mark.parametrize("target", ["openvino", "onnx"])
def test_a_triton_repository_holds_only_models_at_its_top(export_once, tmp_path, target):
    """Issue 27.9: Triton loads every top-level folder of a repository as a model; ``tokenizer/`` and
    ``pruneofa.json`` sat there beside the model. They go inside the model's folder, where Triton ignores
    what is not a numbered version; the config parses into Triton's own ModelConfig."""
    from google.protobuf import text_format

    from pruneofa.deploy.naming import default_model_name

    folder = export_once("bert", "question-answering")[target].output
    name = default_model_name(folder)
    repo = package_model(folder, package_config(format="triton", output=tmp_path / "repo"), quiet=True).output
    assert sorted(p.name for p in repo.iterdir()) == [name]
    model = repo / name
    entries = {p.name for p in model.iterdir()}
    assert entries == {"1", "config.pbtxt", "tokenizer", "pruneofa.json"}
    versions = [e for e in entries if (model / e).is_dir() and e.isdigit() and not e.startswith("0")]
    assert versions == ["1"]  # the only entry Triton reads as a version; the rest it ignores
    assert (model / "tokenizer" / "tokenizer.json").is_file()
    assert json.loads((model / "pruneofa.json").read_text())["stage"] == "package"
    model_config = _tritonclient_model_config()
    config = text_format.Parse((model / "config.pbtxt").read_text(), model_config())
    assert config.name == name and config.max_batch_size == 64
    assert config.backend == ("openvino" if target == "openvino" else "onnxruntime")
    assert [i.name for i in config.input] == ["input_ids", "attention_mask", "token_type_ids"]
    assert {o.name for o in config.output} == {"start_logits", "end_logits"}
    with pytest.raises(text_format.ParseError):  # Triton's schema is strict about field names
        text_format.Parse("name: 'x'\nmax_batch: 4\n", model_config())


def test_an_archive_is_named_like_the_model_it_holds(export_once, tmp_path):
    """Issue 27.9: the archive of ``exports/x/openvino`` was ``openvino.tar.xz`` where the repositories and
    ``pruneofa serve`` call the model ``x-openvino``; it restores under that name by default."""
    from pruneofa.deploy.naming import default_model_name

    folder = export_once("bert", "text-classification")["openvino"].output
    name = default_model_name(folder)
    assert folder.name == "openvino" and name != "openvino"
    result = package_model(folder, package_config(format="archive", output=tmp_path / "dist"), quiet=True)
    assert [p.name for p in result.output.glob("*.tar.xz")] == [f"{name}.tar.xz"]
    restored = package_model(
        result.output / f"{name}.tar.xz", package_config(format="folder"), quiet=True
    ).output
    assert restored == (result.output / name).resolve() and (restored / "openvino_model.xml").is_file()
