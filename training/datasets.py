"""Training inputs as ``torch`` datasets: masked-LM blocks from a text corpus, and tokenized task data.

Kept small and explicit (a list of tokenized examples and the collator transformers provides) rather
than a ``datasets`` pipeline, because the corpora and GLUE subsets used here fit in memory and this
keeps every step visible; hub corpora still arrive through ``pruneofa.core.data`` (which uses ``datasets``).
"""

from __future__ import annotations

import random
import sys
from collections.abc import Sequence
from typing import Any

import torch

from pruneofa.core.data import Split, load_qa_examples, load_text_examples, required_label
from pruneofa.core.errors import InputError
from pruneofa.core.tasks import TaskSpec, get_task


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]


def corpus_sources(corpus: str | Sequence[str]) -> list[str]:
    """The sources of a ``--corpus`` value: comma-separated and/or given several times; blanks and
    repeats dropped, order kept."""
    parts = [corpus] if isinstance(corpus, str) else list(corpus)
    sources = [s.strip() for part in parts for s in str(part).split(",") if s.strip()]
    if not sources:
        raise InputError("--corpus names no source; give a text file, a folder of them or a hub dataset id")
    return list(dict.fromkeys(sources))


def corpus_label(corpus: str | Sequence[str]) -> str:
    """One string for the manifest: the sources joined by commas."""
    return ",".join(corpus_sources(corpus))


def mlm_blocks(
    corpus: str | Sequence[str],
    tokenizer: Any,
    *,
    seq_len: int,
    limit: int | None = None,
    split: Split = "train",
    seed: int = 0,
) -> ListDataset:
    """``seq_len``-token blocks ([CLS] … [SEP] each) of one corpus or a mix of several.

    One source: its lines concatenated and cut into blocks, the first ``limit`` kept.
    Several (``--corpus A,B`` or ``--corpus A --corpus B``): each source is cut into blocks on its own, so
    no block spans two sources; the mix is every block of every source once, i.e. each source weighs in
    proportion to its size (how BERT mixed BooksCorpus and Wikipedia), shuffled with ``seed``, and
    ``limit`` takes the first ``limit`` blocks of that shuffle, a sample with the same proportions.
    """
    sources = corpus_sources(corpus)
    if len(sources) == 1:
        return ListDataset(_source_blocks(sources[0], tokenizer, seq_len=seq_len, limit=limit, split=split))
    blocks = []
    for source in sources:
        mine = _source_blocks(source, tokenizer, seq_len=seq_len, limit=None, split=split)
        print(f"pruneofa: corpus {source}: {len(mine)} blocks of {seq_len} tokens", file=sys.stderr)
        blocks.extend(mine)
    random.Random(seed).shuffle(blocks)
    return ListDataset(blocks[:limit] if limit is not None else blocks)


def _source_blocks(source: str, tokenizer: Any, *, seq_len: int, limit: int | None, split: Split) -> list:
    """Concatenate one source's lines and cut them into blocks (tokenized a thousand lines at a time)."""
    lines = [
        e.texts[0] for e in load_text_examples(get_task("mlm"), source, split=split) if e.texts[0].strip()
    ]
    body = seq_len - 2
    # [CLS] … [SEP] for BERT-style, <s> … </s> for RoBERTa-style tokenizers (both define cls/sep tokens)
    first = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    last = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    ids: list[int] = []
    blocks = []
    for start in range(0, len(lines), 1000):
        for encoded in tokenizer(lines[start : start + 1000], add_special_tokens=False)["input_ids"]:
            ids.extend(encoded)
            while len(ids) >= body:
                chunk, ids = ids[:body], ids[body:]
                blocks.append({"input_ids": [first, *chunk, last]})
                if limit is not None and len(blocks) >= limit:
                    return blocks
    return blocks


def task_dataset(
    task: TaskSpec,
    data: str,
    tokenizer: Any,
    *,
    split: Split,
    seq_len: int,
    limit: int | None = None,
    seed: int = 0,
) -> tuple[ListDataset, list]:
    """Tokenized examples with labels (classification, regression); returns the examples too."""
    examples = load_text_examples(
        task, data, split=split, limit=limit, seed=seed if split == "train" else None
    )
    items: list[dict[str, Any]] = []
    for example in examples:
        encoded = tokenizer(*example.texts, truncation=True, max_length=seq_len)
        item: dict[str, Any] = {k: list(v) for k, v in encoded.items()}
        label = required_label(example)
        item["labels"] = float(label) if task.kind == "regression" else int(label)
        items.append(item)
    return ListDataset(items), examples


def qa_dataset(
    task: TaskSpec, data: str, tokenizer: Any, *, split: Split, seq_len: int, stride: int, limit=None, seed=0
):
    """SQuAD features with start/end labels for training, or without for evaluation."""
    from pruneofa.core.qa import prepare_qa_features, qa_training_labels

    examples = load_qa_examples(task, data, split=split, limit=limit, seed=seed if split == "train" else None)
    features = prepare_qa_features(examples, tokenizer, max_length=seq_len, stride=stride)
    starts, ends = qa_training_labels(examples, features)
    items = []
    for i in range(len(features)):
        feed = features.inputs(i, i + 1)
        item = {k: v[0][: int(features.lengths[i])].tolist() for k, v in feed.items()}
        item["start_positions"], item["end_positions"] = int(starts[i]), int(ends[i])
        items.append(item)
    return ListDataset(items), examples, features
