"""Every bad input gives a one-line error, exit code 2 (1 for a failed check), and leaves nothing behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from pruneofa.cli import main


def _export(capsys, model, out, *extra: str, target: str = "onnx") -> tuple[int, str]:
    """Run ``pruneofa export MODEL --target TARGET --output OUT EXTRA… --quiet``; exit code and last stderr line."""
    code = main(["export", str(model), "--target", target, "--output", str(out), *extra, "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


def _assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    assert leftovers == []


def test_missing_folder(tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _export(capsys, tmp_path / "nope", out)
    assert code == 2 and "does not exist" in err and err.startswith("pruneofa export: error:")
    _assert_nothing_written(out)


def test_folder_that_is_not_a_model(tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("hello")
    out = tmp_path / "out"
    code, err = _export(capsys, tmp_path / "notes", out, target="openvino")
    assert code == 2 and "not a transformers model folder" in err
    _assert_nothing_written(out)


def test_folder_without_weights(tmp_path, make_model, capsys):
    folder = tmp_path / "noweights"
    shutil.copytree(make_model("bert", "text-classification"), folder)
    (folder / "model.safetensors").unlink()
    out = tmp_path / "out"
    code, err = _export(capsys, folder, out)
    assert code == 2 and "has no weights" in err
    _assert_nothing_written(out)


class _Payload:
    """Unpickling this would call os.system; weights_only=True must refuse it."""

    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /tmp/pruneofa-pwned",))


def test_pickle_weights_with_code_are_refused(tmp_path, make_model, capsys):
    folder = tmp_path / "pickled"
    shutil.copytree(make_model("bert", "text-classification"), folder)
    (folder / "model.safetensors").unlink()
    torch.save({"payload": _Payload()}, folder / "pytorch_model.bin")
    out = tmp_path / "out"
    code, err = _export(capsys, folder, out)
    assert code == 2 and "refused" in err and "safetensors" in err
    assert not Path("/tmp/pruneofa-pwned").exists()
    _assert_nothing_written(out)


def test_plain_tensor_pickle_is_loaded_safely(tmp_path, make_model, capsys):
    from safetensors.torch import load_file

    folder = tmp_path / "legacy"
    shutil.copytree(make_model("distilbert", "text-classification"), folder)
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    out = tmp_path / "out"
    code, _ = _export(capsys, folder, out, "--parity-samples", "4")
    assert code == 0 and (out / "model.onnx").is_file()


def test_unsupported_architecture(tmp_path, capsys):
    import transformers

    folder = tmp_path / "gpt2"
    config = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=50, n_positions=16)
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    out = tmp_path / "out"
    code, err = _export(capsys, folder, out)
    assert code == 2 and "unsupported architecture 'gpt2'" in err and "bert" in err
    _assert_nothing_written(out)


def test_task_mismatch_and_unknown_task(tmp_path, make_model, capsys):
    folder = make_model("bert", "text-classification")
    out = tmp_path / "out"
    code, err = _export(capsys, folder, out, "--task", "fill-mask")
    assert code == 2 and "does not match the checkpoint" in err and "--task text-classification" in err
    code, err = _export(capsys, folder, out, "--task", "translation")
    assert code == 2 and "unknown task 'translation'" in err
    _assert_nothing_written(out)


def test_opset_too_low(tmp_path, make_model, capsys):
    out = tmp_path / "out"
    code, err = _export(capsys, make_model("bert", "text-classification"), out, "--opset", "13")
    assert code == 2 and "opset 13 is too low" in err
    _assert_nothing_written(out)


def test_unwritable_output(tmp_path, make_model, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, err = _export(capsys, make_model("bert", "text-classification"), blocker / "sub")
    assert code == 2 and "cannot be written" in err
    assert blocker.read_text() == "x"


def test_existing_output_is_refused_then_replaced_whole_with_overwrite(tmp_path, make_model, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    folder = make_model("bert", "text-classification")
    code, err = _export(capsys, folder, out)
    assert code == 2 and "--overwrite" in err
    assert (out / "keep.txt").read_text() == "precious"
    code, _ = _export(capsys, folder, out, "--overwrite", "--parity-samples", "4")
    assert code == 0
    names = {p.name for p in out.iterdir()}
    assert "keep.txt" not in names and {"model.onnx", "config.json", "pruneofa.json"} <= names


def test_failed_parity_exits_1_and_writes_nothing(tmp_path, make_model, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old export")
    code, err = _export(
        capsys,
        make_model("bert", "text-classification"),
        out,
        "--overwrite",
        "--atol",
        "1e-12",
        "--parity-samples",
        "4",
    )
    assert code == 1 and "rejected, nothing written" in err and "atol 1e-12" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]  # the previous output is untouched
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")] == []


def test_malformed_source_manifest(tmp_path, make_model, capsys):
    folder = tmp_path / "withmanifest"
    shutil.copytree(make_model("bert", "text-classification"), folder)
    (folder / "pruneofa.json").write_text(json.dumps({"tool": "pruneofa", "schema_version": 1, "stage": 3}))
    out = tmp_path / "out"
    code, err = _export(capsys, folder, out)
    assert code == 2 and "pruneofa.json is malformed" in err
    _assert_nothing_written(out)


def test_bad_target_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--target", "tensorrt"])
    assert exit_info.value.code == 2
    assert "unknown value 'tensorrt'" in capsys.readouterr().err


def test_unreachable_hub_id_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "out"
    code, err = _export(capsys, "no-such-org/no-such-model", out)
    assert code == 2 and "cannot read a transformers config from hub id no-such-org/no-such-model" in err
    _assert_nothing_written(out)


def test_a_failed_check_writes_no_target_at_all(tmp_path, make_model, capsys):
    out = tmp_path / "both"
    code, err = _export(
        capsys,
        make_model("roberta", "fill-mask"),
        out,
        "--min-parity-agreement",
        "1.5",
        target="openvino,onnx",
    )
    assert code == 2 and "--min-parity-agreement" in err  # validated before any work
    code, err = _export(
        capsys,
        make_model("roberta", "fill-mask"),
        out,
        "--atol",
        "1e-12",
        "--parity-samples",
        "4",
        target="onnx,openvino",
    )
    assert code == 1 and "rejected, nothing written" in err
    assert not (out / "onnx").exists() and not (out / "openvino").exists()
    assert not out.exists() or not any(out.iterdir())


def test_a_rejected_export_prints_its_checks_and_no_written_report(make_model, tmp_path, capsys):
    code = main(
        ["export", str(make_model("bert", "text-classification")), "--target", "onnx"]
        + ["--output", str(tmp_path / "o"), "--atol", "1e-12", "--parity-samples", "4"]
    )
    err = capsys.readouterr().err
    assert code == 1 and "checks that rejected it (nothing was written)" in err and "Output parity" in err
    assert "Exported" not in err and "done:" not in err


@pytest.mark.parametrize("trained_for", ["fill-mask", "text-classification"])
def test_any_encoder_checkpoint_exports_as_feature_extraction(make_model, tmp_path, trained_for):
    """An MLM or task checkpoint has no pooler (or a head the encoder ignores); the embedding export uses
    neither, so it works and equals the checkpoint's own encoder output."""
    import numpy as np
    import transformers

    from pruneofa.core.runtime import exact_engine
    from pruneofa.exporter import ExportConfig, export_model

    folder = make_model("bert", trained_for, "unstructured90")
    (result,) = export_model(
        str(folder),
        ExportConfig(
            targets=["openvino"], task="feature-extraction", output=tmp_path / "fe", parity_samples=4
        ),
        quiet=True,
    )
    assert result.manifest.parity.passed and result.manifest.export.task == "feature-extraction"
    ids = np.array([[2, 40, 41, 42, 3]])
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    encoder = transformers.AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        expected = encoder(**{k: torch.from_numpy(v) for k, v in feed.items()}).last_hidden_state.numpy()
    (got,) = exact_engine(result.output / "openvino_model.xml", ("last_hidden_state",))(feed)
    np.testing.assert_allclose(got, expected, atol=1e-4)
