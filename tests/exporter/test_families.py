"""Every encoder family optimum-intel's OpenVINO exporter supports: the table agrees with optimum-intel,
a tiny random model of each exports with parity and loads in ``OVModelFor*``, a representative subset
calibrates and validates, and what is not supported is refused in one line naming what is."""

from __future__ import annotations

import copy
import inspect

import numpy as np
import pytest
import torch
import transformers
from conftest import _CLASS_PREFIX, ARCHS, FAMILIES, sparsify, tiny_config

from pruneofa.cli import main
from pruneofa.core.errors import InputError
from pruneofa.core.support import ARCHITECTURES, EXPORT_TASKS, prunable_architectures, task_from_architecture
from pruneofa.exporter.graph import input_names
from pruneofa.exporter.shrink import shrink_model

PRUNABLE_FAMILIES = [arch for arch in FAMILIES if ARCHITECTURES[arch].prunable]
LAYOUTLESS_FAMILIES = [arch for arch in FAMILIES if not ARCHITECTURES[arch].prunable]
# One of each kind beyond BERT/RoBERTa/DistilBERT (calibrated in tests/calibration): shared layers with
# a SentencePiece tokenizer, disentangled relative attention, relative position bias without token types.
CALIBRATED_FAMILIES = ["albert", "deberta-v2", "mpnet"]


def _optimum_intel_encoder_families() -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """optimum-intel's encoder-only text families for pruneofa's tasks: model types whose OpenVINO export
    config is a text encoder registered for text-classification (decoders, seq2seq models and the text
    towers of CLIP-like models are not), split into those the installed transformers may export and
    those optimum-intel refuses with it (its MIN/MAX_TRANSFORMERS_VERSION bounds)."""
    from optimum.exporters.openvino.config import TextEncoderOpenVINOConfig
    from optimum.exporters.tasks import TasksManager
    from optimum.intel.utils.import_utils import is_transformers_version
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    supported, refused = {}, {}
    for model_type in CONFIG_MAPPING_NAMES:
        try:
            registered = TasksManager.get_supported_tasks_for_model_type(
                model_type, exporter="openvino", library_name="transformers"
            )
        except KeyError:
            continue
        if "text-classification" not in registered:
            continue
        config_class = registered["text-classification"].func
        if not issubclass(config_class, TextEncoderOpenVINOConfig):
            continue
        # read as optimum-intel's convert.py reads them (either may be absent)
        low = getattr(config_class, "MIN_TRANSFORMERS_VERSION", None)
        high = getattr(config_class, "MAX_TRANSFORMERS_VERSION", None)
        if (low and is_transformers_version("<", str(low))) or (
            high and is_transformers_version(">", str(high))
        ):
            refused[model_type] = f"transformers {low}..{high}"
            continue
        supported[model_type] = tuple(task for task in EXPORT_TASKS if task in registered)
    return supported, refused


def test_support_table_is_optimum_intels_encoder_families():
    from importlib.metadata import version

    supported, refused = _optimum_intel_encoder_families()
    where = f"optimum-intel {version('optimum-intel')}, transformers {transformers.__version__}"
    missing = sorted(set(supported) - set(ARCHITECTURES))
    assert not missing, (
        f"{where} exports encoder families {missing} that pruneofa lacks: add each to ARCHITECTURES in "
        "core/support.py (tasks, token_type_ids, layout or no_layout), to FAMILIES in tests/conftest.py and "
        "to docs/export.md"
    )
    extra = sorted(set(ARCHITECTURES) - set(supported))
    assert not extra, f"pruneofa lists {extra}, which {where} does not export ({refused}); remove them"
    wrong_tasks = {
        t: (ARCHITECTURES[t].tasks, supported[t]) for t in supported if ARCHITECTURES[t].tasks != supported[t]
    }
    assert not wrong_tasks, f"tasks differ from {where} (pruneofa, optimum-intel): {wrong_tasks}"
    # Families optimum-intel registers but cannot export with this transformers stay out until it can.
    assert set(refused).isdisjoint(ARCHITECTURES)


def test_every_family_has_a_tiny_model_in_the_test_matrix():
    assert not set(ARCHS) & set(FAMILIES)
    assert set(ARCHS) | set(FAMILIES) == set(ARCHITECTURES)
    assert set(PRUNABLE_FAMILIES) | {"bert", "distilbert", "roberta"} == set(prunable_architectures())


@pytest.mark.parametrize(
    "arch,type_vocab_size",
    [(arch, None) for arch in ARCHITECTURES] + [("deberta", 2), ("deberta-v2", 2)],
)
def test_token_type_ids_are_what_optimum_intel_feeds(arch, type_vocab_size):
    from optimum.exporters.tasks import TasksManager

    config = tiny_config(arch, 400)
    if type_vocab_size is not None:
        config.type_vocab_size = type_vocab_size
    spec = ARCHITECTURES[arch]
    constructor = TasksManager.get_supported_tasks_for_model_type(
        arch, exporter="openvino", library_name="transformers"
    )["text-classification"]
    expected = list(constructor(config).inputs)
    assert input_names(spec, config) == expected
    forward = getattr(transformers, _CLASS_PREFIX[arch] + "Model").forward
    assert set(expected) <= set(inspect.signature(forward).parameters)
    # without a config (the PyTorch reference runner), the family's widest input set
    assert set(expected) <= set(input_names(spec))


@pytest.mark.parametrize("arch", list(FAMILIES))
def test_family_exports_with_parity_and_loads_in_optimum_intel(export_once, make_model, arch):
    import onnx
    import optimum.intel

    results = export_once(arch, "text-classification")
    config = transformers.AutoConfig.from_pretrained(make_model(arch, "text-classification"))
    names = input_names(ARCHITECTURES[arch], config)
    for target, result in results.items():
        manifest = result.manifest
        assert manifest.source.model_type == arch and manifest.export.inputs == names, target
        assert manifest.parity.passed and manifest.parity.samples == 24, target
        assert all(out.max_abs_error < 1e-4 for out in manifest.parity.outputs), target
        assert manifest.sparsity.passed and manifest.sparsity.position_exact, target
        assert manifest.sparsity.linear_numel > 0, target
    onnx_inputs = onnx.load(str(results["onnx"].output / "model.onnx")).graph.input
    assert [i.name for i in onnx_inputs] == names

    folder = results["openvino"].output
    ov_model = optimum.intel.OVModelForSequenceClassification.from_pretrained(
        folder, ov_config={"INFERENCE_PRECISION_HINT": "f32"}
    )
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    inputs = tokenizer(["The movie was a delight.", "Terrible."], padding=True, return_tensors="pt")
    reference = transformers.AutoModelForSequenceClassification.from_pretrained(
        make_model(arch, "text-classification")
    ).eval()
    with torch.no_grad():
        expected = reference(**inputs).logits.numpy()
    np.testing.assert_allclose(np.asarray(ov_model(**inputs).logits), expected, atol=1e-4)


@pytest.mark.parametrize("arch", PRUNABLE_FAMILIES)
@pytest.mark.parametrize("pattern", ["heads", "neurons"])
def test_family_layout_prunes_and_shrinks_exactly(arch, pattern):
    torch.manual_seed(0)
    model_class = getattr(transformers, _CLASS_PREFIX[arch] + "ForSequenceClassification")
    model = model_class(tiny_config(arch, 300)).eval()
    sparsify(model, pattern)
    shrunk = copy.deepcopy(model)
    report = shrink_model(shrunk, ARCHITECTURES[arch])
    generator = torch.Generator().manual_seed(7)
    inputs = {"input_ids": torch.randint(5, 300, (3, 11), generator=generator)}
    inputs["attention_mask"] = torch.ones(3, 11, dtype=torch.long)
    inputs["attention_mask"][0, 5:] = 0
    with torch.no_grad():
        np.testing.assert_allclose(shrunk(**inputs).logits.numpy(), model(**inputs).logits.numpy(), atol=1e-5)
    if pattern == "heads":
        assert [(r.heads_before, r.heads_after) for r in report.layers] == [(4, 2), (4, 2)]
    else:
        assert [(r.neurons_before, r.neurons_after) for r in report.layers] == [(64, 24), (64, 24)]


def _export(capsys, model, out, *extra: str) -> tuple[int, list[str]]:
    capsys.readouterr()  # drop what building the model printed (transformers' progress bars)
    code = main(["export", str(model), "--target", "openvino", "--output", str(out), *extra, "--quiet"])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("arch", LAYOUTLESS_FAMILIES)
def test_shrink_refuses_a_family_without_layout_in_one_line(make_model, tmp_path, capsys, arch):
    out = tmp_path / "out"
    code, err = _export(capsys, make_model(arch, "text-classification"), out, "--shrink")
    assert code == 2 and len(err) == 1 and not out.exists()
    assert f"export --shrink does not support {arch} ({ARCHITECTURES[arch].no_layout})" in err[0]
    assert ", ".join(prunable_architectures()) in err[0]


@pytest.mark.parametrize(
    "config_class,kwargs",
    [
        ("GPT2Config", dict(n_layer=1, n_head=2, n_embd=8, vocab_size=50, n_positions=16)),
        ("T5Config", dict(num_layers=1, num_heads=2, d_model=8, d_kv=4, d_ff=16, vocab_size=50)),
        # registered by optimum-intel, which refuses to export it with transformers 5
        ("XLMConfig", dict(n_layers=1, n_heads=2, emb_dim=8, vocab_size=50)),
    ],
)
def test_an_unsupported_architecture_is_one_line_naming_the_supported(tmp_path, capsys, config_class, kwargs):
    config = getattr(transformers, config_class)(**kwargs)
    folder = tmp_path / config.model_type
    transformers.AutoModel.from_config(config).save_pretrained(folder)
    out = tmp_path / "out"
    code, err = _export(capsys, folder, out)
    assert code == 2 and len(err) == 1 and not out.exists()
    assert f"unsupported architecture {config.model_type!r}" in err[0]
    assert ", ".join(ARCHITECTURES) in err[0]


def test_a_task_the_family_has_no_head_for_is_refused():
    from types import SimpleNamespace

    from pruneofa.core.modelio import resolve_task

    config = SimpleNamespace(model_type="esm", architectures=["EsmForTokenClassification"])
    with pytest.raises(InputError, match="esm has no question-answering head") as refused:
        resolve_task(config, "question-answering")
    assert "text-classification, token-classification, fill-mask, feature-extraction" in str(refused.value)
    assert resolve_task(config, "token-classification").name == "token-classification"


def test_electra_discriminator_is_not_taken_for_a_masked_lm():
    assert task_from_architecture("ElectraForPreTraining") is None
    assert task_from_architecture("ElectraForMaskedLM") == "fill-mask"
    assert task_from_architecture("AlbertForPreTraining") == "fill-mask"


@pytest.mark.parametrize("arch", CALIBRATED_FAMILIES)
def test_family_calibrates_and_validates(calibrate_once, export_once, make_model, sst2_dir, capsys, arch):
    fp32 = export_once(arch, "text-classification")["openvino"].output
    reference = make_model(arch, "text-classification")
    code = main(
        ["validate", str(fp32), "--reference", str(reference), "--data", str(sst2_dir), "--task", "sst2"]
    )
    out = capsys.readouterr().out
    assert code == 0 and "PASS" in out, out

    int8 = calibrate_once(arch, "text-classification", None, "openvino")
    assert int8.output.is_dir() and int8.manifest.source.model_type == arch
    code = main(
        [
            "validate",
            str(int8.output),
            "--reference",
            str(fp32),
            "--data",
            str(sst2_dir),
            "--min-label-agreement",
            "0.5",
            "--max-drop",
            "100",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "openvino INT8" in out, out


def test_prune_refuses_a_family_without_a_layer_layout(make_model, corpus, tmp_path, capsys):
    from pruneofa.cli import main

    albert = make_model("albert", "fill-mask")
    capsys.readouterr()  # the fixture's own output
    argv = [
        "prune",
        str(albert),
        "--teacher",
        str(albert),
        "--corpus",
        str(corpus),
        "--recipe",
        "pruneofa-90",
    ]
    assert main([*argv, "--steps", "2", "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "prune does not support albert" in err[0] and "bert" in err[0]
    assert not (tmp_path / "out").exists()
