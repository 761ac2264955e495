"""The manifest schema round-trips and refuses malformed or foreign files with a clear message."""

from __future__ import annotations

import json

import pytest

from pruneofa.core.errors import InputError
from pruneofa.core.manifest import (
    Manifest,
    SourceInfo,
    library_versions,
    now_utc,
    read_manifest,
    write_manifest,
)


def _manifest() -> Manifest:
    return Manifest(
        stage="export",
        command=["pruneofa", "export"],
        created_at=now_utc(),
        versions=library_versions(),
        source=SourceInfo(model="/models/x", model_type="bert", file_sha256={"model.safetensors": "ab"}),
        metrics={"accuracy": 0.9},
    )


def test_round_trip(tmp_path):
    manifest = _manifest()
    write_manifest(tmp_path, manifest)
    assert read_manifest(tmp_path) == manifest
    assert "torch" in manifest.versions and "python" in manifest.versions


def test_missing_manifest_is_none(tmp_path):
    assert read_manifest(tmp_path) is None


@pytest.mark.parametrize(
    "content,message",
    [
        ("{not json", "is not valid JSON"),
        (json.dumps([1, 2]), "is not a pruneofa manifest"),
        (json.dumps({"tool": "other"}), "is not a pruneofa manifest"),
        (json.dumps({"tool": "pruneofa", "schema_version": 99}), "schema_version 99"),
        (json.dumps({"tool": "pruneofa", "schema_version": 1, "stage": "export"}), "is malformed at command"),
    ],
)
def test_malformed_manifest_is_a_clear_error(tmp_path, content, message):
    (tmp_path / "pruneofa.json").write_text(content)
    with pytest.raises(InputError, match=message) as info:
        read_manifest(tmp_path)
    assert "\n" not in str(info.value)


def test_unknown_field_is_refused(tmp_path):
    raw = json.loads(_manifest().model_dump_json())
    raw["surprise"] = 1
    (tmp_path / "pruneofa.json").write_text(json.dumps(raw))
    with pytest.raises(InputError, match="malformed at surprise"):
        read_manifest(tmp_path)
