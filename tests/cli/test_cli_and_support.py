"""CLI start-up stays light; the support table and task inference behave."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pruneofa.core.errors import InputError
from pruneofa.core.support import ARCHITECTURES, EXPORT_TASKS, support_table, task_from_architecture


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys; from pruneofa.cli import build_parser; build_parser(); "
        "heavy = [m for m in ('torch', 'transformers', 'openvino', 'onnx', 'nncf') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_export_help_prints_the_support_table():
    result = subprocess.run(
        [sys.executable, "-m", "pruneofa.cli", "export", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    for name in list(ARCHITECTURES) + list(EXPORT_TASKS):
        assert name in result.stdout
    assert "OVModelForSequenceClassification" in result.stdout


def test_python_dash_m_pruneofa_runs_the_tool():
    # For environments without the console script (a bare GPU image with the repository on PYTHONPATH).
    result = subprocess.run(
        [sys.executable, "-m", "pruneofa", "prune", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "--recipe" in result.stdout


def test_no_command_prints_help_and_exits_2():
    result = subprocess.run(
        [sys.executable, "-m", "pruneofa.cli"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "export" in result.stdout


@pytest.mark.parametrize(
    "architecture,task",
    [
        ("BertForSequenceClassification", "text-classification"),
        ("DistilBertForQuestionAnswering", "question-answering"),
        ("RobertaForTokenClassification", "token-classification"),
        ("BertForMaskedLM", "fill-mask"),
        ("BertForPreTraining", "fill-mask"),
        ("BertModel", "feature-extraction"),
        ("BertForMultipleChoice", None),
    ],
)
def test_task_from_architecture(architecture, task):
    assert task_from_architecture(architecture) == task


def test_resolve_task_allows_feature_extraction_from_any_head():
    from types import SimpleNamespace

    from pruneofa.core.modelio import resolve_task

    config = SimpleNamespace(architectures=["BertForMaskedLM"])
    assert resolve_task(config, None).name == "fill-mask"
    assert resolve_task(config, "feature-extraction").name == "feature-extraction"
    with pytest.raises(InputError, match="cannot infer the task"):
        resolve_task(SimpleNamespace(architectures=None), None)


def test_support_table_lists_every_task():
    table = support_table()
    assert all(task in table for task in EXPORT_TASKS)
