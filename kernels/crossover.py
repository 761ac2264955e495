"""When a sparse layer pays: crossover sparsities per kernel ISA, sparse format, dense kind and shape.

``crossover.json`` beside this file (or the file ``PRUNEOFA_KERNELS_CROSSOVER`` names) is written by
``benchmarks/kernels_layers.py``. Schema 2 holds one table per kernel ISA (``avx512``, ``avx2``), each
measured on a machine whose OpenVINO ran dense code of that ISA (``dense_isa``), with the CPU, its flags,
the date, the command and the load average, and a list of entries: one per sparse format (``csr``,
``block4x1``, ``int8-1x4-static``, ``int8-1x4-dynamic``) x dense kind (``fp32``, ``bf16``, ``int8``: what
OpenVINO runs for the layer) x shape, with the dense/sparse ratios per token count and the crossover, the
lowest sparsity at which the sparse op beat dense at every measured token count. Shapes not measured are
interpolated by inverse-distance weighting in (log2 in_features, log2 out_features) over the three nearest
entries of the same (format, dense kind). Schema 1 (one CSR-vs-dense-FP32 list per ISA, without the dense
ISA) is read as the ``csr`` x ``fp32`` entries of schema 2.

A table measures one machine, so a file may hold, beside each ISA's default table, tables of the same
kernel ISA measured on other CPU models (``machines``: ISA → list of tables, each with its ``cpu`` and
``flags``). Where one of them was measured on this CPU (:func:`measured_here`), it is the ISA's table here;
elsewhere the default is, and the report says it was measured on another CPU.

:func:`choose` is ``mode="auto"``'s decision for one layer: the entry for the layer's own format and dense
kind when the table has one, else a documented fallback (:data:`FALLBACKS`) that the reason names.
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pruneofa.core.errors import InputError

TABLE_PATH = Path(__file__).resolve().parent / "crossover.json"
TABLE_ENV = "PRUNEOFA_KERNELS_CROSSOVER"
SCHEMA = 2
MAX_TABLE_BYTES = 4 << 20
MEASURED_FORMATS = ("csr", "block4x1", "int8-1x4-static", "int8-1x4-dynamic")  # what kernels_layers.py times
DENSE_KINDS = ("fp32", "bf16", "int8")
INT8_GEMM_REASON = "OpenVINO runs it as an INT8 GEMM on this CPU (VNNI/AMX)"  # the dense-int8 fallback
REGENERATE = "regenerate it with 'python benchmarks/kernels_layers.py'"

FALLBACKS = (
    "A format without entries for the dense kind (always: block, int8-csr, int8-block) uses csr's, the "
    "slowest format, against the same dense kind. "
    "Dense int8 without entries: an FP32-compute format is kept dense where the CPU has VNNI/AMX "
    "(OpenVINO's INT8 GEMM matched the FP32-compute kernel at 90 % zeros, docs/kernels.md), else, and for "
    "int8-1x4, the csr vs dense-fp32 threshold applies. Dense bf16 without entries: the dense-fp32 "
    "threshold of the same format (bf16 dense is faster, so this threshold favours sparse)."
)


@dataclass(frozen=True)
class Verdict:
    """``auto``'s answer for one layer: run it sparse or not, the threshold used, and why."""

    sparse: bool
    crossover: float | None
    reason: str


def table_path() -> Path:
    """The table ``auto`` reads: ``$PRUNEOFA_KERNELS_CROSSOVER`` when set, else the shipped one."""
    chosen = os.environ.get(TABLE_ENV, "")
    return Path(chosen) if chosen else TABLE_PATH


def load_table(path: str | Path | None = None) -> dict:
    """The table at ``path`` (default :func:`table_path`) in schema 2; {} when the shipped file is missing.
    A file named by the environment or the caller must exist; a malformed one raises a one-line InputError."""
    file = Path(path) if path else table_path()
    return _load(str(file), explicit=bool(path) or file != TABLE_PATH)


@functools.lru_cache(maxsize=8)
def _load(file: str, explicit: bool) -> dict:
    source = Path(file)
    if not source.is_file():
        if explicit:
            raise InputError(f"crossover table {file} does not exist; {REGENERATE} or unset {TABLE_ENV}")
        return {}
    if source.stat().st_size > MAX_TABLE_BYTES:
        raise InputError(f"crossover table {file} is larger than {MAX_TABLE_BYTES} bytes; {REGENERATE}")
    try:
        raw = json.loads(source.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"crossover table {file} is not JSON ({err}); {REGENERATE}") from err
    return normalise(raw, file)


def normalise(raw: Any, origin: str = "crossover table") -> dict:
    """``raw`` (schema 1 or 2) as a checked schema-2 table; InputError naming the first problem."""
    if not isinstance(raw, dict):
        raise InputError(f"{origin}: a crossover table is a JSON object; {REGENERATE}")
    if not raw:
        return {}
    schema = raw.get("schema", 1)
    if schema == 1 and "isas" in raw:
        raw = _from_schema_1(raw)
    elif schema != SCHEMA:
        raise InputError(
            f"{origin}: crossover table schema {schema!r} is not one this version reads (1 or {SCHEMA}); {REGENERATE}"
        )
    tables = raw.get("tables")
    if not isinstance(tables, dict):
        raise InputError(f"{origin}: 'tables' must map kernel ISAs to tables; {REGENERATE}")
    for isa, table in tables.items():
        _check_table(table, f"{origin}: table {isa!r}")
    machines = raw.get("machines", {})
    if not isinstance(machines, dict) or not all(isinstance(v, list) for v in machines.values()):
        raise InputError(f"{origin}: 'machines' must map kernel ISAs to lists of tables; {REGENERATE}")
    for isa, others in machines.items():
        for i, table in enumerate(others):
            _check_table(table, f"{origin}: machines {isa!r} table {i}")
            if not isinstance(table.get("cpu"), str) or not isinstance(table.get("flags"), list):
                raise InputError(
                    f"{origin}: machines {isa!r} table {i} needs its 'cpu' and 'flags'; {REGENERATE}"
                )
    return _for_this_cpu(raw) if machines else raw


def _check_table(table: Any, where: str) -> None:
    if not isinstance(table, dict) or not isinstance(table.get("entries"), list):
        raise InputError(f"{where} needs a list of 'entries'; {REGENERATE}")
    for i, entry in enumerate(table["entries"]):
        _check_entry(entry, f"{where} entry {i}")


def measured_here(table: dict, cpu: Any) -> bool:
    """Whether ``table`` (one ISA's) was measured on ``cpu`` (a :class:`pruneofa.core.cpu.CpuInfo`): its
    ``cpu`` (OpenVINO's ``FULL_DEVICE_NAME`` there) is this model name once case, spacing and trademark
    marks are set aside, and its ``flags`` (``detect_cpu().flags`` there; not recorded by schema 1) are this
    CPU's. A name alone is too coarse: VMs of AMD's Zen 3, 4 and 5 all call themselves "AMD EPYC", and the
    flags tell an AVX2-only Zen 3 from the others (Zen 4 and Zen 5 still share both)."""

    def key(name: str) -> str:
        for mark in ("(r)", "(tm)", "processor", "cpu"):
            name = name.lower().replace(mark, " ")
        return " ".join(name.split())

    name, flags = table.get("cpu"), table.get("flags")
    same_flags = not isinstance(flags, list) or set(flags) == set(cpu.flags)
    return isinstance(name, str) and key(name) == key(cpu.model) and same_flags


def _for_this_cpu(raw: dict) -> dict:
    """``raw`` with each ISA's table replaced by one of its ``machines`` measured on this CPU, where the
    default was not and one was."""
    from pruneofa.core.cpu import detect_cpu

    cpu = detect_cpu()
    tables = dict(raw["tables"])
    for isa, others in raw.get("machines", {}).items():
        if isa in tables and measured_here(tables[isa], cpu):
            continue
        mine = next((table for table in others if measured_here(table, cpu)), None)
        if mine is not None:
            tables[isa] = mine
    return {**raw, "tables": tables}


def _check_entry(entry: Any, where: str) -> None:
    if not isinstance(entry, dict):
        raise InputError(f"{where} is not an object; {REGENERATE}")
    if not isinstance(entry.get("format"), str) or entry.get("dense") not in DENSE_KINDS:
        raise InputError(f"{where}: 'format' must be a string and 'dense' one of {DENSE_KINDS}; {REGENERATE}")
    for key in ("in_features", "out_features"):
        value = entry.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise InputError(f"{where}: {key!r} must be a positive integer; {REGENERATE}")
    value = entry.get("crossover")
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise InputError(f"{where}: 'crossover' must be a number from 0 to 1; {REGENERATE}")


def _from_schema_1(raw: dict) -> dict:
    """Schema 1: CSR FP32 against OpenVINO dense FP32 (whatever ISA OpenVINO picked) per kernel ISA."""
    tables = {}
    for isa, old in raw["isas"].items():
        if not isinstance(old, dict) or not isinstance(old.get("shapes", []), list):
            raise InputError(
                f"crossover table (schema 1): ISA {isa!r} needs a list of 'shapes'; {REGENERATE}"
            )
        entries = [
            {**shape, "format": "csr", "dense": "fp32"} if isinstance(shape, dict) else shape
            for shape in old.get("shapes", [])
        ]
        tables[isa] = {
            "cpu": raw.get("cpu", "unknown"),
            "dense_isa": "not recorded (schema 1)",
            "measured": raw.get("measured"),
            "command": raw.get("command"),
            "threads": old.get("threads"),
            "load_average": old.get("load_average"),
            "entries": entries,
        }
    return {"schema": SCHEMA, "about": raw.get("about", ""), "tables": tables}


def crossover(
    in_features: int,
    out_features: int,
    isa: str | None,
    table: dict | None = None,
    format: str = "csr",
    dense: str = "fp32",
) -> float | None:
    """Sparsity (0..1) from which ``format`` beats dense ``dense`` for this shape on ``isa``, or None when
    the table has no entries for them (``table``: schema 1 or 2; default :func:`load_table`)."""
    table = load_table() if table is None else normalise(table)
    entries = [
        entry
        for entry in table.get("tables", {}).get(isa or "", {}).get("entries", [])
        if entry["format"] == format and entry["dense"] == dense
    ]
    if not entries:
        return None
    here = (math.log2(max(1, in_features)), math.log2(max(1, out_features)))
    scored = []
    for entry in entries:
        point = (math.log2(entry["in_features"]), math.log2(entry["out_features"]))
        distance = math.dist(here, point)
        if distance < 1e-9:
            return float(entry["crossover"])
        scored.append((distance, float(entry["crossover"])))
    nearest = sorted(scored)[:3]
    weights = [1.0 / d for d, _ in nearest]
    return sum(w * c for w, (_, c) in zip(weights, nearest, strict=True)) / sum(weights)


def table_format(layout: str, activation_quant: str | None) -> str:
    """The table's name for a layer's format: ``int8-1x4`` carries its activation quantization."""
    return f"{layout}-{activation_quant or 'dynamic'}" if layout == "int8-1x4" else layout


def choose(
    in_features: int,
    out_features: int,
    sparsity: float,
    format: str,
    dense: str,
    isa: str | None,
    table: dict | None = None,
    int8_gemm: bool = False,
) -> Verdict:
    """``auto``'s decision for one layer of ``format`` (:func:`table_format`) whose dense counterpart runs
    as ``dense`` (fp32, bf16 or int8): sparse when the threshold for (isa, format, dense) is at most
    ``sparsity``. Without entries for them, the fallback of :data:`FALLBACKS`; ``int8_gemm``: the CPU has
    VNNI or AMX (only the dense-int8 fallback reads it). The reason names the format, the dense kind, the
    ISA and the threshold, and the fallback where one was taken."""
    table = load_table() if table is None else normalise(table)
    wanted = f"{format} vs dense-{dense}"

    def found(fmt: str, kind: str) -> float | None:
        return crossover(in_features, out_features, isa, table, fmt, kind)

    def verdict(threshold: float, fmt: str, kind: str, note: str = "") -> Verdict:
        used = f"{fmt} vs dense-{kind} ({isa})"
        if sparsity >= threshold:
            why = f"at or above crossover: {used} {sparsity:.1%} >= {threshold:.1%}"
        else:
            why = f"below crossover: {used} {sparsity:.1%} < {threshold:.1%}"
        return Verdict(sparsity >= threshold, threshold, f"{why}{note}")

    threshold = found(format, dense)
    if threshold is not None:
        return verdict(threshold, format, dense)
    missing = f" (fallback: no {wanted} table for {isa})"
    if format != "csr" and (threshold := found("csr", dense)) is not None:
        return verdict(threshold, "csr", dense, missing)
    if dense == "int8":
        if _fp32_compute(format) and int8_gemm:
            return Verdict(
                False,
                None,
                f"kept dense: no {wanted} table for {isa}; fallback: {INT8_GEMM_REASON}, as fast as the "
                "FP32-compute kernel at 90 % zeros (docs/kernels.md); mode=on forces the kernel",
            )
    for fmt in dict.fromkeys((format, "csr")):
        if dense != "fp32" and (threshold := found(fmt, "fp32")) is not None:
            return verdict(threshold, fmt, "fp32", missing)
    if format != "csr" and (threshold := found("csr", "fp32")) is not None:
        return verdict(threshold, "csr", "fp32", missing)
    return Verdict(False, None, f"no crossover measured for ISA {isa} ({wanted} or a fallback): kept dense")


def _fp32_compute(format: str) -> bool:
    return not format.startswith("int8-1x4")
