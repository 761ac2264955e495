"""Loading examples: every GLUE TSV layout, CSV/JSON/JSONL, SQuAD JSON, plain text, the hub, and the
one-line errors for bad data; then the real files in ../shared/data when they are there."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from pruneofa.core.data import QAExample, TextExample, load_examples, split_squad_by_article
from pruneofa.core.errors import InputError
from pruneofa.core.tasks import get_task

T = "\t"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding)
    return path


def tsv(*rows: list[str]) -> str:
    return "".join(T.join(row) + "\n" for row in rows)


def error_of(task: str, data, **options) -> str:
    with pytest.raises(InputError) as info:
        load_examples(get_task(task), data, **options)
    message = str(info.value)
    assert "\n" not in message, message
    return message


# --- the GLUE layouts ------------------------------------------------------------------------------

MNLI_HEADER = [
    "index",
    "promptID",
    "pairID",
    "genre",
    "sentence1_binary_parse",
    "sentence2_binary_parse",
    "sentence1_parse",
    "sentence2_parse",
    "sentence1",
    "sentence2",
    "label1",
    "label2",
    "label3",
    "label4",
    "label5",
    "gold_label",
]
STSB_HEADER = [
    "index",
    "genre",
    "filename",
    "year",
    "old_index",
    "source1",
    "source2",
    "sentence1",
    "sentence2",
    "score",
]

GLUE_FILES = {
    # task: (folder, file, content, expected [(texts, label)])
    "sst2": (
        "SST-2",
        "dev.tsv",
        tsv(["sentence", "label"], ['a "quoted bit , good ', "1"], ["bad", "0"]),
        [(('a "quoted bit , good ',), 1), (("bad",), 0)],
    ),
    "cola": (
        "CoLA",
        "dev.tsv",
        tsv(["gj04", "1", "", "Our friends won't buy this."], ["gj04", "0", "*", "They drank the pub."]),
        [(("Our friends won't buy this.",), 1), (("They drank the pub.",), 0)],
    ),
    "mrpc": (
        "MRPC",
        "dev.tsv",
        "\ufeff"
        + tsv(
            ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
            ["1", "11", "12", "He said .", "He spoke ."],
        ),
        [(("He said .", "He spoke ."), 1)],
    ),
    "qqp": (
        "QQP",
        "dev.tsv",
        tsv(
            ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
            ["7", "1", "2", "Why?", "How?", "0"],
        ),
        [(("Why?", "How?"), 0)],
    ),
    "stsb": (
        "STS-B",
        "dev.tsv",
        tsv(
            STSB_HEADER,
            ["0", "main-captions", "MSRvid", "2012test", "0000", "none", "none", "A man.", "A guy.", "4.750"],
        ),
        [(("A man.", "A guy."), 4.75)],
    ),
    "mnli": (
        "MNLI",
        "dev_matched.tsv",
        tsv(
            MNLI_HEADER,
            ["0", "1", "1e", "fiction", "(p)", "(h)", "(P)", "(H)", "P one.", "H one.", *["neutral"] * 6],
        ),
        [(("P one.", "H one."), 1)],
    ),
    "mnli-mm": (
        "MNLI",
        "dev_mismatched.tsv",
        tsv(
            MNLI_HEADER,
            [
                "0",
                "1",
                "1e",
                "letters",
                "(p)",
                "(h)",
                "(P)",
                "(H)",
                "P two.",
                "H two.",
                *["contradiction"] * 6,
            ],
        ),
        [(("P two.", "H two."), 2)],
    ),
    "qnli": (
        "QNLI",
        "dev.tsv",
        tsv(["index", "question", "sentence", "label"], ["0", "What?", "This.", "not_entailment"]),
        [(("What?", "This."), 1)],
    ),
    "rte": (
        "RTE",
        "dev.tsv",
        tsv(["index", "sentence1", "sentence2", "label"], ["0", "S1.", "S2.", "entailment"]),
        [(("S1.", "S2."), 0)],
    ),
    "wnli": (
        "WNLI",
        "dev.tsv",
        tsv(["index", "sentence1", "sentence2", "label"], ["0", "S1.", "S2.", "1"]),
        [(("S1.", "S2."), 1)],  # 1 = entailment in WNLI
    ),
}


@pytest.mark.parametrize("task", list(GLUE_FILES))
def test_glue_layouts(tmp_path, task):
    folder, name, content, expected = GLUE_FILES[task]
    path = write(tmp_path / folder / name, content)
    for data in (path, tmp_path / folder, tmp_path):  # the file, the task folder, the GLUE root
        examples = load_examples(get_task(task), data)
        assert [(e.texts, e.label) for e in examples] == expected
        assert all(isinstance(e, TextExample) for e in examples)
    first_data_line = 1 if task == "cola" else 2
    assert examples[0].source == f"{path}:{first_data_line}"


def test_mnli_folder_gives_matched_and_mismatched_dev_and_shared_train(tmp_path):
    for task in ("mnli", "mnli-mm"):
        folder, name, content, _ = GLUE_FILES[task]
        write(tmp_path / folder / name, content)
    write(tmp_path / "MNLI" / "train.tsv", GLUE_FILES["mnli"][2])
    assert load_examples(get_task("mnli"), tmp_path / "MNLI")[0].texts == ("P one.", "H one.")
    assert load_examples(get_task("mnli-mm"), tmp_path / "MNLI")[0].texts == ("P two.", "H two.")
    assert load_examples(get_task("mnli-mm"), tmp_path / "MNLI", split="train")[0].label == 1


def test_tsv_saved_from_hf_glue_uses_hf_column_names(tmp_path):
    path = write(
        tmp_path / "mnli.tsv", tsv(["premise", "hypothesis", "label", "idx"], ["P.", "H.", "2", "0"])
    )
    assert [(e.texts, e.label) for e in load_examples(get_task("mnli"), path)] == [(("P.", "H."), 2)]


def test_label_names_and_ids_both_work(tmp_path):
    path = write(
        tmp_path / "rte.tsv",
        tsv(
            ["index", "sentence1", "sentence2", "label"], ["0", "a", "b", "1"], ["1", "c", "d", "entailment"]
        ),
    )
    assert [e.label for e in load_examples(get_task("rte"), path)] == [1, 0]


# --- CSV, JSON, JSONL, SQuAD, plain text ------------------------------------------------------------


def test_csv_with_default_and_custom_columns(tmp_path):
    path = write(tmp_path / "sst.csv", 'sentence,label\n"good, really",positive\n"two\nlines",0\n')
    examples = load_examples(get_task("sst2"), path)
    assert [(e.texts, e.label) for e in examples] == [(("good, really",), 1), (("two\nlines",), 0)]
    custom = write(tmp_path / "reviews.csv", "review,stars,extra\nnice,1,x\n")
    examples = load_examples(get_task("sst2"), custom, text_columns=["review"], label_column="stars")
    assert examples[0].texts == ("nice",) and examples[0].label == 1


def test_json_array_records_know_their_lines(tmp_path):
    records = [
        {"sentence1": "a", "sentence2": "b", "label": 1},
        {"sentence1": "c", "sentence2": "d", "label": "entailment"},
    ]
    path = write(tmp_path / "rte.json", json.dumps(records, indent=2))
    examples = load_examples(get_task("rte"), path)
    assert [(e.texts, e.label) for e in examples] == [(("a", "b"), 1), (("c", "d"), 0)]
    assert [e.source for e in examples] == [f"{path}:2", f"{path}:7"]


def test_jsonl_and_json_lines_saved_as_json(tmp_path):
    lines = '{"sentence": "x", "label": 0}\n\n{"sentence": "y", "label": 1.5}\n'
    for name in ("stsb.jsonl", "stsb.json"):
        path = write(
            tmp_path / name,
            lines.replace("sentence", "sentence1").replace(', "label"', ', "sentence2": "z", "label"'),
        )
        examples = load_examples(get_task("stsb"), path)
        assert [(e.texts, e.label) for e in examples] == [(("x", "z"), 0.0), (("y", "z"), 1.5)]
        assert examples[1].source == f"{path}:3"


SQUAD = {
    "version": "1.1",
    "data": [
        {
            "title": "Fox",
            "paragraphs": [
                {
                    "context": "The quick brown fox jumps over the lazy dog.",
                    "qas": [
                        {
                            "id": "q1",
                            "question": "Who jumps?",
                            "answers": [{"text": "brown fox", "answer_start": 10}],
                        },
                        {
                            "id": "q2",
                            "question": "Over what?",
                            "answers": [
                                {"text": "the lazy dog", "answer_start": 31},
                                {"text": "dog", "answer_start": 40},
                            ],
                        },
                    ],
                }
            ],
        },
        {
            "title": "Paris",
            "paragraphs": [
                {
                    "context": "Paris is in France.",
                    "qas": [
                        {
                            "id": "q3",
                            "question": "Where?",
                            "answers": [{"text": "France", "answer_start": 12}],
                        }
                    ],
                }
            ],
        },
    ],
}


# --- hostile files (issue 17): every problem one line with file:line, exit 2 -------------------------


def test_a_bad_byte_is_reported_at_its_exact_line_and_offset(tmp_path):
    """The text stream's decoder counts offsets from its current chunk (it said 2451 for a byte at offset
    240019); the exact place is in the file's own bytes."""
    rows = ["sentence\tlabel"] + [f"review number {i:05d}\t{i % 2}" for i in range(20_000)]
    good = ("\n".join(rows) + "\n").encode()
    bad = b"caf\xe9 au lait\t1\n"
    for suffix, task in ((".tsv", "sst2"), (".csv", "sst2"), (".txt", "mlm")):
        body = good.replace(b"\t", b"," if suffix == ".csv" else b"\t")
        path = tmp_path / f"big{suffix}"
        path.write_bytes(body + bad.replace(b"\t", b"," if suffix == ".csv" else b"\t") + b"more\t0\n")
        offset = len(body) + 3
        assert error_of(task, path) == (
            f"{path}:20002: not UTF-8 text (byte 0xe9 at offset {offset}); convert the file to UTF-8"
        )


def test_a_character_split_between_read_pieces_is_not_an_error(tmp_path):
    from pruneofa.core import data

    path = tmp_path / "x.txt"
    path.write_bytes(b"a" * 7 + "é€😀".encode() * 3 + b"\n\xff")
    for piece in (1, 2, 3, 5, 8):
        assert data._first_bad_byte(path, piece) == (2, path.stat().st_size - 1, 0xFF)


def test_nested_json_is_one_line_with_its_line(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    records = write(tmp_path / "a.json", f'[\n  {{"sentence": "a", "label": 1}},\n  {deep}\n]')
    assert error_of("sst2", records) == (
        f"{records}:3: JSON nested more than 100 levels deep; examples are flat records, fix the file"
    )
    lines = write(tmp_path / "b.jsonl", f'{{"sentence": "a", "label": 1}}\n\n{{"sentence": {deep}}}\n')
    assert error_of("sst2", lines).startswith(f"{lines}:3: JSON nested more than 100 levels")
    squad = write(tmp_path / "c.json", '{"data": ' + deep + "}")
    assert error_of("squad", squad).startswith(f"{squad}:1: JSON nested")
    # nested less than the parser's limit but deeper than any message should print
    value = "[" * 900 + "]" * 900
    label = write(tmp_path / "d.jsonl", f'{{"sentence": "a", "label": {value}}}\n')
    assert error_of("sst2", label).startswith(f"{label}:1: unknown label [[[...]]]")


def test_a_lone_surrogate_is_one_line_with_its_line(tmp_path):
    lines = write(
        tmp_path / "a.jsonl", '{"sentence": "ok", "label": 1}\n{"sentence": "x \\ud800", "label": 0}\n'
    )
    assert error_of("sst2", lines) == (
        f"{lines}:2: column 'sentence' holds a lone surrogate (U+D800) at character 2, which is not valid "
        "Unicode; fix the text"
    )
    array = write(
        tmp_path / "b.json", '[\n{"sentence": "ok", "label": 1},\n{"sentence": "\\udfff", "label": 0}\n]'
    )
    assert error_of("sst2", array).startswith(f"{array}:3: column 'sentence' holds a lone surrogate")
    record = {
        "id": "a",
        "context": "Paris \ud800",
        "question": "Where?",
        "answers": {"text": ["P"], "answer_start": [0]},
    }
    squad = write(tmp_path / "c.jsonl", json.dumps(record) + "\n")
    assert "lone surrogate" in error_of("squad", squad) and f"{squad}:1" in error_of("squad", squad)
    official = json.loads(json.dumps(SQUAD))
    official["data"][0]["paragraphs"][0]["qas"][0]["question"] = "Who \udc80?"
    path = write(tmp_path / "d.json", json.dumps(official))
    assert "question holds a lone surrogate" in error_of("squad", path)


@pytest.mark.parametrize(
    "answers",
    [
        {"text": 5, "answer_start": [0]},
        {"text": ["P"], "answer_start": "0"},
        {"text": [5], "answer_start": [0]},
        {"text": ["P"], "answer_start": ["zero"]},
        {"text": ["P"], "answer_start": [[0]]},
        {"text": ["P"], "answer_start": [True]},
        [{"text": 7, "answer_start": 0}],
    ],
)
def test_malformed_squad_answers_are_one_line(tmp_path, answers):
    record = {"id": "a", "context": "Paris.", "question": "Where?", "answers": answers}
    path = write(tmp_path / "a.jsonl", json.dumps(record) + "\n")
    assert error_of("squad", path).startswith(f"{path}:1")


def test_numbers_too_long_to_convert_are_one_line(tmp_path):
    lines = write(tmp_path / "a.jsonl", '{"sentence": "a", "label": ' + "1" * 5000 + "}\n")
    assert error_of("sst2", lines).startswith(f"{lines}:1: not valid JSON")
    array = write(tmp_path / "b.json", '[{"sentence": "a", "label": ' + "1" * 5000 + "}]")
    assert error_of("sst2", array).startswith(f"{array}: not valid JSON")


def test_squad_official_json(tmp_path):
    path = write(tmp_path / "dev-v1.1.json", json.dumps(SQUAD))
    examples = load_examples(get_task("squad"), tmp_path)
    assert [e.id for e in examples] == ["q1", "q2", "q3"]
    q2 = examples[1]
    assert isinstance(q2, QAExample) and q2.title == "Fox" and q2.question == "Over what?"
    assert q2.answers == ("the lazy dog", "dog") and q2.answer_starts == (31, 40)
    assert q2.context[q2.answer_starts[0] :].startswith(q2.answers[0])
    assert load_examples(get_task("squad"), path, limit=1)[0].id == "q1"


def test_squad_hf_style_records(tmp_path):
    record = {
        "id": "a",
        "title": "T",
        "context": "Paris is in France.",
        "question": "Where?",
        "answers": {"text": ["France"], "answer_start": [12]},
    }
    path = write(tmp_path / "squad.jsonl", json.dumps(record) + "\n")
    (example,) = load_examples(get_task("squad"), path)
    assert (example.id, example.answers, example.answer_starts, example.title) == (
        "a",
        ("France",),
        (12,),
        "T",
    )


def test_plain_text_for_mlm(tmp_path):
    write(tmp_path / "corpus" / "b.txt", "second file\r\n")
    path = write(tmp_path / "corpus" / "a.txt", "\ufeff first line \r\n\r\n   \r\nsecond line\r\n")
    examples = load_examples(get_task("mlm"), tmp_path / "corpus")
    assert [e.texts for e in examples] == [("first line",), ("second line",), ("second file",)]
    assert examples[1].source == f"{path}:4" and examples[0].label is None
    single = load_examples(get_task("mlm"), path)
    assert len(single) == 2


def test_mlm_folder_prefers_split_files(tmp_path):
    write(tmp_path / "wiki.train.raw", "train text\n")
    write(tmp_path / "wiki.valid.raw", "valid text\n")
    assert load_examples(get_task("mlm"), tmp_path)[0].texts == ("valid text",)
    assert load_examples(get_task("mlm"), tmp_path, split="train")[0].texts == ("train text",)
    (tmp_path / "wiki.valid.raw").unlink()
    write(tmp_path / "wiki.test.raw", "test text\n")  # no valid file: every text file but train's
    assert [e.texts for e in load_examples(get_task("mlm"), tmp_path)] == [("test text",)]


def test_limit_and_seed(tmp_path):
    path = write(
        tmp_path / "sst.tsv", tsv(["sentence", "label"], *[[f"s{i}", str(i % 2)] for i in range(50)])
    )
    task = get_task("sst2")
    assert [e.texts[0] for e in load_examples(task, path, limit=3)] == ["s0", "s1", "s2"]
    shuffled = [e.texts[0] for e in load_examples(task, path, limit=5, seed=7)]
    assert shuffled == [e.texts[0] for e in load_examples(task, path, limit=5, seed=7)]
    assert shuffled != ["s0", "s1", "s2", "s3", "s4"]
    assert sorted(e.texts[0] for e in load_examples(task, path, seed=1)) == sorted(f"s{i}" for i in range(50))


# --- the hub ------------------------------------------------------------------------------------------


def test_hub_failure_says_to_pass_local_files(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub (OfflineModeIsEnabled)\nmore detail")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    message = error_of("sst2", "nyu-mll/glue")
    assert (
        message.startswith("cannot load hub dataset nyu-mll/glue (Couldn't reach")
        and "--data PATH" in message
    )


def test_hub_rows_become_examples(monkeypatch):
    import datasets

    calls = []

    def fake(name, config=None, split=None):
        calls.append((name, config, split))
        if name == "rajpurkar/squad":
            return datasets.Dataset.from_dict(
                {
                    "id": ["a"],
                    "title": ["T"],
                    "context": ["Paris is in France."],
                    "question": ["Where?"],
                    "answers": [{"text": ["France"], "answer_start": [12]}],
                }
            )
        if name == "Salesforce/wikitext":
            return datasets.Dataset.from_dict({"text": ["", " = Title = \n", "Body text .\n"]})
        return datasets.Dataset.from_dict(
            {"premise": ["P.", "Q."], "hypothesis": ["H.", "I."], "label": [2, 0], "idx": [0, 1]}
        )

    monkeypatch.setattr(datasets, "load_dataset", fake)
    examples = load_examples(get_task("mnli-mm"), "glue")
    assert [(e.texts, e.label) for e in examples] == [(("P.", "H."), 2), (("Q.", "I."), 0)]
    assert examples[1].source == "glue[validation_mismatched]:2"
    load_examples(get_task("mnli"), "someone/my-nli", split="train")
    (qa,) = load_examples(get_task("squad"), "rajpurkar/squad")
    assert qa.answers == ("France",) and qa.answer_starts == (12,)
    assert [e.texts for e in load_examples(get_task("mlm"), "Salesforce/wikitext")] == [
        (" = Title = \n",),
        ("Body text .\n",),
    ]
    assert calls == [
        ("glue", "mnli", "validation_mismatched"),
        ("someone/my-nli", None, "train"),  # another dataset: no task config is guessed
        ("rajpurkar/squad", None, "validation"),
        ("Salesforce/wikitext", "wikitext-103-raw-v1", "validation"),
    ]


def test_hub_test_split_labels_are_refused(monkeypatch):
    import datasets

    monkeypatch.setattr(
        datasets,
        "load_dataset",
        lambda *a, **k: datasets.Dataset.from_dict({"sentence": ["x"], "label": [-1]}),
    )
    assert "label -1" in error_of("sst2", "nyu-mll/glue")


# --- errors -------------------------------------------------------------------------------------------


def test_missing_paths(tmp_path):
    message = error_of("sst2", tmp_path / "nope.tsv")
    assert f"data file or folder {tmp_path / 'nope.tsv'} does not exist" in message
    assert "does not exist" in error_of("sst2", "data/SST-2/dev.tsv")  # looks like a path, not a hub id


def test_folder_without_the_split_file(tmp_path):
    write(tmp_path / "train.tsv", tsv(["sentence", "label"], ["a", "1"]))
    message = error_of("sst2", tmp_path)
    assert (
        str(tmp_path) in message
        and "no dev file" in message
        and "dev.tsv" in message
        and "dev.csv" in message
    )
    assert "dev_matched.tsv" in error_of("mnli", tmp_path)


def test_empty_and_header_only_files(tmp_path):
    assert "is empty" in error_of("sst2", write(tmp_path / "empty.tsv", ""))
    assert "is empty" in error_of("squad", write(tmp_path / "empty.json", "  \n"))
    assert "header but no data rows" in error_of("sst2", write(tmp_path / "head.tsv", "sentence\tlabel\n"))
    assert "no dev examples" in error_of("mlm", write(tmp_path / "blank.txt", "\n \n"))


def test_malformed_row_names_file_and_line(tmp_path):
    path = write(
        tmp_path / "dev.tsv",
        tsv(
            ["index", "sentence1", "sentence2", "label"],
            ["0", "a", "b", "entailment"],
            ["1", "a\tb", "c", "entailment"],
        ),
    )
    message = error_of("rte", path)
    assert message.startswith(f"{path}:3: 5 fields, expected 4")
    cola = write(tmp_path / "cola.tsv", tsv(["gj04", "1", "", "ok"], ["gj04", "1", "ok"]))
    assert error_of("cola", cola).startswith(f"{cola}:2: 3 fields, expected 4")


def test_missing_column_names_the_existing_ones(tmp_path):
    path = write(tmp_path / "dev.tsv", tsv(["index", "sentence1", "sentence2"], ["0", "a", "b"]))
    message = error_of("rte", path)
    assert (
        message.startswith(f"{path}:1: missing column 'label'")
        and "'index', 'sentence1', 'sentence2'" in message
    )
    assert "GLUE RTE" in message
    csv_path = write(tmp_path / "x.csv", "text,label\nhi,1\n")
    assert "missing column 'sentence'" in error_of("sst2", csv_path)
    json_path = write(tmp_path / "x.jsonl", '{"sentence": "a", "label": 1}\n{"sentence": "b"}\n')
    assert error_of("sst2", json_path).startswith(f"{json_path}:2: missing column 'label'")


def test_unknown_label_names_the_allowed_ones(tmp_path):
    path = write(
        tmp_path / "dev.tsv", tsv(["index", "sentence1", "sentence2", "label"], ["0", "a", "b", "entails"])
    )
    message = error_of("rte", path)
    assert (
        message.startswith(f"{path}:2: unknown label 'entails'") and "entailment, not_entailment" in message
    )
    assert "unknown label 2" in error_of(
        "sst2", write(tmp_path / "s.tsv", tsv(["sentence", "label"], ["a", "2"]))
    )
    assert "has no label" in error_of(
        "sst2", write(tmp_path / "n.tsv", tsv(["sentence", "label"], ["a", " "]))
    )


def test_non_numeric_stsb_score(tmp_path):
    path = write(
        tmp_path / "dev.tsv", tsv(STSB_HEADER, ["0", "g", "f", "y", "0", "n", "n", "A.", "B.", "high"])
    )
    assert error_of("stsb", path).startswith(f"{path}:2: score 'high' is not a number")


def test_malformed_squad_json(tmp_path):
    no_data = write(tmp_path / "a.json", json.dumps({"version": "1.1"}))
    assert error_of("squad", no_data).startswith(f"{no_data} has no 'data'")
    broken = json.loads(json.dumps(SQUAD))
    del broken["data"][1]["paragraphs"][0]["qas"][0]["answers"]
    path = write(tmp_path / "b.json", json.dumps(broken))
    message = error_of("squad", path)
    assert message.startswith(f"{path}: data[1].paragraphs[0].qas[0] (id q3) has no 'answers'")
    broken["data"][1]["paragraphs"][0]["qas"][0]["answers"] = []
    path = write(tmp_path / "c.json", json.dumps(broken))
    assert "has no answers" in error_of("squad", path)
    assert "official JSON" in error_of("squad", write(tmp_path / "d.csv", "id,question\n"))


def test_bad_json_syntax_names_the_line(tmp_path):
    path = write(
        tmp_path / "x.json", '[\n  {"sentence": "a", "label": 1},\n  {"sentence": "b" "label": 0}\n]'
    )
    assert error_of("sst2", path).startswith(f"{path}:3: not valid JSON")
    lines = write(tmp_path / "y.jsonl", '{"sentence": "a", "label": 1}\n{oops}\n')
    assert error_of("sst2", lines).startswith(f"{lines}:2: not valid JSON")
    obj = write(tmp_path / "z.json", '{"rows": []}')
    assert "expected a JSON array of records" in error_of("sst2", obj)


def test_wrong_kind_of_file(tmp_path):
    assert "plain text files are for the mlm task" in error_of("sst2", write(tmp_path / "a.txt", "hello\n"))
    assert "unsupported file type '.xls'" in error_of("sst2", write(tmp_path / "a.xls", "x"))
    assert "not UTF-8" in error_of("mlm", write(tmp_path / "b.txt", "caf\xe9\n", encoding="latin-1"))
    assert "unlabelled CoLA test file" in error_of(
        "cola", write(tmp_path / "t.tsv", tsv(["index", "sentence"], ["0", "x"]))
    )


def test_bad_options(tmp_path):
    path = write(tmp_path / "dev.tsv", tsv(["sentence", "label"], ["a", "1"]))
    assert "unknown split 'test'" in error_of("sst2", path, split="test")
    assert "reads 2 text column(s)" in error_of("rte", path, text_columns=["sentence"])
    assert "has no label column" in error_of("squad", path, label_column="label")
    assert "--limit must be a positive" in error_of("sst2", path, limit=0)


def test_split_squad_by_article():
    examples = [QAExample(f"q{i}", "?", "c", ("c",), (0,), f"title{i % 7}") for i in range(70)]
    train, dev = split_squad_by_article(examples, dev_fraction=0.3, seed=3)
    assert len(train) + len(dev) == 70
    assert not {e.title for e in train} & {e.title for e in dev}
    assert len({e.title for e in dev}) == 2  # round(7 * 0.3)
    assert [e.id for e in dev] == sorted((e.id for e in dev), key=lambda q: int(q[1:]))  # order kept
    assert split_squad_by_article(examples, 0.3, seed=3) == (train, dev)
    with pytest.raises(InputError, match="at least two titles"):
        split_squad_by_article(examples[:1])


# --- the real data ------------------------------------------------------------------------------------


def _real_data() -> Path:
    return Path(
        os.environ.get("PRUNEOFA_DATA") or Path(__file__).resolve().parents[2].parent / "shared" / "data"
    )


REAL = _real_data()


@pytest.mark.parametrize(
    "task,folder,split,rows,positives",
    [
        ("sst2", "SST-2", "dev", 872, 444),
        ("sst2", "SST-2", "train", 67_349, 37_569),
        ("mrpc", "MRPC", "dev", 408, 279),
        ("mrpc", "MRPC", "train", 3_668, 2_474),
        ("rte", "RTE", "dev", 277, 131),  # label 1 = not_entailment
        ("rte", "RTE", "train", 2_490, 1_241),
    ],
)
@pytest.mark.real_data
def test_real_glue_counts(task, folder, split, rows, positives):
    if not (REAL / "glue" / folder).is_dir():
        pytest.skip(f"real data not found at {REAL / 'glue' / folder} (set PRUNEOFA_DATA)")
    examples = load_examples(get_task(task), REAL / "glue" / folder, split=split)
    assert len(examples) == rows
    assert Counter(e.label for e in examples)[1] == positives


@pytest.mark.real_data
def test_real_squad_dev_and_article_split():
    path = REAL / "squad" / "dev-v1.1.json"
    if not path.is_file():
        pytest.skip(f"real data not found at {path} (set PRUNEOFA_DATA)")
    examples = load_examples(get_task("squad"), path)
    assert len(examples) == 10_570 and len({e.title for e in examples}) == 48
    assert sum(len(e.answers) for e in examples) == 34_726
    assert all(
        e.context[s:].startswith(a) for e in examples for a, s in zip(e.answers, e.answer_starts, strict=True)
    )
    train, dev = split_squad_by_article(examples)
    assert not {e.title for e in train} & {e.title for e in dev}
    assert len(train) + len(dev) == 10_570 and len({e.title for e in dev}) == round(48 * 0.2)


@pytest.mark.real_data
def test_real_text_corpora():
    corpus = REAL / "corpus"
    if not corpus.is_dir():
        pytest.skip(f"real data not found at {corpus} (set PRUNEOFA_DATA)")
    wiki = load_examples(get_task("mlm"), corpus / "wikitext-2-raw")
    assert wiki[0].texts == ("= Robert Boulter =",) and all(e.texts[0] for e in wiki)
    books = load_examples(get_task("mlm"), corpus / "gutenberg", limit=5, seed=0)
    assert len(books) == 5 and all("\r" not in e.texts[0] for e in books)
