"""``--max-drop`` is enforced: after NNCF's accuracy control the INT8 drop is measured again and held to
the limit; the layers kept in float are named; a limit no reverting can reach exits 1, nothing written."""

from __future__ import annotations

import re

from calibration_models import margin_export_fixture, outlier_export_fixture  # noqa: F401  (fixtures)

from pruneofa.cli import main
from pruneofa.core.manifest import read_manifest


def _argv(model, sst2_dir, out, max_drop: str) -> list[str]:
    return [
        "calibrate",
        str(model),
        "--task",
        "sst2",
        "--data",
        str(sst2_dir),
        "--samples",
        "8",
        "--max-drop",
        max_drop,
        "--eval-data",
        str(sst2_dir),
        "--eval-limit",
        "16",
        "--output",
        str(out),
    ]


def test_accuracy_control_keeps_what_int8_cannot_represent_in_float(
    outlier_export, sst2_dir, tmp_path, capsys
):
    """An activation outlier in the queries (calibration_models.outlier_export) costs plain INT8 labels;
    with --max-drop 1, accuracy control must keep layers in float to reach the limit, and says which."""
    out = tmp_path / "int8"
    # Accuracy control holds the metric on the 16 evaluation examples, not label agreement on the 48
    # parity inputs (half of them random tokens, near this model's decision boundary): in one full-suite
    # run the reverted model agreed on 85 % of those; the parity bound is lowered so that this test is
    # about --max-drop alone.
    assert main([*_argv(outlier_export, sst2_dir, out, "1"), "--min-parity-agreement", "0.75"]) == 0
    printed = capsys.readouterr().out
    manifest = read_manifest(out)
    control = manifest.calibration.accuracy_control
    assert control.fp32_metric == 100.0  # the margin model's labels
    assert control.ptq_metric is not None and control.ptq_metric < control.fp32_metric - 1.0  # had to revert
    assert control.passed and control.fp32_metric - control.int8_metric <= 1.0
    attention = [name for name in control.kept_in_float if name.endswith("(attention, activations)")]
    assert attention, control.kept_in_float  # the query-key MatMuls the outlier feeds
    assert f"kept in floating point: {', '.join(control.kept_in_float)}" in printed
    assert f"(before accuracy control {control.ptq_metric:.2f})" in printed
    assert manifest.parity.passed  # the (lowered) parity gate holds too


def test_a_drop_no_reverting_can_reach_exits_1_with_nothing_written(
    margin_export, sst2_dir, tmp_path, capsys, monkeypatch
):
    """Deliberately impossible, with a validation function under the test's control: it scores the FP32
    model as it is and every other model (any INT8 one, however many layers accuracy control reverts) 50
    points lower, both inside NNCF's accuracy control (the FP32 model is the first one NNCF hands it) and
    in calibrate's own measurement of the INT8 file. Accuracy control reverts layer after layer and
    gives up; calibrate must then refuse the model: exit 1, the reason on stderr, nothing written."""
    from pruneofa.calibration import api

    real_validation_fn, real_evaluate = api._validation_fn, api._evaluate
    fp32_file = (margin_export / "openvino_model.xml").resolve()

    def penalised_validation_fn(task, items, labels, log=None):
        validate = real_validation_fn(task, items, labels, log)
        first = []  # the FP32 model (NNCF validates it before any quantized one); held, so ids stay unique

        def score(model, subset):
            first[:] = first or [model]
            return validate(model, subset) - (0.0 if model is first[0] else 0.5)

        return score

    def penalised_evaluate(runner, task, items, labels):
        metric = real_evaluate(runner, task, items, labels)
        return metric - (0.0 if runner.model_file.resolve() == fp32_file else 50.0)

    monkeypatch.setattr(api, "_validation_fn", penalised_validation_fn)
    monkeypatch.setattr(api, "_evaluate", penalised_evaluate)
    out = tmp_path / "int8"
    assert main(_argv(margin_export, sst2_dir, out, "1")) == 1
    err = capsys.readouterr().err
    assert "rejected, nothing written: accuracy dropped by 50.00 points" in err
    kept = re.search(r"> --max-drop 1 after accuracy control kept (\d+) layers in float", err)
    assert kept and int(kept[1]) > 0  # it did revert layers, and it was not enough
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".int8")]


def test_accuracy_control_that_never_ran_is_not_reported_as_passed(
    margin_export, sst2_dir, tmp_path, capsys, monkeypatch
):
    """If the back-end quantizes without ever evaluating the model (here: a quantizer that drops the
    validation set and runs plain PTQ), there is no accuracy control to report: exit 1, nothing written."""
    from pruneofa.calibration import quantize

    real = quantize.quantize_openvino

    def without_accuracy_control(*args, validation=None, **kwargs):
        return real(*args, validation=None, **kwargs)

    monkeypatch.setattr(quantize, "quantize_openvino", without_accuracy_control)
    out = tmp_path / "int8"
    assert main(_argv(margin_export, sst2_dir, out, "1")) == 1
    assert "accuracy control never evaluated the model" in capsys.readouterr().err
    assert not out.exists()
