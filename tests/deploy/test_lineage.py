"""Lineage you can audit: every stage records the content hash of the folder it read beside its command,
so an exported model's pruneofa.json chains back to the dense model by content, and ``validate`` says
when the reference is not one of the folders the candidate was made from."""

from __future__ import annotations

import json

import pytest

from pruneofa.cli import main
from pruneofa.core.manifest import content_digest, hash_model_files, read_manifest


@pytest.fixture(scope="module")
def exported(pipeline, tmp_path_factory):
    out = tmp_path_factory.mktemp("lineage") / "sst2-ov"
    assert main(["export", str(pipeline / "sparse-sst2"), "--target", "openvino", "--output", str(out)]) == 0
    return out


def test_each_stage_records_the_content_hash_of_what_it_read(pipeline, exported):
    manifest = read_manifest(exported)
    assert [e.stage for e in manifest.lineage] == ["teacher", "prune", "finetune"]
    by_stage = {e.stage: e.source_sha256 for e in manifest.lineage}
    assert by_stage["prune"] == content_digest(hash_model_files(pipeline / "mlm"))
    assert by_stage["finetune"] == content_digest(hash_model_files(pipeline / "sparse"))
    assert manifest.source.content_digest() == content_digest(hash_model_files(pipeline / "sparse-sst2"))


def test_validate_says_whether_the_reference_is_an_ancestor(pipeline, exported, sst2_dir, tmp_path, capsys):
    def run(reference) -> tuple[dict, str]:
        report = tmp_path / "report.json"
        argv = ["validate", str(exported), "--reference", str(reference), "--data", str(sst2_dir)]
        main(
            [
                *argv,
                "--task",
                "sst2",
                "--max-drop",
                "100",
                "--min-label-agreement",
                "0",
                "--report",
                str(report),
            ]
        )
        return json.loads(report.read_text(encoding="utf-8")), capsys.readouterr().out

    found, out = run(pipeline / "sparse-sst2")  # the model the export was made from
    assert found["reference_is_ancestor"] is True and "WARNING" not in out
    found, out = run(pipeline / "sst2-teacher")  # a different model: the dense teacher
    assert found["reference_is_ancestor"] is False
    assert "WARNING: the reference" in out and "is not an ancestor of the candidate" in out


def test_info_prints_the_chain_back_to_the_dense_model(pipeline, exported, capsys):
    assert main(["info", str(exported)]) == 0
    out = capsys.readouterr().out.splitlines()
    start = out.index("  lineage (oldest first; sha256 of the folder each stage read):")
    chain = [line.split()[0] for line in out[start + 1 : start + 5]]
    assert chain == ["teacher", "prune", "finetune", "export"]
    mlm = content_digest(hash_model_files(pipeline / "mlm"))[:12]
    assert f"from {pipeline / 'mlm'} [sha256 {mlm}]" in out[start + 2]
