"""Tiny random BERT / DistilBERT / RoBERTa models and their tokenizers, built offline per session.

Tokenizers are trained here with the ``tokenizers`` library on the packaged parity sentences (WordPiece
for BERT and DistilBERT, byte-level BPE for RoBERTa), so nothing is downloaded. Models use a larger
initializer range than the default so that outputs vary enough for argmax agreement to mean something.
Sparse variants zero weights at fixed, seeded patterns: unstructured 90 %, whole heads, whole neurons.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
for _name in ("torchao", "torch.utils._pytree", "nncf"):
    logging.getLogger(_name).setLevel(logging.ERROR)

import torch  # noqa: E402

ARCHS = ("bert", "distilbert", "roberta")
TASK_CLASSES = {
    "text-classification": "ForSequenceClassification",
    "question-answering": "ForQuestionAnswering",
    "token-classification": "ForTokenClassification",
    "fill-mask": "ForMaskedLM",
    "feature-extraction": "Model",
}
_CLASS_PREFIX = {"bert": "Bert", "distilbert": "DistilBert", "roberta": "Roberta"}

# Every other encoder family pruneofa supports: transformers class prefix, config options beyond the
# common tiny shape (2 layers, hidden 32, 4 heads, FFN 64), and the tokenizer it is tested with
# (WordPiece for BERT-likes, byte-level BPE for RoBERTa-likes, Unigram for SentencePiece families).
FAMILIES: dict[str, tuple[str, dict, str]] = {
    "xlm-roberta": ("XLMRoberta", {"pad_token_id": 1, "type_vocab_size": 1}, "unigram"),
    "camembert": ("Camembert", {"pad_token_id": 1, "type_vocab_size": 1}, "unigram"),
    "electra": ("Electra", {"embedding_size": 16}, "wordpiece"),
    "roformer": ("RoFormer", {}, "wordpiece"),
    "rembert": ("RemBert", {"input_embedding_size": 16, "output_embedding_size": 16}, "unigram-cls"),
    "esm": ("Esm", {"pad_token_id": 0, "mask_token_id": 4, "position_embedding_type": "rotary"}, "wordpiece"),
    "albert": ("Albert", {"embedding_size": 16}, "unigram-cls"),
    "convbert": ("ConvBert", {"embedding_size": 32, "head_ratio": 2, "conv_kernel_size": 3}, "wordpiece"),
    "deberta": (
        "Deberta",
        {"pad_token_id": 1, "relative_attention": True, "pos_att_type": ["c2p", "p2c"]},
        "bpe",
    ),
    "deberta-v2": (
        "DebertaV2",
        {
            "relative_attention": True,
            "pos_att_type": ["p2c", "c2p"],
            "position_buckets": 16,
            "share_att_key": True,
            "norm_rel_ebd": "layer_norm",
        },
        "unigram-cls",
    ),
    "ibert": ("IBert", {"pad_token_id": 1, "type_vocab_size": 1, "quant_mode": False}, "bpe"),
    "mobilebert": (
        "MobileBert",
        {
            "embedding_size": 16,
            "true_hidden_size": 16,
            "intra_bottleneck_size": 16,
            "intermediate_size": 32,
            "num_feedforward_networks": 2,
        },
        "wordpiece",
    ),
    "mpnet": ("MPNet", {"pad_token_id": 1}, "bpe"),
    "squeezebert": (
        "SqueezeBert",
        {"embedding_size": 32, "q_groups": 2, "k_groups": 2, "v_groups": 2, "output_groups": 2},
        "wordpiece",
    ),
}
_CLASS_PREFIX.update({arch: prefix for arch, (prefix, _, _) in FAMILIES.items()})


def _corpus() -> list[str]:
    from pruneofa.core.runtime import load_parity_samples

    data = load_parity_samples()
    texts = list(data["sentences"]) + [s for pair in data["pairs"] for s in pair]
    texts += [qa["question"] for qa in data["qa"]] + [qa["context"] for qa in data["qa"]]
    return texts


def _wordpiece_tokenizer(folder: Path):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizer

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(_corpus(), trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials))
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(token for token, _ in vocab) + "\n", encoding="utf-8")
    # transformers 5 ignores vocab_file here: pass the vocabulary itself.
    tokenizer = BertTokenizer(vocab={token: index for token, index in vocab}, do_lower_case=True)
    assert (
        len(tokenizer) > 100
        and tokenizer.unk_token_id not in tokenizer("the movie was a delight")["input_ids"]
    )
    return tokenizer


def _bpe_tokenizer(folder: Path):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizer

    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(
        _corpus(), vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    folder.mkdir(parents=True, exist_ok=True)
    tok.save_model(str(folder))
    # transformers 5 ignores vocab_file/merges_file here: pass the vocabulary and merges themselves.
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    merges = [
        tuple(line.split(" "))
        for line in (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    tokenizer = RobertaTokenizer(vocab=vocab, merges=merges)
    assert len(tokenizer) > 100 and len(tokenizer("hello fox")["input_ids"]) > 2
    return tokenizer


def _unigram_tokenizer(class_name: str, specials: list[str]):
    """A SentencePiece-style Unigram tokenizer (XLM-R, ALBERT, ...), trained here, in ``class_name``."""
    import transformers
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    unk = next(token for token in specials if "unk" in token.lower())
    tok.train_from_iterator(
        _corpus(), trainers.UnigramTrainer(vocab_size=400, special_tokens=specials, unk_token=unk)
    )
    vocab = [(piece, score) for piece, score in json.loads(tok.to_str())["model"]["vocab"]]
    tokenizer = getattr(transformers, class_name)(vocab=vocab)
    encoded = tokenizer("the movie was a delight")["input_ids"]
    assert len(tokenizer) >= 400 and tokenizer.unk_token_id not in encoded and len(encoded) > 3
    return tokenizer


# A training command's budget for the tiny models of the tests: a few steps, logged at every one.
TINY_TRAINING_BUDGET = "--steps 6 --batch-size 4 --seq-len 16 --logging-steps 1 --save-steps 50".split()


def tiny_config(arch: str, vocab_size: int, num_labels: int = 3):
    import transformers

    common = dict(
        vocab_size=vocab_size, initializer_range=0.2, num_labels=num_labels, max_position_embeddings=130
    )
    if arch == "distilbert":
        return transformers.DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=64, **common)
    if arch in FAMILIES:
        prefix, extra, _ = FAMILIES[arch]
        shape = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
        return getattr(transformers, prefix + "Config")(**{**shape, **common, **extra})
    cls = transformers.BertConfig if arch == "bert" else transformers.RobertaConfig
    extra = {"pad_token_id": 1, "type_vocab_size": 1} if arch == "roberta" else {}
    return cls(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, **common, **extra
    )


@pytest.fixture(scope="session")
def tokenizers_dir(tmp_path_factory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("tokenizers")
    wordpiece = _wordpiece_tokenizer(root / "wordpiece")
    bpe = _bpe_tokenizer(root / "bpe")
    kinds = {
        "wordpiece": wordpiece,
        "bpe": bpe,
        "unigram": _unigram_tokenizer("XLMRobertaTokenizer", ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]),
        "unigram-cls": _unigram_tokenizer("AlbertTokenizer", ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]),
    }
    families = {arch: kinds[kind] for arch, (_, _, kind) in FAMILIES.items()}
    return {"bert": wordpiece, "distilbert": wordpiece, "roberta": bpe, **families}


def sparsify(model, pattern: str) -> None:
    """Zero encoder Linear weights at a fixed pattern (in place)."""
    from pruneofa.core.support import ARCHITECTURES
    from pruneofa.exporter.shrink import encoder_layers, submodule

    spec = ARCHITECTURES[model.config.model_type]
    generator = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for index, layer in enumerate(encoder_layers(model, spec)):
            if pattern == "unstructured90":
                for path in spec.linear_paths():
                    weight = submodule(layer, path).weight
                    order = torch.randperm(weight.numel(), generator=generator)
                    weight.view(-1)[order[: int(round(0.9 * weight.numel()))]] = 0.0
            elif pattern == "block1x4_90":  # 90 % zeros in 1 x 4 blocks along the input dimension
                for path in spec.linear_paths():
                    weight = submodule(layer, path).weight
                    blocks = weight.view(weight.shape[0], -1, 4)
                    order = torch.randperm(blocks.shape[0] * blocks.shape[1], generator=generator)
                    blocks.view(-1, 4)[order[: int(round(0.9 * order.numel()))]] = 0.0
            elif pattern == "heads":
                head_dim = submodule(layer, spec.query).weight.shape[0] // 4
                dead = [1, 3] if index == 0 else [0]
                for h in dead:  # Q/K/V weights zero, biases kept: their value bias must be folded
                    rows = slice(h * head_dim, (h + 1) * head_dim)
                    for path in (spec.query, spec.key, spec.value):
                        submodule(layer, path).weight[rows] = 0.0
                if index == 1:  # a head dead through its output columns only
                    submodule(layer, spec.attention_output).weight[:, 3 * head_dim : 4 * head_dim] = 0.0
            elif pattern == "neurons":
                w_in, w_out = submodule(layer, spec.ffn_in).weight, submodule(layer, spec.ffn_out).weight
                w_in[0:24] = 0.0  # input rows zero: act(bias) is folded into the output bias
                w_out[:, 16:40] = 0.0  # output columns zero (16..23 are both)
            else:
                raise ValueError(pattern)


@pytest.fixture(scope="session")
def make_model(tmp_path_factory, tokenizers_dir):
    """``make_model(arch, task, pattern=None)`` → folder of a tiny random model (cached per session)."""
    import transformers

    cache: dict[tuple, Path] = {}

    def build(arch: str, task: str, pattern: str | None = None) -> Path:
        key = (arch, task, pattern)
        if key in cache:
            return cache[key]
        tokenizer = tokenizers_dir[arch]
        torch.manual_seed(0)
        config = tiny_config(arch, len(tokenizer), num_labels=2 if task == "question-answering" else 3)
        model_cls = getattr(transformers, _CLASS_PREFIX[arch] + TASK_CLASSES[task])
        model = model_cls(config).eval()
        if pattern:
            sparsify(model, pattern)
        folder = tmp_path_factory.mktemp(f"{arch}-{task}-{pattern or 'dense'}")
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        cache[key] = folder
        return folder

    return build


@pytest.fixture(scope="session")
def export_once(tmp_path_factory, make_model):
    """``export_once(arch, task, pattern=None, **options)`` → {target: ExportResult}, cached per session."""
    from pruneofa.exporter import export_model, make_config

    cache: dict[tuple, dict] = {}

    def run(arch: str, task: str, pattern: str | None = None, **options):
        key = (arch, task, pattern, json.dumps(options, sort_keys=True))
        if key not in cache:
            options.setdefault("targets", ["openvino", "onnx"])
            options.setdefault("parity_samples", 24)
            out = tmp_path_factory.mktemp("export") / "out"
            config = make_config(output=out, **options)
            results = export_model(str(make_model(arch, task, pattern)), config, quiet=True)
            cache[key] = {r.target: r for r in results}
        return cache[key]

    return run


def have_package(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@pytest.fixture(scope="session")
def sst2_dir(tmp_path_factory) -> Path:
    """A small SST-2-format task folder (train.tsv, dev.tsv) made from the packaged sentences."""
    from pruneofa.core.runtime import load_parity_samples

    sentences = load_parity_samples()["sentences"]
    folder = tmp_path_factory.mktemp("SST-2")
    for name, rows in (("train.tsv", sentences * 2), ("dev.tsv", sentences)):
        lines = ["sentence\tlabel"] + [f"{s}\t{i % 2}" for i, s in enumerate(rows)]
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def squad_file(tmp_path_factory) -> Path:
    """A small file in the official SQuAD v1.1 format made from the packaged question/context pairs."""
    from pruneofa.core.runtime import load_parity_samples

    paragraphs = []
    for index, qa in enumerate(load_parity_samples()["qa"]):
        words = qa["context"].split()
        answer = " ".join(words[3:5])
        paragraphs.append(
            {
                "context": qa["context"],
                "qas": [
                    {
                        "id": f"q{index}",
                        "question": qa["question"],
                        "answers": [{"text": answer, "answer_start": qa["context"].index(answer)}],
                    }
                ],
            }
        )
    path = tmp_path_factory.mktemp("squad") / "dev.json"
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}))
    return path


@pytest.fixture(scope="session")
def calibrate_once(tmp_path_factory, export_once, sst2_dir, squad_file):
    """``calibrate_once(arch, task, pattern, target, **options)`` → CalibrationResult, cached per session."""
    from pruneofa.calibration import calibrate_model, make_config

    cache: dict[tuple, object] = {}

    def run(arch: str, task: str, pattern: str | None, target: str, **options):
        key = (arch, task, pattern, target, json.dumps(options, sort_keys=True))
        if key not in cache:
            exported = export_once(arch, task, pattern)[target].output
            data_task = "squad" if task == "question-answering" else "sst2"
            if options.get("method") != "dynamic":  # dynamic quantization draws no samples
                options.setdefault("samples", 16)
            options.setdefault("parity_samples", 16)
            options.setdefault("min_agreement", 0.5)
            if data_task == "squad":
                options.setdefault("split", "dev")
            config = make_config(
                task=data_task,
                data=str(squad_file if data_task == "squad" else sst2_dir),
                output=tmp_path_factory.mktemp("int8") / "out",
                **options,
            )
            cache[key] = calibrate_model(exported, config, quiet=True)
        return cache[key]

    return run


# --- training: the teacher → prune → finetune chain, run once per session on a tiny BERT -----------

TRAINING_BUDGET = [
    "--steps",
    "8",
    "--batch-size",
    "4",
    "--seq-len",
    "32",
    "--logging-steps",
    "2",
    "--save-steps",
    "4",
]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    from pruneofa.core.runtime import load_parity_samples

    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n".join(load_parity_samples()["sentences"] * 4) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory, make_model, corpus, sst2_dir):
    """Run the three commands once; return their output folders."""
    from pruneofa.cli import main

    root = tmp_path_factory.mktemp("runs")
    base = make_model("bert", "feature-extraction")  # a BertModel without an MLM head, like MiniLM
    assert (
        main(["teacher", str(base), "--corpus", str(corpus), "--output", str(root / "mlm"), *TRAINING_BUDGET])
        == 0
    )
    assert (
        main(
            [
                "teacher",
                str(base),
                "--task",
                "sst2",
                "--data",
                str(sst2_dir),
                "--output",
                str(root / "sst2-teacher"),
                *TRAINING_BUDGET,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "prune",
                str(root / "mlm"),
                "--teacher",
                str(root / "mlm"),
                "--corpus",
                str(corpus),
                "--recipe",
                "pruneofa-90",
                "--output",
                str(root / "sparse"),
                *TRAINING_BUDGET,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "finetune",
                str(root / "sparse"),
                "--task",
                "sst2",
                "--data",
                str(sst2_dir),
                "--teacher",
                str(root / "sst2-teacher"),
                "--output",
                str(root / "sparse-sst2"),
                *TRAINING_BUDGET,
            ]
        )
        == 0
    )
    return root


@pytest.fixture(scope="session")
def budget() -> list[str]:
    """The tiny training budget every command test runs with."""
    return list(TRAINING_BUDGET)


_F32 = {"INFERENCE_PRECISION_HINT": "f32"}
_TEXTS = ["The movie was a delight from start to finish.", "Terrible.", "An honest, funny, humane film."]


def optimum_matches_ir(folder: Path) -> None:
    """An INT8 OpenVINO folder loads in OVModelForSequenceClassification with the logits of its IR
    compiled directly (f32 hint both), and the IR really holds INT8 weight constants."""
    import numpy as np
    import openvino as ov
    import transformers
    from optimum.intel import OVModelForSequenceClassification

    model = OVModelForSequenceClassification.from_pretrained(folder, ov_config=_F32)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    encoded = tokenizer(_TEXTS, padding=True, return_tensors="np")
    got = np.asarray(model(**encoded).logits)

    compiled = ov.Core().compile_model(str(folder / "openvino_model.xml"), "CPU", _F32)
    feed = {p.get_any_name(): encoded[p.get_any_name()] for p in compiled.inputs}
    expected = compiled(feed)["logits"]
    assert got.shape == expected.shape == (len(_TEXTS), model.config.num_labels)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    # really INT8: the IR holds i8/u8 weight constants
    ir = ov.Core().read_model(str(folder / "openvino_model.xml"))
    assert any(
        op.get_type_name() == "Constant" and op.get_element_type().get_type_name() in ("i8", "u8")
        for op in ir.get_ops()
    )
