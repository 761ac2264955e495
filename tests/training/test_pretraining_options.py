"""The pre-training stage as the paper runs it, and its cheaper options: the pooler carried and pruned,
reference-shaped learning-rate rewinding, frozen-encoder head warm-up, multi-source corpora, top-k and
hidden-state distillation through the bypassed decoder, and the 0 % control recipe."""

from __future__ import annotations

import pytest
import torch
import transformers
from conftest import TINY_TRAINING_BUDGET, tiny_config
from safetensors.torch import load_file

from pruneofa.cli import main
from pruneofa.core.manifest import read_manifest
from pruneofa.training.distill import DistillationConfig, kd_divergence, kd_loss, top_k_kd_divergence
from pruneofa.training.recipe import load_recipe
from pruneofa.training.schedule import CubicSchedule, rewinding_lr_factor, two_phase_lr_factor
from pruneofa.training.trainer import DistillationTrainer

BUDGET = TINY_TRAINING_BUDGET


def _weights(folder) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


# --- the pooler ---------------------------------------------------------------------------------------


def test_pooler_survives_teacher_preparation_and_is_pruned_to_the_recipe_sparsity(pipeline, make_model):
    base = _weights(make_model("bert", "feature-extraction"))
    teacher = _weights(pipeline / "mlm")
    # masked-LM classes drop the pooler; it is carried, unchanged (the MLM loss never reaches it)
    assert torch.equal(teacher["bert.pooler.dense.weight"], base["pooler.dense.weight"])
    sparse = read_manifest(pipeline / "sparse").training.layer_sparsity
    assert sparse["bert.pooler.dense"] == pytest.approx(0.9, abs=1 / 512)
    weight = _weights(pipeline / "sparse")["bert.pooler.dense.weight"]
    assert float((weight == 0).float().mean()) == pytest.approx(0.9, abs=1 / 512)
    # sparse transfer loads that pooler (not a new dense one) and keeps its pattern
    tuned = transformers.AutoModelForSequenceClassification.from_pretrained(pipeline / "sparse-sst2")
    assert not bool(((weight == 0) & (tuned.bert.pooler.dense.weight != 0)).any())
    transfer = read_manifest(pipeline / "sparse-sst2").training.layer_sparsity
    assert transfer["bert.pooler.dense"] == pytest.approx(0.9, abs=1 / 512)


def test_a_model_without_a_pooler_prunes_as_before(tmp_path, make_model, corpus):
    model = str(make_model("bert", "fill-mask"))  # BertForMaskedLM: no pooler in the checkpoint
    argv = ["prune", model, "--teacher", model, "--corpus", str(corpus), "--recipe", "pruneofa-90"]
    assert main([*argv, *BUDGET, "--output", str(tmp_path / "o")]) == 0
    layers = read_manifest(tmp_path / "o").training.layer_sparsity
    assert len(layers) == 12 and not any("pooler" in name for name in layers)


# --- learning-rate rewinding --------------------------------------------------------------------------


def test_rewinding_follows_the_reference_shape_at_known_steps():
    # 100 steps, ramp 0..40 with a mask update every 10, 5 warm-up steps. The decay clock skips the ramp
    # (40 steps) but for the position inside the current interval: factor = (60 - clock) / 55, capped at 1.
    schedule = CubicSchedule(final_sparsity=0.9, begin_step=0, end_step=40, frequency=10)
    factor = rewinding_lr_factor(schedule, total_steps=100, warmup_steps=5)
    assert [factor(s) for s in (0, 4)] == [0.0, 0.8]  # warm-up
    assert factor(5) == 1.0 and factor(9) == pytest.approx(51 / 55)  # decays at the run's slope…
    assert factor(10) == 1.0 and factor(19) == pytest.approx(51 / 55)  # …and rewinds at each update
    assert factor(39) == pytest.approx(51 / 55)
    assert factor(40) == 1.0 and factor(70) == pytest.approx(30 / 55) and factor(100) == 0.0  # then to 0
    assert all(factor(s) >= 51 / 55 for s in range(5, 40))  # near the peak all through the ramp


def test_rewinding_before_a_late_ramp_continues_the_same_decay():
    schedule = CubicSchedule(final_sparsity=0.9, begin_step=20, end_step=60, frequency=20)
    factor = rewinding_lr_factor(schedule, total_steps=100, warmup_steps=0)
    # clock: t before the ramp, 20 + (t - 20) % 20 in it, t - 40 after; factor = (60 - clock) / 60
    assert factor(10) == pytest.approx(50 / 60) and factor(20) == pytest.approx(40 / 60)
    assert factor(39) == pytest.approx(21 / 60) and factor(40) == pytest.approx(40 / 60)
    assert factor(60) == pytest.approx(40 / 60) and factor(99) == pytest.approx(1 / 60)


def test_builtin_paper_recipes_rewind_and_use_the_reference_learning_rate():
    for name in ("pruneofa-85", "pruneofa-90", "pruneofa-0", "structured-50"):
        recipe = load_recipe(name)
        assert recipe.optimizer.lr_rewinding and recipe.optimizer.learning_rate == 5e-5, name
        assert recipe.distillation.top_k is None and recipe.distillation.pooler > 0, name
    control = load_recipe("pruneofa-0")
    assert control.schedule.final_sparsity == 0.0
    assert control.schedule == load_recipe("pruneofa-90").schedule.model_copy(update={"final_sparsity": 0.0})


def test_control_recipe_runs_the_pipeline_and_prunes_nothing(tmp_path, pipeline, corpus):
    model = str(pipeline / "mlm")
    argv = ["prune", model, "--teacher", model, "--corpus", str(corpus), "--recipe", "pruneofa-0"]
    assert main([*argv, *BUDGET, "--output", str(tmp_path / "o")]) == 0
    manifest = read_manifest(tmp_path / "o")
    assert all(value < 0.01 for value in manifest.training.layer_sparsity.values())
    assert any("kd_loss" in entry for entry in manifest.training.loss_curve)


# --- teacher preparation: the new head first, encoder frozen ------------------------------------------


def test_frozen_encoder_head_warmup_leaves_encoder_weights_unchanged(tmp_path, make_model, corpus):
    base_folder = make_model("bert", "feature-extraction")
    out = tmp_path / "head-only"
    argv = ["teacher", str(base_folder), "--corpus", str(corpus), "--head-warmup", "1", *BUDGET]
    assert main([*argv, "--output", str(out)]) == 0
    before = transformers.AutoModel.from_pretrained(base_folder).state_dict()
    after = transformers.AutoModel.from_pretrained(out).state_dict()
    assert before.keys() == after.keys()
    for name, value in before.items():  # every encoder and embedding weight (the tied decoder), the pooler
        assert torch.equal(after[name], value), name
    transformers.set_seed(0)  # the command's seed: the same freshly initialised head it started from
    start = transformers.AutoModelForMaskedLM.from_pretrained(base_folder).state_dict()
    trained = transformers.AutoModelForMaskedLM.from_pretrained(out).state_dict()
    head = [k for k in trained if k.startswith("cls.predictions.transform.")]
    assert head and all(not torch.equal(trained[k], start[k]) for k in head)  # the head learned
    assert read_manifest(out).metrics["head_warmup_steps"] == 6.0


def test_after_the_head_warmup_the_whole_model_learns(tmp_path, make_model, corpus):
    base_folder = make_model("bert", "feature-extraction")
    base = _weights(base_folder)
    out = tmp_path / "two-phase"
    argv = ["teacher", str(base_folder), "--corpus", str(corpus), "--head-warmup", "0.5", *BUDGET]
    assert main([*argv, "--head-learning-rate", "0.01", "--output", str(out)]) == 0
    trained = _weights(out)
    assert not torch.equal(
        trained["bert.encoder.layer.0.output.dense.weight"], base["encoder.layer.0.output.dense.weight"]
    )
    rates = [entry["learning_rate"] for entry in read_manifest(out).training.loss_curve]
    assert max(rates[:3]) > 1e-3 > max(rates[3:])  # head phase at its own rate, then the model's 5e-5


def test_two_phase_learning_rate():
    factor = two_phase_lr_factor(first_steps=10, total_steps=110, warmup_ratio=0.1, first_scale=20.0)
    assert factor(0) == 20.0 and factor(5) == pytest.approx(20.0 * 5 / 9)  # 1 warm-up step, then decay
    assert factor(10) == pytest.approx(0.1) and factor(19) == 1.0  # the whole model warms up over 10
    assert factor(60) == pytest.approx(50 / 90) and factor(110) == 0.0


# --- corpora ------------------------------------------------------------------------------------------


def test_several_corpus_sources_are_mixed_in_proportion_and_never_joined(tmp_path, tokenizers_dir):
    from pruneofa.training.datasets import corpus_sources, mlm_blocks

    tokenizer = tokenizers_dir["bert"]
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("the movie was a delight\n" * 60)
    b.write_text("a fox jumped over the river\n" * 20)
    assert corpus_sources([f"{a},{b}", str(a)]) == [str(a), str(b)]  # comma-separated, repeated, deduped
    only_a = len(mlm_blocks(str(a), tokenizer, seq_len=16))
    only_b = len(mlm_blocks(str(b), tokenizer, seq_len=16))
    mixed = mlm_blocks([str(a), str(b)], tokenizer, seq_len=16, seed=0)
    assert len(mixed) == only_a + only_b  # every block of every source once
    movie, fox = tokenizer.convert_tokens_to_ids(["mov", "##x"])  # a token of each source only
    assert all(not (movie in item["input_ids"] and fox in item["input_ids"]) for item in mixed.items)
    assert {movie in item["input_ids"] for item in mixed.items} == {True, False}
    again = mlm_blocks(f"{a},{b}", tokenizer, seq_len=16, seed=0, limit=10)
    assert [i["input_ids"] for i in again.items] == [
        i["input_ids"] for i in mixed.items[:10]
    ]  # seeded sample
    assert mixed.items != mlm_blocks([str(a), str(b)], tokenizer, seq_len=16, seed=1).items


def test_prune_and_teacher_take_several_corpus_flags(tmp_path, pipeline, corpus):
    other = tmp_path / "other.txt"
    other.write_text("a fox jumped over the river and the movie was a delight\n" * 40)
    model = str(pipeline / "mlm")
    argv = ["prune", model, "--teacher", model, "--corpus", str(corpus), "--corpus", str(other)]
    assert main([*argv, "--recipe", "pruneofa-90", *BUDGET, "--output", str(tmp_path / "o")]) == 0
    assert read_manifest(tmp_path / "o").training.data == f"{corpus},{other}"


# --- distillation: the bypassed decoder, top-k and hidden states ------------------------------------


def test_top_k_distillation_equals_full_vocabulary_distillation_when_k_is_the_vocabulary():
    g = torch.Generator().manual_seed(0)
    features, weight, bias = (
        torch.randn(7, 5, generator=g),
        torch.randn(11, 5, generator=g),
        torch.randn(11, generator=g),
    )
    teacher = torch.randn(7, 11, generator=g) * 3
    full = kd_divergence(features @ weight.T + bias, teacher, 2.0)
    for k in (11, 50):
        assert float(top_k_kd_divergence(features, weight, bias, teacher, k, 2.0)) == pytest.approx(
            float(full), rel=1e-5
        )
    assert float(top_k_kd_divergence(features, weight, bias, teacher, 3, 2.0)) != pytest.approx(float(full))


def _mlm_pair():
    torch.manual_seed(0)
    config = tiny_config("bert", 120)
    student, teacher = (
        transformers.BertForMaskedLM(config).eval(),
        transformers.BertForMaskedLM(config).eval(),
    )
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 120, (3, 10), generator=g)
    attention = torch.ones_like(ids)
    attention[0, 7:] = 0
    labels = torch.where(torch.rand(ids.shape, generator=g) < 0.3, ids, torch.full_like(ids, -100))
    labels[0, 7:] = -100
    return student, teacher, {"input_ids": ids, "attention_mask": attention, "labels": labels}


def _loss(student, teacher, batch, **distillation) -> float:
    trainer = DistillationTrainer.__new__(DistillationTrainer)  # compute_loss only: no Trainer set-up
    trainer.teacher, trainer.kind, trainer._terms = teacher, "masked-lm", {}
    trainer.distillation = DistillationConfig(**distillation)
    return float(trainer.compute_loss(student, batch))


@pytest.mark.parametrize("padded", [True, False], ids=["padding", "packed"])
def test_masked_lm_step_with_the_decoder_bypassed_equals_the_models_own_logits(padded):
    """With padding (the gathered positions) and without (packed blocks: the rows taken as a view)."""
    student, teacher, batch = _mlm_pair()
    if not padded:
        batch["attention_mask"] = torch.ones_like(batch["attention_mask"])
    with torch.no_grad():
        out = student(**batch)
        t_out = teacher(**{k: v for k, v in batch.items() if k != "labels"})
    expected = 0.5 * float(out.loss) + 0.5 * float(
        kd_loss("masked-lm", out, t_out, 2.0, batch["attention_mask"])
    )
    with torch.no_grad():
        assert _loss(student, teacher, batch) == pytest.approx(expected, rel=1e-5)
        assert _loss(student, None, batch) == pytest.approx(float(out.loss), rel=1e-5)  # teacher preparation
        assert _loss(student, teacher, batch, top_k=120) == pytest.approx(expected, rel=1e-5)
        assert _loss(student, teacher, batch, top_k=8) != pytest.approx(expected, rel=1e-3)
    assert isinstance(student.get_output_embeddings(), torch.nn.Linear)  # the decoder is put back


def test_hidden_state_distillation_alone_never_runs_the_teachers_head():
    student, teacher, batch = _mlm_pair()
    calls = []
    teacher.get_output_embeddings().register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        s = student(**batch, output_hidden_states=True)
        t = teacher.bert(**{k: v for k, v in batch.items() if k != "labels"}, output_hidden_states=True)
        keep = batch["attention_mask"].bool()
        hidden = sum(
            float(torch.nn.functional.mse_loss(a[keep], b[keep]))
            for a, b in zip(s.hidden_states, t.hidden_states, strict=True)
        ) / len(s.hidden_states)
        value = _loss(student, teacher, batch, alpha_kd=0.0, hidden_states=2.0)
    assert value == pytest.approx(0.5 * float(s.loss) + 2.0 * hidden, rel=1e-5)
    assert not calls


@pytest.mark.parametrize(
    "options", [{}, {"top_k": 8}, {"alpha_kd": 0.0, "hidden_states": 1.0, "pooler": 1.0}]
)
def test_bf16_teacher_runs_under_autocast_where_native_and_falls_back_with_one_warning(
    options, monkeypatch, caplog
):
    """``teacher_precision: bfloat16``: the teacher's forward runs in bf16 (its outputs, compared in
    float32, move by bf16 rounding only); the student is untouched. Without native bf16 the teacher stays
    float32 (the same loss bit for bit) and one warning says so."""
    from pruneofa.training import trainer as trainer_module

    student, teacher, batch = _mlm_pair()
    dtypes = []
    teacher.bert.encoder.layer[0].attention.self.query.register_forward_hook(
        lambda module, args, output: dtypes.append(output.dtype)
    )
    with torch.no_grad():
        fp32 = _loss(student, teacher, batch, **options)
        monkeypatch.setattr(trainer_module, "native_bf16", lambda device: True)
        bf16 = _loss(student, teacher, batch, teacher_precision="bfloat16", **options)
        assert dtypes == [torch.float32, torch.bfloat16]
        assert bf16 == pytest.approx(fp32, rel=2e-2) and bf16 != fp32
        monkeypatch.setattr(trainer_module, "native_bf16", lambda device: False)
        monkeypatch.setattr(trainer_module, "_warned_once", {})
        with caplog.at_level("WARNING", logger="pruneofa.training"):
            fallback = [
                _loss(student, teacher, batch, teacher_precision="bfloat16", **options) for _ in range(2)
            ]
    assert fallback == [fp32, fp32] and dtypes[2:] == [torch.float32, torch.float32]
    assert len([r for r in caplog.records if "no native bf16" in r.getMessage()]) == 1


def test_auto_teacher_precision_is_bf16_where_native_and_float32_elsewhere_without_a_warning(
    monkeypatch, caplog
):
    """``teacher_precision: auto`` (the fast recipes): bf16 autocast where the device runs it natively,
    float32 elsewhere (the same loss as float32, bit for bit), and no warning: nothing asked for was refused."""
    from pruneofa.training import trainer as trainer_module

    student, teacher, batch = _mlm_pair()
    options = {"alpha_kd": 0.0, "hidden_states": 1.0, "pooler": 1.0}
    dtypes = []
    teacher.bert.encoder.layer[0].attention.self.query.register_forward_hook(
        lambda module, args, output: dtypes.append(output.dtype)
    )
    monkeypatch.setattr(trainer_module, "_warned_once", {})
    with torch.no_grad(), caplog.at_level("WARNING", logger="pruneofa.training"):
        fp32 = _loss(student, teacher, batch, **options)
        monkeypatch.setattr(trainer_module, "native_bf16", lambda device: False)
        fallback = _loss(student, teacher, batch, teacher_precision="auto", **options)
        monkeypatch.setattr(trainer_module, "native_bf16", lambda device: True)
        native = _loss(student, teacher, batch, teacher_precision="auto", **options)
    assert dtypes == [torch.float32, torch.float32, torch.bfloat16]
    assert fallback == fp32 and native == pytest.approx(fp32, rel=2e-2) and native != fp32
    assert not [r for r in caplog.records if "bf16" in r.getMessage()]


def test_native_bf16_needs_the_cpus_bf16_instructions_not_only_onednns_yes(monkeypatch):
    """oneDNN says bf16 is supported on AVX-512 CPUs without AVX512_BF16 (Skylake to Ice Lake), where it
    emulates it and a bf16 teacher is slower: there the CPU's flags decide (no), where both agree, yes."""
    import dataclasses

    from pruneofa.core import cpu as cpu_module
    from pruneofa.training.trainer import native_bf16

    here = cpu_module.detect_cpu()
    cases = [
        (frozenset({"avx2", "avx512f", "avx512_vnni"}), True, True, False),  # Ice Lake: oneDNN emulates
        (frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}), True, True, True),  # Zen 4/5
        (frozenset({"avx2", "amx_bf16", "amx_int8"}), True, True, True),  # Sapphire Rapids
        (frozenset({"avx2", "avx512f", "avx512_bf16"}), True, False, False),  # capped: ONEDNN_MAX_CPU_ISA
        (frozenset(), False, True, True),  # flags unreadable: oneDNN's word
    ]
    for flags, known, onednn, expected in cases:
        fake = dataclasses.replace(here, flags=flags, known=known)
        monkeypatch.setattr(cpu_module, "detect_cpu", lambda fake=fake: fake)
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda onednn=onednn: onednn)
        native_bf16.cache_clear()
        assert native_bf16(torch.device("cpu")) is expected, (sorted(flags), known, onednn)
    native_bf16.cache_clear()
