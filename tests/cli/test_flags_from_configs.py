"""The command line is a view of the config classes: every flag, its default and its help come from one
config field, so a command-line default can never differ from the Python API's."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from pruneofa.calibration.config import CalibrateConfig
from pruneofa.cli import all_commands, build_parser
from pruneofa.commands import QATExportOptions, RunOptions
from pruneofa.core.cliargs import config_from_args, field_default, field_help, flag_of
from pruneofa.deploy.config import BenchmarkConfig, PackageConfig, ServeConfig, ValidateConfig
from pruneofa.exporter.config import ExportConfig
from pruneofa.quickstart import QuickstartOptions
from pruneofa.training.config import HeadWarmupOptions, TrainConfig

# command → (the shortest valid command line, the configs its flags come from, their required values)
COMMANDS = {
    "export": (["--target", "openvino"], {ExportConfig: {"targets": ["openvino"]}}),
    "calibrate": (["x", "--task", "sst2", "--data", "d"], {CalibrateConfig: {"task": "sst2", "data": "d"}}),
    "validate": (["x", "--reference", "r", "--data", "d"], {ValidateConfig: {"reference": "r", "data": "d"}}),
    "benchmark": (["x"], {BenchmarkConfig: {}}),
    "serve": (["x"], {ServeConfig: {}}),
    "package": (["x", "--format", "ovms"], {PackageConfig: {"format": "ovms"}}),
    "teacher": ([], {TrainConfig: {}, HeadWarmupOptions: {}}),
    "prune": (["m", "--teacher", "t", "--corpus", "c", "--recipe", "r"], {TrainConfig: {}}),
    "finetune": (["m", "--task", "sst2", "--data", "d"], {TrainConfig: {}}),
    "qat": (["m", "--task", "sst2", "--data", "d"], {TrainConfig: {}, QATExportOptions: {}}),
    "run": (["--recipe", "r"], {RunOptions: {"recipe": "r"}}),
    "quickstart": ([], {QuickstartOptions: {}}),
}
# Budget fields a command leaves out because they do nothing there (no SQuAD windows in prune, no masking
# in a task stage): they must be absent, not listed and ignored.
SKIPPED = {"prune": {"stride"}, "finetune": {"mlm_probability"}, "qat": {"mlm_probability"}}


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def test_every_command_is_covered():
    assert set(COMMANDS) | {"info"} == {c.name for c in all_commands()}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_defaults_given_nowhere_but_the_config(name):
    argv, configs = COMMANDS[name]
    args = build_parser().parse_args([name, *argv])
    for config, required in configs.items():
        assert config_from_args(config, args) == config(**required)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_field_is_a_flag_with_the_configs_default_in_its_help(name):
    _, configs = COMMANDS[name]
    # (deprecated aliases share their field's dest and are hidden from --help)
    actions = {a.dest: a for a in _subparser(name)._actions if a.help is not argparse.SUPPRESS}
    for config in configs:
        for field, info in config.model_fields.items():
            if field in SKIPPED.get(name, ()):
                assert field not in actions
                continue
            action = actions[field]
            assert flag_of(field, info) in action.option_strings
            assert action.default is argparse.SUPPRESS, f"--{field} holds a default of its own"
            assert action.help == field_help(info)
            value = field_default(info)
            if value not in (None, False) and not info.is_required():
                assert "default" in action.help


def test_calibrate_min_agreement_is_one_number():
    """The case that started this: 0.95 on the command line and 0.90 in the config."""
    args = build_parser().parse_args(["calibrate", "x", "--task", "sst2", "--data", "d"])
    assert (
        config_from_args(CalibrateConfig, args).min_agreement
        == CalibrateConfig.model_fields["min_agreement"].default
    )
    assert f"(default {CalibrateConfig.model_fields['min_agreement'].default})" in _subparser(
        "calibrate"
    ).format_help().replace("\n", " ").replace("  ", " ")


# --min-agreement meant two things: output parity (export, calibrate) and agreement on a data set (validate).
AGREEMENT_FLAGS = {
    "export": "--min-parity-agreement",
    "calibrate": "--min-parity-agreement",
    "validate": "--min-label-agreement",
}


@pytest.mark.parametrize("name", sorted(AGREEMENT_FLAGS))
def test_agreement_flags_have_one_meaning_each(name, capsys):
    argv, configs = COMMANDS[name]
    (config,) = configs
    flag = AGREEMENT_FLAGS[name]
    args = build_parser().parse_args([name, *argv, flag, "0.5"])
    assert config_from_args(config, args).min_agreement == 0.5
    assert capsys.readouterr().err == ""
    assert flag in _subparser(name).format_help()
    assert "--min-agreement " not in _subparser(name).format_help()  # the old name is hidden


@pytest.mark.parametrize("name", sorted(AGREEMENT_FLAGS))
def test_old_min_agreement_still_works_and_warns(name, capsys):
    argv, configs = COMMANDS[name]
    (config,) = configs
    args = build_parser().parse_args([name, *argv, "--min-agreement", "0.25"])
    assert config_from_args(config, args).min_agreement == 0.25
    err = capsys.readouterr().err
    assert err == f"pruneofa: warning: --min-agreement is deprecated; use {AGREEMENT_FLAGS[name]}\n"


def test_list_flags_parse_and_refuse_unknown_values(capsys):
    args = build_parser().parse_args(["benchmark", "f", "--batch", "1,4", "--vs", "torch,onnxruntime"])
    config = config_from_args(BenchmarkConfig, args)
    assert config.batches == [1, 4] and config.vs == ["torch", "onnxruntime"]
    assert (
        config_from_args(BenchmarkConfig, build_parser().parse_args(["benchmark", "f", "--vs", "none"])).vs
        == []
    )
    with pytest.raises(SystemExit):
        build_parser().parse_args(["benchmark", "f", "--vs", "tensorflow"])
    assert "unknown value 'tensorflow'" in capsys.readouterr().err


def test_help_imports_no_heavy_library():
    """The front imports no heavy library to build its flags (that is what keeps --help fast)."""
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from pruneofa.cli import main; main(['--help'])"],
        capture_output=True,
        text=True,
    )
    assert "export" in result.stdout
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pruneofa.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'transformers', 'openvino', 'onnxruntime', 'nncf') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
    )
    assert probe.stdout.strip() == "[]", probe.stdout + probe.stderr
