"""``pruneofa run --recipe FILE``: the whole method as a list of ``pruneofa`` commands, resumable.

A run recipe names its stages; each stage is one subcommand (teacher, prune, finetune, qat,
export, calibrate, validate) with that command's own options, so anything a stage can do is what the
command can do, documented in one place. Every stage writes ``<output>/<stage name>`` (validate:
``<output>/<stage name>.json``). Values may refer to

- ``@NAME`` — the output of an earlier stage (``@qat-sst2-openvino`` for the folder ``qat`` exports to);
- ``{data:NAME}`` — the recipe's data source NAME (``data:`` in the recipe): its hub dataset id by default,
  or, with a data root (``--data-root DIR`` or ``data_root`` in the recipe), its local path(s) under it;
- ``{data}`` — the data root itself (a recipe that uses it needs one);
- ``{model}`` — the recipe's model (``default``: the embedded MiniLM).

``--steps-scale FACTOR`` multiplies every stage's ``steps`` (at least 2), ``save_steps`` and
``logging_steps`` (at least 1) and calibrate's ``samples`` (at least 16): a rehearsal of the whole method
at a fraction of its budget. A rehearsal (FACTOR below 1) is also cheap where its cost does not shrink
with the steps: a training stage saves at most two checkpoints (a checkpoint costs the same whatever the
step count), and every evaluation on dev data (a task stage's ``eval_limit``, validate's ``limit``) is
scaled too, at least 64 examples, the whole dev set counting as :data:`REHEARSAL_EVAL` examples.

Before any work, every stage's command line is parsed by the real command parser, so a typo in a
late stage costs nothing. A stage whose output already exists and is complete (a readable
``pruneofa.json`` of the right stage; a validate report) is skipped; an interrupted training stage
resumes from its checkpoints. The run ends with a summary table, also written to ``summary.md`` and
``summary.json`` in the output folder.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pruneofa.core.errors import InputError, PruneofaError
from pruneofa.core.fsutil import refuse_overlap
from pruneofa.core.manifest import read_manifest
from pruneofa.core.yamlfile import load_yaml_model

Command = Literal["teacher", "prune", "finetune", "qat", "export", "calibrate", "validate"]
# The positional argument of each command (its model), and the option that names its output.
_OUTPUT_OPTION = {"validate": "report"}
_MANIFEST_STAGE = {"teacher": "teacher", "prune": "prune", "finetune": "finetune", "qat": "qat"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_REFERENCE = re.compile(r"@([A-Za-z0-9][A-Za-z0-9_.-]*)")
_SOURCE = re.compile(r"\{data:([^{}]*)\}")
Scalar = str | int | float | bool
# Budget options --steps-scale multiplies, with the least value each may take.
_SCALED = {"steps": 2, "save_steps": 1, "logging_steps": 1}
_SCALED_CALIBRATE = {"samples": 16}
_TRAINING = {"teacher", "prune", "finetune", "qat"}
# A rehearsal's evaluations: the option each command limits its dev examples with, the least it may
# take, and what an unset option (the whole dev set) counts as before scaling (SST-2 dev has 872).
_EVAL_LIMIT = {"teacher": "eval_limit", "finetune": "eval_limit", "qat": "eval_limit", "validate": "limit"}
REHEARSAL_EVAL_LEAST = 64
REHEARSAL_EVAL = 1000


class DataSource(BaseModel):
    """A named data source: a hub dataset id (``id`` or ``id:config``), used when the run has no data
    root, and its local copy under the data root (several paths: a corpus mix, joined by commas)."""

    model_config = ConfigDict(extra="forbid")

    hub: str | None = None
    local: str | list[str] | None = None

    @model_validator(mode="after")
    def _somewhere(self) -> DataSource:
        if not self.hub and not self.local:
            raise ValueError("a data source needs a hub id, a local path or both")
        return self

    def local_paths(self) -> list[str]:
        return [self.local] if isinstance(self.local, str) else list(self.local or [])


class Stage(BaseModel):
    """One stage: a name, a command, its model (positional) and the command's options."""

    model_config = ConfigDict(extra="forbid")

    name: str
    command: Command
    model: str | None = None
    options: dict[str, Scalar | list[Scalar] | None] = Field(default_factory=dict)
    continue_on_failure: bool = False  # e.g. a validate gate whose result is the point, not a blocker

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"stage name {value!r} must be letters, digits, '-', '_' or '.' (it names a folder)"
            )
        return value

    @model_validator(mode="after")
    def _no_output_option(self) -> Stage:
        taken = {"output", _OUTPUT_OPTION.get(self.command, "output")}
        if taken & set(self.options):
            raise ValueError(f"stage {self.name}: the run recipe sets --{'/--'.join(sorted(taken))} itself")
        return self


class RunRecipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    model: str = "default"
    data: dict[str, DataSource] = Field(default_factory=dict)
    data_root: str | None = None
    output: str = "runs/pipeline"
    stages: list[Stage] = Field(min_length=1)
    # Where the recipe file is: a relative data_root in a user's recipe is relative to it (not to the
    # directory the command runs in); built-in recipes resolve theirs against the current directory.
    base_dir: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _references(self) -> RunRecipe:
        seen: list[str] = []
        for stage in self.stages:
            if stage.name in seen:
                raise ValueError(f"stage name {stage.name} is used twice")
            for value in [stage.model, *_flat(stage.options.values())]:
                for source in _SOURCE.findall(str(value or "")):
                    if source not in self.data:
                        known = ", ".join(sorted(self.data)) or "none"
                        raise ValueError(
                            f"stage {stage.name} uses {{data:{source}}}, which the recipe's data: does not "
                            f"name (it names: {known})"
                        )
                for ref in _REFERENCE.findall(str(value or "")):
                    if not any(ref == s or ref.startswith(f"{s}-") or ref.startswith(f"{s}/") for s in seen):
                        raise ValueError(
                            f"stage {stage.name} refers to @{ref}, which no earlier stage writes"
                        )
            seen.append(stage.name)
        return self


def _flat(values: Any) -> list[Any]:
    out = []
    for value in values:
        out += value if isinstance(value, list) else [value]
    return out


def builtin_run_recipes() -> dict[str, Path]:
    folder = resources.files("pruneofa").joinpath("run_recipes")
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml")}


def load_run_recipe(source: str | Path) -> RunRecipe:
    """A run recipe from a YAML file or by built-in name; every error is one line."""
    recipe = load_yaml_model(source, RunRecipe, what="run recipe", builtins=builtin_run_recipes())
    if Path(source).is_file():
        recipe.base_dir = Path(source).resolve().parent
    return recipe


def data_root_of(recipe: RunRecipe, data_root: str | None) -> str | None:
    """``--data-root`` as given (relative to the current directory), else the recipe's ``data_root``,
    which is relative to the recipe file for a recipe read from a file; None when neither is set (named
    data sources then come from the hub)."""
    if data_root is not None:
        return data_root
    if recipe.data_root is None:
        return None
    root = Path(recipe.data_root).expanduser()
    if not root.is_absolute() and recipe.base_dir is not None:
        return str(recipe.base_dir / root)
    return str(root)


_LOCAL = re.compile(r"^(/|\./|\.\./|~)")


def check_inputs(
    recipe: RunRecipe, stages: list[PlannedStage], data_root: str | None, *, output: Path
) -> None:
    """Every data path and local model a stage names exists, before any work starts (a missing data root
    would otherwise fail only after the first stage has loaded its model), and the output root is not,
    does not contain and does not lie inside any of them (or the recipe's model): a stage's
    ``--overwrite`` there would replace what the run reads. Outputs of earlier stages, hub ids and hub
    datasets are not checked here: they are made by the run or fetched by the command."""
    data = data_root_of(recipe, data_root)
    local: list[Path] = [Path(recipe.model).expanduser()]
    hint = f"the data root is {data}; pass --data-root DIR or set data_root in the recipe"
    for planned in stages:
        raw = [planned.stage.model, *_flat(planned.stage.options.values())]
        for value in raw:
            text = str(value or "")
            if not text or _REFERENCE.search(text):
                continue
            if data is not None:
                for name in _SOURCE.findall(text):
                    for part in recipe.data[name].local_paths():
                        path = Path(data, part).expanduser()
                        if not path.exists():
                            raise InputError(
                                f"stage {planned.stage.name}: {path} (data source {name}) does not exist; "
                                f"the data root is {data}: pass the --data-root that holds it, or none to "
                                "read the recipe's data from the hub"
                            )
                        local.append(path)
            if _SOURCE.search(text):
                continue
            if "{data}" in text or _LOCAL.match(text):
                path = Path(text.replace("{data}", str(data)).replace("{model}", recipe.model)).expanduser()
                if not path.exists():
                    why = hint if "{data}" in text else "fix the path in the recipe"
                    raise InputError(f"stage {planned.stage.name}: {path} does not exist; {why}")
                local.append(path)
    refuse_overlap(output, local, what="output root")


@dataclass
class PlannedStage:
    stage: Stage
    argv: list[str]
    output: Path


@dataclass
class StageOutcome:
    name: str
    command: str
    status: str  # "done", "skipped", "failed", "not run"
    seconds: float = 0.0
    output: str = ""
    result: str = ""
    exit_code: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    steps_scale: float = 1.0  # --steps-scale: the stage ran at this fraction of the recipe's budget


def plan(
    recipe: RunRecipe,
    *,
    output: Path | None = None,
    data_root: str | None = None,
    steps_scale: float = 1.0,
) -> list[PlannedStage]:
    """Every stage's command line, with references and placeholders resolved and the budget scaled."""
    root = Path(output or recipe.output)
    data = data_root_of(recipe, data_root)

    def source(stage: Stage, name: str) -> str:
        spec = recipe.data[name]
        if data is not None and spec.local:
            return ",".join(str(Path(data, part)) for part in spec.local_paths())
        if spec.hub:
            return spec.hub
        raise InputError(
            f"stage {stage.name}: data source {name} has no hub id and the run has no data root; "
            "pass --data-root DIR (or set data_root in the recipe)"
        )

    def resolve(stage: Stage, value: Any) -> str:
        text = _SOURCE.sub(lambda m: source(stage, m.group(1)), str(value))
        if "{data}" in text:
            if data is None:
                raise InputError(
                    f"stage {stage.name} uses {{data}} and the run has no data root; pass --data-root DIR "
                    "(or set data_root in the recipe)"
                )
            text = text.replace("{data}", data)
        text = text.replace("{model}", recipe.model)
        return _REFERENCE.sub(lambda m: str(root / m.group(1)), text)

    planned = []
    for stage in recipe.stages:
        out = root / (f"{stage.name}.json" if stage.command == "validate" else stage.name)
        argv = [stage.command]
        model = stage.model
        if model is None and stage.command == "teacher" and recipe.model != "default":
            model = "{model}"  # the teacher's MODEL defaults to the embedded MiniLM by itself
        if model is not None:
            argv.append(resolve(stage, model))
        for key, value in scaled_options(stage, steps_scale).items():
            flag = f"--{key.replace('_', '-')}"
            if value is None or value is False:
                continue
            if value is True:
                argv.append(flag)
            elif isinstance(value, list):
                argv += [flag, ",".join(resolve(stage, v) for v in value)]
            else:
                argv += [flag, resolve(stage, value)]
        argv += [f"--{_OUTPUT_OPTION.get(stage.command, 'output')}", str(out)]
        planned.append(PlannedStage(stage, argv, out))
    return planned


def scaled_options(stage: Stage, factor: float) -> dict[str, Any]:
    """The stage's options with its budget multiplied by ``factor`` (``--steps-scale``): ``steps`` (at
    least 2), ``save_steps`` and ``logging_steps`` (at least 1), calibrate's ``samples`` (at least 16).

    A rehearsal (``factor`` < 1) keeps what does not shrink with the steps from dominating: ``save_steps``
    is at least half the scaled ``steps`` (two checkpoints at most, so resuming is still exercised), and a
    stage that evaluates on dev data (a task stage: teacher with ``task``, finetune, qat; validate)
    evaluates on its limit times ``factor``, at least 64 examples; no limit counts as ``REHEARSAL_EVAL``."""
    if factor == 1:
        return dict(stage.options)
    floors = _SCALED_CALIBRATE if stage.command == "calibrate" else _SCALED
    options = dict(stage.options)
    for key, least in floors.items():
        value = options.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            options[key] = max(least, round(value * factor))
    if factor < 1:
        steps, save_steps = options.get("steps"), options.get("save_steps")
        if isinstance(steps, int) and isinstance(save_steps, int):
            options["save_steps"] = max(save_steps, -(-steps // 2))
        limit_key = _EVAL_LIMIT.get(stage.command)
        evaluates = stage.command == "validate" or (limit_key is not None and options.get("task"))
        if limit_key is not None and evaluates:
            limit = options.get(limit_key)
            whole = limit if isinstance(limit, int) and not isinstance(limit, bool) else REHEARSAL_EVAL
            options[limit_key] = min(whole, max(REHEARSAL_EVAL_LEAST, round(whole * factor)))
    return options


def unscaled_stages(recipe: RunRecipe) -> list[str]:
    """Training stages that set no ``steps``: their command's default budget is not scaled."""
    return [s.name for s in recipe.stages if s.command in _TRAINING and "steps" not in s.options]


def is_complete(planned: PlannedStage) -> bool:
    """True when the stage's output exists and is what a finished run of that command leaves."""
    out = planned.output
    if planned.stage.command == "validate":
        try:
            return "passed" in json.loads(out.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
    try:
        manifest = read_manifest(out) if out.is_dir() else None
    except PruneofaError:
        return False
    if manifest is None:
        # export with several targets writes one folder per target below the output
        subfolders = [p for p in out.iterdir() if p.is_dir()] if out.is_dir() else []
        return (
            planned.stage.command == "export" and bool(subfolders) and all(_readable(p) for p in subfolders)
        )
    expected = _MANIFEST_STAGE.get(planned.stage.command, planned.stage.command)
    if manifest.stage != expected:
        return False
    recorded = manifest.command[1:] if manifest.command[:1] == ["pruneofa"] else None
    if recorded is not None and not same_work(recorded, planned.argv):
        raise InputError(
            f"stage {planned.stage.name}: {out} was made by a different command "
            f"('pruneofa {' '.join(recorded)}'); move it away or choose another --output"
        )
    if planned.stage.command == "qat" and "--no-export" not in planned.argv:
        targets = _option(planned.argv, "--export") or "openvino"
        return all(_readable(Path(f"{out}-{t}")) for t in targets.split(","))
    return True


# Options that change where and how a run reports, not what it computes.
_BOOKKEEPING = {
    "--output",
    "--overwrite",
    "--logging-steps",
    "--save-steps",
    "--report-to",
    "--quiet",
    "--report",
}


def _work(argv: list[str]) -> tuple[tuple[str, ...], frozenset[tuple[str, str]]]:
    """(command and positional arguments, {(option, value)}) with paths resolved; bookkeeping left out."""

    def norm(value: str) -> str:
        try:
            return repr(float(value))  # 5e-5 and 5e-05 are the same learning rate
        except ValueError:
            pass
        path = Path(value)
        return str(path.resolve()) if path.exists() else value

    positional, options, index = [], set(), 0
    while index < len(argv):
        token = argv[index]
        if token.startswith("--"):
            value = argv[index + 1] if index + 1 < len(argv) and not argv[index + 1].startswith("--") else ""
            index += 2 if value else 1
            if token not in _BOOKKEEPING:
                options.add((token, norm(value)))
        else:
            positional.append(norm(token))
            index += 1
    return tuple(positional), frozenset(options)


def same_work(recorded: list[str], planned: list[str]) -> bool:
    """Whether two command lines compute the same thing (same inputs and options, any order)."""
    return _work(recorded) == _work(planned)


def _readable(folder: Path) -> bool:
    try:
        return folder.is_dir() and read_manifest(folder) is not None
    except PruneofaError:
        return False


def _option(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv and argv.index(flag) + 1 < len(argv) else None


def _result(planned: PlannedStage) -> tuple[str, dict[str, Any]]:
    """A short result for the summary: the metric, parity or sparsity the stage recorded."""
    out = planned.output
    if planned.stage.command == "validate":
        try:
            report = json.loads(out.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return "", {}
        metric = report.get("primary_metric", "")
        candidate = report.get("candidate", {}).get("metrics", {}).get(metric)
        reference = report.get("reference", {}).get("metrics", {}).get(metric)
        verdict = "passed" if report.get("passed") else "gate failed"
        text = f"{metric} {_fmt(candidate)} (reference {_fmt(reference)}), agreement {float(report.get('agreement', 0)):.1%}; {verdict}"
        return text, {"validate": report}
    folders = [out] if _readable(out) else sorted(p for p in out.glob("*") if _readable(p))
    if planned.stage.command == "qat":
        folders += [Path(f"{out}-{t}") for t in ("openvino", "onnx") if _readable(Path(f"{out}-{t}"))]
    parts, details = [], {}
    for folder in folders:
        manifest = read_manifest(folder)
        if manifest is None:  # _readable kept only folders with a manifest
            continue
        bits = [f"{k} {v:.2f}" for k, v in manifest.metrics.items() if k != "mlm_head_added"]
        if manifest.training and manifest.training.layer_sparsity:
            values = list(manifest.training.layer_sparsity.values())
            bits.append(f"sparsity {sum(values) / len(values):.1%}")
        if manifest.sparsity is not None and manifest.sparsity.linear_numel:
            s = manifest.sparsity
            bits.append(
                f"{s.weight_format} zeros {s.linear_zeros_after / s.linear_numel:.1%}, lost {s.lost_zeros}"
            )
        if manifest.parity is not None:
            agreement = min(o.argmax_agreement for o in manifest.parity.outputs)
            bits.append(f"agreement {agreement:.1%}")
        size = sum(
            p.stat().st_size for p in folder.glob("*") if p.suffix in (".bin", ".onnx", ".safetensors")
        )
        bits.append(f"{size / 1e6:.1f} MB")
        parts.append(("" if folder == out else f"{folder.name}: ") + ", ".join(bits))
        details[folder.name] = {"metrics": manifest.metrics, "bytes": size}
    return "; ".join(parts), details


def _fmt(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "n/a"


def run_recipe(
    recipe: RunRecipe,
    dispatch: Callable[[list[str]], int],
    check: Callable[[list[str]], None],
    *,
    output: Path | None = None,
    data_root: str | None = None,
    dry_run: bool = False,
    steps_scale: float = 1.0,
) -> list[StageOutcome]:
    """Run the stages in order; ``dispatch(argv)`` runs one command, ``check(argv)`` parses it (raises
    :class:`InputError` on a bad command line). Stops at the first failure unless the stage allows it."""
    stages = plan(recipe, output=output, data_root=data_root, steps_scale=steps_scale)
    for planned in stages:
        check(planned.argv)
    root = Path(output or recipe.output)
    check_inputs(recipe, stages, data_root, output=root)
    if steps_scale != 1:
        print(f"pruneofa run: budget scaled by {steps_scale:g} (--steps-scale)", file=sys.stderr)
        for name in unscaled_stages(recipe):
            print(f"pruneofa run: {name} sets no steps; its command's default is not scaled", file=sys.stderr)
    outcomes: list[StageOutcome] = []

    def outcome(*args: Any, **kwargs: Any) -> StageOutcome:
        return StageOutcome(*args, **kwargs, steps_scale=steps_scale)

    failed = False
    for planned in stages:
        name, command = planned.stage.name, planned.stage.command
        shown = "pruneofa " + " ".join(planned.argv)
        if failed:
            outcomes.append(outcome(name, command, "not run", output=str(planned.output)))
            continue
        if dry_run:
            print(shown)
            outcomes.append(outcome(name, command, "planned", output=str(planned.output)))
            continue
        if is_complete(planned):
            print(f"pruneofa run: {name}: output complete, skipped ({planned.output})", file=sys.stderr)
            result, details = _result(planned)
            outcomes.append(outcome(name, command, "skipped", 0.0, str(planned.output), result, 0, details))
            continue
        print(f"pruneofa run: {name}: {shown}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            code = dispatch(planned.argv)
        except BaseException as err:  # a crash (a bug) or Ctrl-C: still leave the summary of what ran
            outcomes.append(
                outcome(name, command, "failed", time.perf_counter() - started, str(planned.output))
            )
            outcomes.append(outcome("(stopped)", "", f"{type(err).__name__}: {err}"))
            write_summary(root, recipe, outcomes, steps_scale)
            raise
        seconds = time.perf_counter() - started
        result, details = _result(planned)
        status = "done" if code == 0 else "failed"
        outcomes.append(outcome(name, command, status, seconds, str(planned.output), result, code, details))
        if code != 0 and not planned.stage.continue_on_failure:
            failed = True
    if not dry_run:
        write_summary(root, recipe, outcomes, steps_scale)
    return outcomes


def summary_table(outcomes: list[StageOutcome]) -> str:
    rows = ["| stage | command | status | time | result |", "|---|---|---|---|---|"]
    for o in outcomes:
        took = f"{o.seconds:.0f} s" if o.seconds else ""
        rows.append(f"| {o.name} | {o.command} | {o.status} | {took} | {o.result} |")
    return "\n".join(rows)


def scale_note(steps_scale: float) -> str:
    """The line a scaled run's summary carries ("" for the recipe's own budget)."""
    if steps_scale == 1:
        return ""
    return (
        f"Budget scaled by {steps_scale:g} (--steps-scale): steps, checkpoints, logging and calibration "
        "samples are not the recipe's, and neither are the results.\n\n"
    )


def write_summary(
    root: Path, recipe: RunRecipe, outcomes: list[StageOutcome], steps_scale: float = 1.0
) -> None:
    root.mkdir(parents=True, exist_ok=True)
    table = summary_table(outcomes)
    (root / "summary.md").write_text(
        f"# {recipe.name}\n\n{scale_note(steps_scale)}{table}\n", encoding="utf-8"
    )
    payload = {
        "recipe": recipe.model_dump(mode="json"),
        "steps_scale": steps_scale,
        "stages": [o.__dict__ for o in outcomes],
    }
    temporary = root / ".summary.json.tmp"
    temporary.write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")
    temporary.replace(root / "summary.json")
