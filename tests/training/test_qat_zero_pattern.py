"""A QAT model's INT8 export keeps *every* pruned matrix's zeros, position by position against the mask
of the sparse model QAT started from; and a QAT model whose zeros regressed is caught, where the old
check (the sparsest INT8 matrix is at least 90 % zeros) passed as long as one matrix stayed sparse."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pruneofa.exporter.qat_export import stored_int8_weights
from pruneofa.exporter.sparsity import pattern_problems


def _masks(model) -> dict[str, np.ndarray]:
    """The pruned positions of every encoder Linear weight (the sparse model QAT starts from)."""
    return {
        f"{name}.weight": (module.weight == 0).numpy()
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and ".encoder." in f".{name}"
    }


def _sparsest_share(xml: str) -> float:
    """The check this test replaces: the zero share of the sparsest INT8 matrix of the IR."""
    import openvino as ov

    model = ov.Core().read_model(xml)
    shares = [
        float((np.asarray(op.get_data()) == 0).mean())
        for op in model.get_ops()
        if op.get_type_name() == "Constant"
        and op.get_element_type() == ov.Type.i8
        and op.get_output_shape(0)[0] >= 32
    ]
    return max(shares)


@pytest.fixture(scope="module")
def qat_exports(make_model, tokenizers_dir, tmp_path_factory):
    """One NNCF-quantized (QAT-ready) sparse BERT exported twice: as it is, and with the zeros of all
    but one encoder matrix regressed to non-zero values (what QAT without its gradient mask would do)."""
    import transformers

    from pruneofa.core.cpu import detect_cpu
    from pruneofa.core.qatfolder import save_qat_model
    from pruneofa.core.runtime import load_parity_samples
    from pruneofa.exporter import export_model, make_config
    from pruneofa.training.qat import quantize_for_training
    from pruneofa.training.recipe import load_recipe

    source = make_model("bert", "text-classification", "unstructured90")
    tokenizer = tokenizers_dir["bert"]
    sparse = transformers.AutoModelForSequenceClassification.from_pretrained(source).eval()
    masks = _masks(sparse)
    sentences = load_parity_samples()["sentences"]
    batches = [
        dict(tokenizer(sentences[i : i + 8], padding=True, return_tensors="pt")) for i in range(0, 24, 8)
    ]
    quantized, _ = quantize_for_training(
        sparse, batches, load_recipe("qat-two-stage").qat, detect_cpu().int8_saturation_risk
    )
    root = tmp_path_factory.mktemp("qat-pattern")
    folders = {}
    for kind in ("kept", "regressed"):
        if kind == "regressed":
            modules = dict(quantized.named_modules())
            with torch.no_grad():
                for name in list(masks)[1:]:  # every matrix but the first loses its zeros
                    weight = modules[name.removesuffix(".weight")].weight
                    scale = weight.abs().amax(dim=1, keepdim=True) / 2  # well inside the INT8 range
                    weight.copy_(torch.where(torch.from_numpy(masks[name]), scale, weight))
        qat_folder = root / f"{kind}-qat"
        qat_folder.mkdir()
        save_qat_model(quantized, qat_folder)
        tokenizer.save_pretrained(qat_folder)
        # The regressed model is corrupted on purpose (large values at 11 matrices' former zeros, its
        # quantizer ranges calibrated on the sparse model), and what this fixture checks is the stored
        # zeros, not parity: its export parity failed once in a full-suite run (label agreement 75 % on
        # 8 inputs, 2026-12-02) and passed in isolation and with tests/training, so the gate is off for it.
        gate = {"min_agreement": 0.0} if kind == "regressed" else {}
        config = make_config(
            targets=["openvino"], output=root / kind, convert_tokenizer=False, parity_samples=8, **gate
        )
        (result,) = export_model(str(qat_folder), config, quiet=True)
        folders[kind] = result.output / "openvino_model.xml"
    return masks, folders


def test_every_pruned_matrix_keeps_its_zeros_in_the_int8_export(qat_exports):
    masks, folders = qat_exports
    stored = stored_int8_weights("openvino", folders["kept"])
    assert len(masks) == 12 and all(stored[name].precision == "int8" for name in masks)
    assert pattern_problems(masks, stored) == []


def test_a_regression_in_the_qat_models_zeros_is_caught(qat_exports):
    masks, folders = qat_exports
    stored = stored_int8_weights("openvino", folders["regressed"])
    assert _sparsest_share(str(folders["regressed"])) >= 0.9  # the old check: still passes
    problems = pattern_problems(masks, stored)
    assert len(problems) == 11, problems  # every regressed matrix, named; the intact one is not
    first = list(masks)[0]
    assert not any(p.startswith(f"{first}:") for p in problems)
    assert all("pruned weights are non-zero" in p for p in problems)
