"""core.fsutil: outputs that would overwrite an input are refused; bounded reads of small files."""

from __future__ import annotations

import os

import pytest

from pruneofa.core.errors import InputError
from pruneofa.core.fsutil import atomic_output_dir, check_output_dir, read_bounded, refuse_overlap


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "exports" / "m1").mkdir(parents=True)
    (tmp_path / "exports" / "m1" / "config.json").write_text("{}")
    (tmp_path / "exports" / "m2").mkdir()
    return tmp_path / "exports"


@pytest.mark.parametrize(
    ("output", "relation"),
    [
        ("m1", "is the input"),
        (".", "contains the input"),
        ("..", "contains the input"),
        ("m1/new", "lies inside the input"),
        ("m1/config.json", "lies inside the input"),
    ],
)
def test_overlaps_are_refused(tree, output, relation):
    with pytest.raises(InputError, match=relation):
        check_output_dir(tree / output, overwrite=True, inputs=[tree / "m1"])


def test_a_file_input_inside_the_output_is_refused(tree):
    with pytest.raises(InputError, match="contains the input"):
        check_output_dir(tree, overwrite=True, inputs=[str(tree / "m1" / "config.json")])


def test_links_are_resolved(tree, tmp_path):
    (tmp_path / "to-m1").symlink_to(tree / "m1", target_is_directory=True)
    (tmp_path / "to-exports").symlink_to(tree, target_is_directory=True)
    with pytest.raises(InputError, match="is the input"):
        refuse_overlap(tmp_path / "to-m1", [tree / "m1"])
    with pytest.raises(InputError, match="contains the input"):
        refuse_overlap(tmp_path / "to-exports", [tree / "m1"])
    with pytest.raises(InputError, match="is the input"):
        refuse_overlap(tree / "m1", [tmp_path / "to-m1"])  # the input named through a link


def test_siblings_hub_ids_and_none_pass(tree, monkeypatch):
    monkeypatch.chdir(tree)
    assert check_output_dir(tree / "m2", overwrite=True, inputs=[tree / "m1", None, "org/model", "bert"])
    assert check_output_dir(tree / "m1-onnx", overwrite=False, inputs=[tree / "m1"]) == tree / "m1-onnx"


def test_atomic_output_dir_leaves_the_input_and_its_siblings(tree):
    (tree / "note.txt").write_text("keep")
    with pytest.raises(InputError, match="contains the input"):
        with atomic_output_dir(tree, overwrite=True, inputs=[tree / "m1"]):
            pytest.fail("the body must not run")
    assert sorted(p.name for p in tree.iterdir()) == ["m1", "m2", "note.txt"]


def test_a_linked_output_is_resolved_once(tree, tmp_path):
    """A link retargeted at the input while the work ran does not redirect the swap onto the input."""
    link = tmp_path / "out"
    link.symlink_to(tree / "m2", target_is_directory=True)
    with atomic_output_dir(link, overwrite=True, inputs=[tree / "m1"]) as staging:
        (staging / "x").write_text("new")
        link.unlink()
        link.symlink_to(tree / "m1", target_is_directory=True)
    assert (tree / "m1" / "config.json").is_file() and not (tree / "m1" / "x").exists()
    assert (tree / "m2" / "x").read_text() == "new"


def test_read_bounded_reads_small_regular_files(tmp_path):
    key = tmp_path / "key.pem"
    key.write_bytes(b"x" * 100)
    assert read_bounded(key, 100) == b"x" * 100
    with pytest.raises(InputError, match="over 64 bytes"):
        read_bounded(key, 64, what="--sign")


def test_read_bounded_refuses_devices_fifos_and_folders(tmp_path):
    with pytest.raises(InputError, match="not a regular file"):
        read_bounded("/dev/zero", 64 * 1024, what="--verify")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        read_bounded(fifo, 1024)  # no writer: opening it must not block
    with pytest.raises(InputError, match="not a regular file|cannot read"):
        read_bounded(tmp_path, 1024)
    with pytest.raises(InputError, match="cannot read"):
        read_bounded(tmp_path / "missing", 1024)
