"""No code from a model folder, ever (issue 17): a folder whose config or tokenizer maps to Python it ships
is refused at once with one line, transformers is never allowed to ask on stdin (where answering "y" ran
the folder's code, and a silent CI stdin hung), and every transformers load in the code base says
``trust_remote_code=False``."""

from __future__ import annotations

import ast
import builtins
import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pruneofa.core import modelio
from pruneofa.core.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "exporter", "calibration", "deploy", "training", "kernels", "pruneofa")

# What the folder's code would do if it ever ran: leave a mark beside itself.
PAYLOAD = "import pathlib\npathlib.Path(__file__).with_name('CODE_RAN').write_text('yes')\n"


def _custom_model(folder: Path, model_type: str = "evilbert") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "model_type": model_type,
        "architectures": ["EvilModel"],
        "auto_map": {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"},
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "evil.py").write_text(
        PAYLOAD + "from transformers import PretrainedConfig\n\n"
        "class EvilConfig(PretrainedConfig):\n    model_type = 'evilbert'\n"
    )
    (folder / "model.safetensors").write_bytes(b"")
    return folder


@pytest.fixture
def answer_yes(monkeypatch):
    """stdin that would say "y": a load that asks is caught (the test fails) and the code never runs."""
    asked: list[str] = []

    def fake_input(prompt: str = "") -> str:
        asked.append(prompt)
        return "y"

    monkeypatch.setattr(builtins, "input", fake_input)
    return asked


def test_a_folder_with_its_own_code_is_refused_at_once(tmp_path, answer_yes):
    folder = _custom_model(tmp_path / "m")
    with pytest.raises(InputError) as info:
        modelio.resolve_model_source(str(folder))
    message = str(info.value)
    assert message.startswith(f"unsupported model {folder}") and "never runs code" in message
    assert "\n" not in message and not answer_yes and not (folder / "CODE_RAN").exists()


def test_transformers_never_asks_even_without_the_early_check(tmp_path, answer_yes):
    """``load_config`` alone (a hub id takes this path): trust_remote_code=False, so no prompt, no code."""
    folder = _custom_model(tmp_path / "m")
    source = modelio.ModelSource(str(folder), True, "m")
    with pytest.raises(InputError, match="unsupported model"):
        modelio.load_config(source)
    assert not answer_yes and not (folder / "CODE_RAN").exists()


def test_a_tokenizer_with_its_own_code_is_refused(tmp_path, make_model, answer_yes):
    folder = tmp_path / "m"
    shutil.copytree(make_model("bert", "text-classification"), folder)
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    settings.update(tokenizer_class="EvilTokenizer", auto_map={"AutoTokenizer": ["evil.EvilTokenizer", None]})
    (folder / "tokenizer_config.json").write_text(json.dumps(settings))
    (folder / "evil.py").write_text(PAYLOAD)
    with pytest.raises(InputError, match="tokenizer_config.json maps tokenizer 'EvilTokenizer'"):
        modelio.resolve_model_source(str(folder))
    source = modelio.ModelSource(str(folder), True, "m")
    with contextlib.suppress(InputError):  # transformers may fall back to tokenizer.json: fine, no code ran
        modelio.load_tokenizer(source)
    assert not answer_yes and not (folder / "CODE_RAN").exists()


def test_a_supported_model_type_with_an_auto_map_loads_without_its_code(tmp_path, make_model, answer_yes):
    folder = tmp_path / "m"
    shutil.copytree(make_model("bert", "text-classification"), folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "evil.py").write_text(PAYLOAD)
    source = modelio.resolve_model_source(str(folder))
    assert modelio.load_config(source).model_type == "bert"
    assert not answer_yes and not (folder / "CODE_RAN").exists()


def test_an_exported_folder_with_its_own_code_is_not_run_by_deploy_load(tmp_path, export_once, answer_yes):
    from pruneofa.deploy.pipeline import load

    folder = tmp_path / "exported"
    shutil.copytree(export_once("bert", "text-classification")["onnx"].output, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="evilbert", auto_map={"AutoConfig": "evil.EvilConfig"})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "evil.py").write_text(PAYLOAD)
    with pytest.raises(InputError):
        load(folder)
    assert not answer_yes and not (folder / "CODE_RAN").exists()


def test_the_command_with_a_silent_open_stdin_answers_at_once(tmp_path):
    """A CI job's stdin is open and silent: the command must not wait on it (it used to hang)."""
    folder = _custom_model(tmp_path / "m")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "pruneofa.cli", "export", str(folder), "--target", "onnx"]
    command += ["--output", str(tmp_path / "out")]
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        try:
            out, err = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail("the command waited on stdin")
    assert process.returncode == 2, err
    assert "unsupported model" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (folder / "CODE_RAN").exists() and not (tmp_path / "out").exists()


def _loads_without_trust_remote_code_false() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                if node.func.attr != "from_pretrained":
                    continue
                keywords = {k.arg: k.value for k in node.keywords}
                value = keywords.get("trust_remote_code")
                if not (isinstance(value, ast.Constant) and value.value is False):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_transformers_load_says_trust_remote_code_false():
    assert _loads_without_trust_remote_code_false() == []
