"""``pruneofa package`` ships the model the folder's manifest describes and ``validate`` ran (issue 27.1), and
only one that runs (issue 28.2, 28.3): an IR of the wrong precision, a file changed after the stage that
wrote the folder, a sparse IR whose weights differ from the dense IR, one that fails or crashes when run
once, a truncated or malformed IR: each is one line, exit 2, nothing written."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest

from pruneofa.cli import main
from pruneofa.deploy.config import package_config
from pruneofa.deploy.packaging import package_model

SPARSE_XML, SPARSE_BIN = "openvino_model_sparse.xml", "openvino_model_sparse.bin"


@pytest.fixture(scope="module")
def sparse_folder(export_once):
    from pruneofa import kernels

    if not kernels.available():
        pytest.skip("the kernels extension could not be built here (no C++ compiler)")
    options = {"targets": ["openvino"], "sparse_ir": True, "sparse_kernels": "on"}
    return export_once("bert", "text-classification", "unstructured90", **options)["openvino"].output


@pytest.fixture(scope="module")
def int8_folder(sparse_folder, sst2_dir, tmp_path_factory):
    """``pruneofa calibrate`` of the folder with a sparse IR (which it writes again in INT8)."""
    from pruneofa.calibration import calibrate_model, make_config

    config = make_config(
        task="sst2",
        data=str(sst2_dir),
        split="train",
        samples=16,
        parity_samples=16,
        min_agreement=0.5,
        output=tmp_path_factory.mktemp("int8") / "out",
    )
    return calibrate_model(sparse_folder, config, quiet=True).output


def _copy(folder: Path, tmp_path: Path, name: str = "copy") -> Path:
    target = tmp_path / name
    shutil.copytree(folder, target)
    return target


def _record_sizes(folder: Path, *names: str) -> None:
    """Make the manifest's size record agree with the files (so that another check is the one that speaks)."""
    path = folder / "pruneofa.json"
    manifest = json.loads(path.read_text())
    for name in names:
        manifest["export"]["files"][name] = (folder / name).stat().st_size
    path.write_text(json.dumps(manifest))


def _refused(folder: Path, out: Path, capsys, *words: str, fmt: str = "ovms") -> str:
    capsys.readouterr()
    code = main(["package", str(folder), "--format", fmt, "--output", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert all(word in err for word in words), err
    assert not out.exists()
    return err


def _constants(xml: Path) -> dict[str, dict[str, str]]:
    root = ElementTree.parse(xml).getroot()
    return {
        layer.get("name"): dict(layer.find("data").attrib)
        for layer in root.iter("layer")
        if layer.get("type") == "Const"
    }


def _integer8_constants(xml: Path) -> int:
    return sum(1 for c in _constants(xml).values() if c["element_type"] in ("i8", "u8"))


def test_an_fp32_sparse_ir_is_not_shipped_under_an_int8_name(sparse_folder, int8_folder, tmp_path, capsys):
    """Issue 27.1: ``export --sparse-ir`` → ``calibrate`` → ``package --format ovms`` shipped the FP32 sparse
    IR as the INT8 model."""
    assert json.loads((int8_folder / "pruneofa.json").read_text())["export"]["weight_format"] == "int8"
    # the dense INT8 IR, which validate ran, still packages
    dense = package_model(
        int8_folder,
        package_config(format="ovms", output=tmp_path / "dense", sparse_kernels="off"),
        quiet=True,
    )
    assert dense.summary["probe_outputs"] == 1
    # the sparse IR calibrate wrote is INT8 (tests/calibration/test_int8_sparse_ir.py packages it)
    assert _integer8_constants(int8_folder / SPARSE_XML) > 0
    # an FP32 sparse IR put into the INT8 folder, the manifest's size record made to agree
    swapped = _copy(int8_folder, tmp_path, "swapped")
    for name in (SPARSE_XML, SPARSE_BIN):
        shutil.copyfile(sparse_folder / name, swapped / name)
    _record_sizes(swapped, SPARSE_XML, SPARSE_BIN)
    _refused(swapped, tmp_path / "out", capsys, SPARSE_XML, "no 8-bit integer weights", "INT8")
    # ... and an INT8 IR in an FP32 folder
    mixed = _copy(sparse_folder, tmp_path, "mixed")
    for name in ("openvino_model.xml", "openvino_model.bin"):
        shutil.copyfile(int8_folder / name, mixed / name)
    _record_sizes(mixed, "openvino_model.xml", "openvino_model.bin")
    _refused(mixed, tmp_path / "out", capsys, "openvino_model.xml", "8-bit integer", "FP32")


def test_a_file_changed_after_the_manifest_was_written_is_refused(sparse_folder, tmp_path, capsys):
    changed = _copy(sparse_folder, tmp_path)
    with (changed / SPARSE_BIN).open("ab") as handle:
        handle.write(b"\0" * 4)
    _refused(changed, tmp_path / "out", capsys, SPARSE_BIN, "pruneofa.json records")


def _values_constant(xml: Path) -> dict[str, str]:
    return next(c for name, c in _constants(xml).items() if name.endswith("/values"))


def test_a_byte_changed_in_the_sparse_weights_is_refused(sparse_folder, tmp_path, capsys):
    """The same size, one weight changed: the sparse op's weights no longer equal the dense IR's."""
    changed = _copy(sparse_folder, tmp_path)
    values = _values_constant(changed / SPARSE_XML)
    data = bytearray((changed / SPARSE_BIN).read_bytes())
    offset = int(values["offset"])
    data[offset : offset + 4] = np.float32(7.5).tobytes()
    (changed / SPARSE_BIN).write_bytes(bytes(data))
    _refused(changed, tmp_path / "out", capsys, SPARSE_XML, "differ from the folder's dense IR")


def test_a_sparse_ir_with_broken_structure_is_refused_not_shipped(sparse_folder, tmp_path, capsys):
    """Issue 28.2: out-of-range indices and constants far shorter than the op's outputs were packaged with
    exit 0 (a 1-entry bias for 4M outputs then crashed the server); the package run's one inference refuses them."""
    rows = _copy(sparse_folder, tmp_path, "rows")
    row_ptr = next(c for name, c in _constants(rows / SPARSE_XML).items() if name.endswith("/row_ptr"))
    data = bytearray((rows / SPARSE_BIN).read_bytes())
    offset = int(row_ptr["offset"]) + 4
    data[offset : offset + 4] = np.int32(1 << 30).tobytes()
    (rows / SPARSE_BIN).write_bytes(bytes(data))
    _refused(rows, tmp_path / "out", capsys, SPARSE_XML, "not packaged")

    short = _copy(sparse_folder, tmp_path, "short")  # constants far shorter than the op's 4M outputs
    text = (short / SPARSE_XML).read_text()
    root = ElementTree.fromstring(text)
    layer = [node for node in root.iter("layer") if node.get("type") == "SparseLinear"][-1]
    old = f'out_features="{layer.find("data").get("out_features")}"'
    start = text.index(f'<layer id="{layer.get("id")}"')
    text = text[:start] + text[start:].replace(old, 'out_features="4194304"', 1)
    (short / SPARSE_XML).write_text(text)
    _record_sizes(short, SPARSE_XML)
    _refused(short, tmp_path / "out", capsys, SPARSE_XML, "not packaged")


def test_a_crash_while_running_the_packaged_model_is_one_line(sparse_folder, tmp_path, capsys, monkeypatch):
    """The inference runs in a child process: a signal there (exit 139 in a shell) is a refusal here."""
    from pruneofa.deploy.packaging import ir_checks

    real = subprocess.run

    def crashing(args, **kwargs):
        if "pruneofa.deploy.packaging.ir_probe" in args:
            return subprocess.CompletedProcess(args, -11, "", "")
        return real(args, **kwargs)

    monkeypatch.setattr(ir_checks.subprocess, "run", crashing)
    _refused(sparse_folder, tmp_path / "out", capsys, SPARSE_XML, "SIGSEGV", "not packaged")


@pytest.mark.parametrize("fmt", ["ovms", "triton"])
def test_a_truncated_or_malformed_ir_is_one_line_naming_the_file(export_once, tmp_path, capsys, fmt):
    """Issue 28.3: ``package --format triton`` with a truncated IR was an XML parser traceback."""
    folder = export_once("bert", "text-classification")["openvino"].output
    xml = folder / "openvino_model.xml"
    cases = {
        "half-xml": lambda f: (f / xml.name).write_bytes(xml.read_bytes()[: xml.stat().st_size // 2]),
        "not-xml": lambda f: (f / xml.name).write_bytes(b"\x00\xff garbage"),
        "foreign-xml": lambda f: (f / xml.name).write_text("<html><body/></html>"),
        "half-bin": lambda f: (f / "openvino_model.bin").write_bytes(b"\0" * 64),
    }
    for case, damage in cases.items():
        copy = _copy(folder, tmp_path, case)
        (copy / "pruneofa.json").unlink()  # no size record: the file checks themselves speak
        damage(copy)
        name = "openvino_model.bin" if case == "half-bin" else "openvino_model.xml"
        _refused(copy, tmp_path / f"out-{case}", capsys, name, fmt=fmt)
    # with the manifest, a truncated file is refused by its recorded size first
    cut = _copy(folder, tmp_path, "cut")
    cases["half-xml"](cut)
    _refused(cut, tmp_path / "out-cut", capsys, "openvino_model.xml", "pruneofa.json records", fmt=fmt)


def test_the_ir_graph_is_read_with_a_bound(export_once, tmp_path, capsys, monkeypatch):
    from pruneofa.deploy.packaging import ir_checks

    monkeypatch.setattr(ir_checks, "MAX_IR_XML_BYTES", 1024)
    folder = export_once("bert", "text-classification")["openvino"].output
    _refused(folder, tmp_path / "out", capsys, "openvino_model.xml", "over 1 KiB", fmt="triton")
