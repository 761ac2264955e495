"""Zero-shot classification, the task added as one file plus one registry row: over a tiny random NLI
(sequence-classification) export it answers as transformers' own zero-shot pipeline does on the same
PyTorch model, is served over KServe v2 and /predict, refuses what it cannot run, and is validated on
MNLI-style data."""

from __future__ import annotations

import json
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from conftest import tiny_config
from serving import running

from pruneofa.core.errors import InputError
from pruneofa.core.inference import INFERENCE_TASKS
from pruneofa.core.tasks import get_task
from pruneofa.deploy.pipeline import load

NLI_LABELS = {0: "entailment", 1: "neutral", 2: "contradiction"}
TEXTS = ["the movie was a delight", "a dull and tired plot", "the acting was fine but the story was not"]
LABELS = ["movie", "plot", "delight", "story"]


@pytest.fixture(scope="module")
def nli_model(tmp_path_factory, tokenizers_dir):
    """A tiny random BERT NLI model: labels named as MNLI's, in GLUE's id order."""
    import torch
    import transformers

    tokenizer = tokenizers_dir["bert"]
    torch.manual_seed(0)
    config = tiny_config("bert", len(tokenizer), num_labels=3)
    config.id2label = dict(NLI_LABELS)
    config.label2id = {v: k for k, v in NLI_LABELS.items()}
    model = transformers.BertForSequenceClassification(config).eval()
    folder = tmp_path_factory.mktemp("bert-nli")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def nli_export(tmp_path_factory, nli_model):
    from pruneofa.exporter import export_model, make_config

    out = tmp_path_factory.mktemp("nli-export") / "out"
    config = make_config(output=out, targets=["openvino"], parity_samples=24)
    return export_model(str(nli_model), config, quiet=True)[0].output


@pytest.fixture(scope="module")
def zero_shot(nli_export):
    return load(nli_export, task="zero-shot-classification")


@pytest.fixture(scope="module")
def reference(nli_model):
    import transformers

    model = transformers.AutoModelForSequenceClassification.from_pretrained(nli_model).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(nli_model)
    return transformers.ZeroShotClassificationPipeline(model=model, tokenizer=tokenizer, device="cpu")


def _same(ours: dict, theirs: dict, atol: float = 1e-4) -> None:
    """Equal scores per label, and the same order wherever two scores are not a tie within ``atol``."""
    assert ours["sequence"] == theirs["sequence"]
    assert sorted(ours["labels"]) == sorted(theirs["labels"])
    mine = dict(zip(ours["labels"], ours["scores"], strict=True))
    want = dict(zip(theirs["labels"], theirs["scores"], strict=True))
    for label, score in want.items():
        assert mine[label] == pytest.approx(score, abs=atol), label
    assert ours["scores"] == sorted(ours["scores"], reverse=True)
    for i, label in enumerate(theirs["labels"]):
        later = theirs["labels"][i + 1 :]
        assert all(mine[label] >= mine[other] - atol for other in later)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"multi_label": True},
        {"hypothesis_template": "This text is about {}."},
        {"multi_label": True, "hypothesis_template": "It is {}!"},
    ],
)
def test_answers_as_transformers_zero_shot_pipeline(zero_shot, reference, options):
    ours = zero_shot(TEXTS, candidate_labels=LABELS, **options)
    theirs = reference(TEXTS, candidate_labels=LABELS, **options)
    assert len(ours) == len(theirs) == len(TEXTS)
    for mine, want in zip(ours, theirs, strict=True):
        _same(mine, want)
    if not options.get("multi_label"):
        assert all(sum(r["scores"]) == pytest.approx(1.0, abs=1e-6) for r in ours)


def test_single_text_single_label_and_comma_separated_labels(zero_shot, reference):
    _same(zero_shot(TEXTS[0], candidate_labels="movie"), reference(TEXTS[0], candidate_labels="movie"))
    _same(
        zero_shot(TEXTS[1], candidate_labels="movie, plot,story"),
        reference(TEXTS[1], candidate_labels="movie, plot,story"),
    )


def test_scores_separate_labels_the_model_tells_apart(zero_shot):
    """Not a constant: different labels get different scores on the random model."""
    scores = zero_shot(TEXTS[0], candidate_labels=LABELS)["scores"]
    assert max(scores) - min(scores) > 1e-3


def test_bad_input_is_one_line(zero_shot, nli_export, export_once):
    with pytest.raises(InputError, match="needs candidate_labels"):
        zero_shot("a text")
    with pytest.raises(InputError, match="hypothesis_template must be"):
        zero_shot("a text", candidate_labels=["a"], hypothesis_template="no slot here")
    with pytest.raises(InputError, match="holds a text-classification model"):
        load(nli_export, task="question-answering")
    with pytest.raises(InputError, match="unknown task"):
        load(nli_export, task="zero-shot")
    labelled_by_number = load(
        export_once("bert", "text-classification")["openvino"].output, task="zero-shot-classification"
    )
    with pytest.raises(InputError, match="needs an NLI model whose labels name entailment"):
        labelled_by_number("a text", candidate_labels=["a", "b"])


def test_served_over_kserve_v2_and_predict(zero_shot, reference):
    with running(zero_shot) as (base, _, _), httpx.Client(base_url=base) as client:
        name = zero_shot.name
        meta = client.get(f"/v2/models/{name}").json()
        assert meta["parameters"]["task"] == "zero-shot-classification"
        assert [i["name"] for i in meta["inputs"]] == ["text"]
        assert [(o["name"], o["datatype"], o["shape"]) for o in meta["outputs"]] == [
            ("labels", "BYTES", [-1, -1]),
            ("scores", "FP32", [-1, -1]),
        ]
        body = {
            "id": "z1",
            "inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": TEXTS[:2]}],
            "parameters": {"candidate_labels": LABELS, "multi_label": True},
        }
        response = client.post(f"/v2/models/{name}/infer", json=body)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["id"] == "z1"
        outputs = {o["name"]: o for o in answer["outputs"]}
        assert outputs["labels"]["shape"] == outputs["scores"]["shape"] == [2, len(LABELS)]
        expected = reference(TEXTS[:2], candidate_labels=LABELS, multi_label=True)
        for row, want in enumerate(expected):
            k = len(LABELS)
            got = {
                "sequence": TEXTS[row],
                "labels": outputs["labels"]["data"][row * k : (row + 1) * k],
                "scores": outputs["scores"]["data"][row * k : (row + 1) * k],
            }
            _same(got, want)

        predicted = client.post(
            "/predict", json={"inputs": TEXTS[2], "parameters": {"candidate_labels": "plot, story"}}
        )
        assert predicted.status_code == 200, predicted.text
        _same(predicted.json(), reference(TEXTS[2], candidate_labels="plot, story"))

        refusals = [
            ({"inputs": "x"}, "needs candidate_labels"),
            ({"inputs": "x", "parameters": {"candidate_labels": []}}, "invalid value"),
            (
                {"inputs": "x", "parameters": {"candidate_labels": ["a"], "hypothesis_template": "{0} {}"}},
                "invalid value",
            ),
            ({"inputs": "x", "parameters": {"candidate_labels": ["a"] * 33}}, "invalid value"),
            (
                {"inputs": "x", "parameters": {"top_k": 1}},
                "unknown parameter 'top_k' for zero-shot-classification",
            ),
        ]
        for request, message in refusals:
            refused = client.post("/predict", json=request)
            assert refused.status_code == 400 and message in refused.json()["error"], (request, refused.text)


def test_serve_command_refuses_a_task_the_folder_cannot_run(nli_export, capsys):
    from pruneofa.cli import main

    assert main(["serve", str(nli_export), "--task", "fill-mask", "--port", "0"]) != 0
    assert "holds a text-classification model" in capsys.readouterr().err


@pytest.fixture(scope="module")
def mnli_file(tmp_path_factory):
    """MNLI-style dev data: premise, hypothesis and the label by name."""
    rows = [
        {"premise": p, "hypothesis": h, "label": NLI_LABELS[i % 3]}
        for i, (p, h) in enumerate(
            (premise, hypothesis)
            for premise in TEXTS + ["a bright and moving film", "the plot drags on"]
            for hypothesis in ("it is good", "it is bad", "it is a movie")
        )
    ]
    path = tmp_path_factory.mktemp("mnli") / "dev.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_validated_on_mnli_style_data(nli_export, nli_model, mnli_file, tmp_path, capsys):
    from pruneofa.cli import main

    report = tmp_path / "gate.json"
    code = main(
        [
            "validate",
            str(nli_export),
            "--reference",
            str(nli_model),
            "--data",
            str(mnli_file),
            "--task",
            "mnli",
            "--report",
            str(report),
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    result = json.loads(report.read_text())
    assert result["examples"] == 15 and result["agreement"] == 1.0


def test_validated_as_zero_shot_classification(nli_export, nli_model, mnli_file, tmp_path, capsys):
    """``--inference-task zero-shot-classification`` scores the NLI export through the zero-shot task's
    evaluation hook (labels matched by name); with MNLI's label order it scores as the plain run does."""
    from pruneofa.cli import main

    reports = {}
    for name, extra in (("plain", []), ("zero-shot", ["--inference-task", "zero-shot-classification"])):
        reports[name] = tmp_path / f"{name}.json"
        argv = ["validate", str(nli_export), "--reference", str(nli_model), "--data", str(mnli_file)]
        code = main([*argv, "--task", "mnli", "--report", str(reports[name]), "--quiet", *extra])
        assert code == 0, capsys.readouterr().err
    plain, zero_shot = (json.loads(reports[n].read_text()) for n in ("plain", "zero-shot"))
    assert zero_shot["examples"] == 15 and zero_shot["agreement"] == 1.0
    assert (plain["inference_task"], zero_shot["inference_task"]) == (
        "text-classification",
        "zero-shot-classification",
    )
    assert zero_shot["candidate"]["metrics"] == plain["candidate"]["metrics"]
    assert zero_shot["reference"]["metrics"] == plain["reference"]["metrics"]


def test_validate_refuses_an_inference_task_that_cannot_score_the_data(
    nli_export, nli_model, mnli_file, capsys
):
    from pruneofa.cli import main

    argv = ["validate", str(nli_export), "--reference", str(nli_model), "--data", str(mnli_file)]
    code = main([*argv, "--task", "mnli", "--inference-task", "question-answering", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "question-answering is scored on question-answering data" in err[0]


def test_evaluation_scores_by_label_name_whatever_the_head_order():
    """The evaluation hook maps the NLI head's labels to the data set's by name: a head ordered
    (contradiction, neutral, entailment) predicts the same data labels as a GLUE-ordered one."""
    task = INFERENCE_TASKS["zero-shot-classification"]
    mnli = get_task("mnli")
    logits = np.array([[3.0, 0.0, -1.0], [0.0, 2.0, 1.0], [-2.0, 0.0, 4.0]])  # GLUE order
    glue = SimpleNamespace(label2id={"entailment": 0, "neutral": 1, "contradiction": 2})
    reversed_head = SimpleNamespace(label2id={"CONTRADICTION": 0, "NEUTRAL": 1, "ENTAILMENT": 2})
    assert task.evaluation.predictions(logits, mnli, glue).tolist() == [0, 1, 2]
    assert task.evaluation.predictions(logits[:, ::-1], mnli, reversed_head).tolist() == [0, 1, 2]
    assert task.evaluation.label_scores(logits[:, ::-1], mnli, reversed_head).tolist() == logits.tolist()
    with pytest.raises(InputError, match="do not name"):
        task.evaluation.predictions(logits, mnli, SimpleNamespace(label2id={"LABEL_0": 0, "LABEL_1": 1}))
