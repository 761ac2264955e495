"""A model folder from elsewhere: its pruneofa.json, config.json, tokenizer files and IR are checked before a
library reads them. Each case used to be a traceback (RecursionError, JSONDecodeError, ZeroDivisionError,
a tokenizers Exception, an XML parser error) or an unbounded allocation; now one line, exit 2."""

from __future__ import annotations

import json
import shutil
import tracemalloc
from pathlib import Path

import pytest
import torch

from pruneofa.cli import main
from pruneofa.core import modelio
from pruneofa.core.errors import InputError
from pruneofa.core.jsonfile import read_json
from pruneofa.core.manifest import read_manifest
from pruneofa.core.modelcheck import check_ir_xml, check_tokenizer_files

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def folder(tmp_path, make_model):
    copy = tmp_path / "model"
    shutil.copytree(make_model("bert", "text-classification"), copy)
    return copy


def _edit_json(path: Path, **changes) -> None:
    content = json.loads(path.read_text())
    content.update(changes)
    path.write_text(json.dumps(content))


def _one_line_error(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert err and err[-1].startswith(f"pruneofa {argv[0]}: error:") and "Traceback" not in "\n".join(err)
    return err[-1]


def _export(capsys, folder: Path, tmp_path: Path) -> str:
    return _one_line_error(
        capsys, ["export", str(folder), "--target", "onnx", "--output", str(tmp_path / "o")]
    )


# --- pruneofa.json ---------------------------------------------------------------------------------------


def test_a_deeply_nested_manifest_is_one_line_in_info_and_export(folder, tmp_path, capsys):
    (folder / "pruneofa.json").write_text(DEEP)
    assert "nests more than 64 levels" in _one_line_error(capsys, ["info", str(folder)])
    assert "pruneofa.json nests more than 64 levels" in _export(capsys, folder, tmp_path)
    assert not (tmp_path / "o").exists()


def test_manifest_bounds(folder):
    (folder / "pruneofa.json").write_text('{"tool": "pruneofa", "x": "' + "a" * (17 << 20) + '"}')
    with pytest.raises(InputError, match="over 16 MiB"):
        read_manifest(folder)
    (folder / "pruneofa.json").write_text('{"tool": "pruneofa", "schema_version": 1' + "1" * 5000 + "}")
    with pytest.raises(InputError, match="not valid JSON"):
        read_manifest(folder)


def test_read_json_counts_brackets_outside_strings_only(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"text": "[" * 1000, "nested": [[[1]]]}))
    assert read_json(path)["nested"] == [[[1]]]
    path.write_text('{"a": ' + "[" * 65 + "]" * 65 + "}")
    with pytest.raises(InputError, match="nests more than 64"):
        read_json(path)
    path.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(InputError, match="not UTF-8"):
        read_json(path)


# --- config.json ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_attention_heads": 0}, "num_attention_heads is 0, outside"),
        ({"num_attention_heads": 3}, "not a multiple of num_attention_heads 3"),
        ({"hidden_size": 1e9}, "hidden_size is 1000000000.0, not a whole number"),
        ({"hidden_size": "32"}, "not a whole number"),
        ({"num_hidden_layers": 1_000_000}, "num_hidden_layers is 1,000,000, outside"),
        ({"vocab_size": -5}, "vocab_size is -5, outside"),
        ({"intermediate_size": 10**12}, "intermediate_size is 1,000,000,000,000, outside"),
        ({"max_position_embeddings": True}, "not a whole number"),
    ],
)
def test_impossible_configs_are_refused_before_building_a_model(folder, tmp_path, capsys, changes, message):
    _edit_json(folder / "config.json", **changes)
    err = _export(capsys, folder, tmp_path)
    assert message in err and "config.json" in err


def test_a_model_larger_than_memory_is_refused_with_its_size(folder, tmp_path, capsys):
    _edit_json(folder / "config.json", num_hidden_layers=1000, hidden_size=8192, num_attention_heads=8)
    tracemalloc.start()
    err = _export(capsys, folder, tmp_path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert "parameters" in err and "GB in FP32, more than this machine's" in err
    assert peak < 200e6


def test_the_figure_is_in_an_out_of_bounds_message(folder, tmp_path, capsys):
    _edit_json(folder / "config.json", num_hidden_layers=1_000_000)
    assert "the config describes ~" in _export(capsys, folder, tmp_path)


# --- tokenizer files --------------------------------------------------------------------------------------


def _tokenizer_cases(original: str) -> dict[str, tuple[str, str]]:
    unknown = json.loads(original)
    unknown["surprise"] = 1
    return {
        "unknown field": (json.dumps(unknown), "unknown field 'surprise'"),
        "deep": ('{"model": ' + DEEP + "}", "nests more than 64 levels"),
        "truncated": (original[: len(original) // 2], "not valid JSON"),
        "array": ("[]", "not an object"),
        "no model": ('{"version": "1.0"}', 'no "model" object'),
    }


@pytest.mark.parametrize("case", ["unknown field", "deep", "truncated", "array", "no model"])
def test_bad_tokenizer_json_is_one_line(folder, tmp_path, capsys, case):
    text, message = _tokenizer_cases((folder / "tokenizer.json").read_text())[case]
    (folder / "tokenizer.json").write_text(text)
    assert message in _export(capsys, folder, tmp_path)
    with pytest.raises(InputError, match=message):
        modelio.load_tokenizer(modelio.folder_source(folder))


def test_a_wrong_type_inside_tokenizer_json_is_one_line(folder):
    content = json.loads((folder / "tokenizer.json").read_text())
    content["model"]["vocab"] = 5  # valid JSON, accepted by the pre-check, refused by tokenizers
    (folder / "tokenizer.json").write_text(json.dumps(content))
    with pytest.raises(InputError, match="no usable tokenizer"):
        modelio.load_tokenizer(modelio.folder_source(folder))


def test_a_huge_tokenizer_json_is_refused_unread(folder):
    with (folder / "tokenizer.json").open("r+b") as handle:
        handle.truncate(100 << 20)  # 100 MB (sparse: no disk used)
    tracemalloc.start()
    with pytest.raises(InputError, match="over 64 MiB"):
        check_tokenizer_files(folder)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 10e6


def test_a_deep_tokenizer_config_is_one_line(folder, tmp_path, capsys):
    (folder / "tokenizer_config.json").write_text(DEEP)
    assert "tokenizer_config.json nests more than 64 levels" in _export(capsys, folder, tmp_path)


# --- sharded pickles --------------------------------------------------------------------------------------


class _Payload:
    def __reduce__(self):
        import os

        return (os.getcwd, ())


def test_a_refused_shard_is_named(folder, tmp_path, capsys):
    from safetensors.torch import load_file

    weights = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    keys = sorted(weights)
    first, second = keys[: len(keys) // 2], keys[len(keys) // 2 :]
    torch.save({k: weights[k] for k in first}, folder / "pytorch_model-00001-of-00002.bin")
    torch.save(
        {**{k: weights[k] for k in second}, "x": _Payload()}, folder / "pytorch_model-00002-of-00002.bin"
    )
    weight_map = {k: "pytorch_model-00001-of-00002.bin" for k in first}
    weight_map |= {k: "pytorch_model-00002-of-00002.bin" for k in second}
    (folder / "pytorch_model.bin.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    err = _export(capsys, folder, tmp_path)
    assert "pytorch_model-00002-of-00002.bin holds more than tensors" in err


# --- OpenVINO IR XML --------------------------------------------------------------------------------------

_IR = '<?xml version="1.0"?>\n<net name="m" version="11">\n<layers>\n<layer id="0" type="Parameter"/>\n</layers>\n</net>\n'


def test_a_well_formed_ir_passes(tmp_path):
    (tmp_path / "m.xml").write_text(_IR)
    check_ir_xml(tmp_path / "m.xml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_IR[: len(_IR) // 2], "not well-formed XML"),
        ("", "not well-formed XML"),
        ('<!DOCTYPE net [<!ENTITY a "aaaa">]><net>&a;</net>', "declares a DTD"),
        ("<model/>", "starts with <model>, not <net>"),
        ("<net>" + "<a>" * 300 + "</a>" * 300 + "</net>", "nests more than 256"),
    ],
)
def test_bad_ir_xml_is_one_line(tmp_path, text, message):
    (tmp_path / "m.xml").write_text(text)
    with pytest.raises(InputError, match=message):
        check_ir_xml(tmp_path / "m.xml")


def test_a_real_exported_ir_passes(export_once):
    exported = export_once("bert", "text-classification", None, targets=["openvino"], parity_samples=4)
    check_ir_xml(exported["openvino"].output / "openvino_model.xml")


def test_source_for_a_folder_and_a_hub_id(folder):
    assert modelio.source_for(folder).local and modelio.source_for(str(folder)).location == str(
        folder.resolve()
    )
    hub = modelio.source_for("org/some-model")
    assert not hub.local and hub.location == "org/some-model"
