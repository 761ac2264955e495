"""What this CPU can do for INT8 and sparse inference, read from the operating system.

INT8 matrix multiplication without VNNI (or AMX) uses ``vpmaddubsw``, which adds pairs of u8×s8 products
into a saturating int16: with full 8-bit weights the sum can overflow and accuracy collapses
(the "INT8 BERT is broken on my CPU" reports). The fixes are 7-bit weights — NNCF's overflow fix,
ONNX Runtime's ``reduce_range`` — so calibration asks this module which CPU it is on.

Deployment asks it too: how many cores to give the runtime, and whether OpenVINO's sparse INT8 weight
kernels can run at all (they need AMX; see ``deploy/settings.py``).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)


@dataclass(frozen=True)
class CpuInfo:
    model: str
    cores: int
    flags: frozenset[str]
    known: bool  # False where the flags could not be read: treated as "no VNNI" (the safe side)
    physical_cores: int | None = None  # distinct (socket, core) pairs in the file; None where not listed
    logical_cpus: int | None = None  # "processor" entries in the file

    @property
    def has_avx512(self) -> bool:
        return "avx512f" in self.flags

    @property
    def has_vnni(self) -> bool:
        return bool({"avx512_vnni", "avx_vnni"} & self.flags)

    @property
    def has_amx(self) -> bool:
        return "amx_int8" in self.flags

    @property
    def has_native_bf16(self) -> bool:
        """bf16 matrix instructions (AVX512_BF16 or AMX-BF16): where OpenVINO's bf16 execution is fast."""
        return bool({"avx512_bf16", "amx_bf16"} & self.flags)

    @property
    def has_int8_dot(self) -> bool:
        """INT8 dot-product instructions (VNNI or AMX): OpenVINO's INT8 GEMM is fast and exact here."""
        return self.has_vnni or self.has_amx

    @property
    def int8_saturation_risk(self) -> bool:
        """True where INT8 GEMM goes through saturating int16 sums (no VNNI, no AMX)."""
        return not self.has_int8_dot

    @property
    def isa(self) -> str:
        """The best INT8 matrix instruction set, in words: what decides which kernels can run."""
        if self.has_amx:
            return "AMX"
        if "avx512_vnni" in self.flags:
            return "AVX-512 VNNI"
        if self.has_avx512:
            return "AVX-512 (no VNNI)"
        if "avx_vnni" in self.flags:
            return "AVX2 with AVX-VNNI"
        if "avx2" in self.flags:
            return "AVX2 (no VNNI, no AVX-512, no AMX)"
        return "unknown" if not self.known else "no AVX2"

    def summary(self) -> str:
        shown = ", ".join(f for f in _FLAGS if f in self.flags) or "none of " + "/".join(_FLAGS)
        return f"{self.model} ({self.cores} cores; {shown}{'' if self.known else '; flags unknown'})"


def detect_cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    """Read model name and instruction-set flags (Linux ``/proc/cpuinfo``; elsewhere flags are unknown)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return CpuInfo(platform.processor() or platform.machine(), cores, frozenset(), known=False)
    model, flags = platform.machine(), set()
    processors, core_ids, physical_id = 0, set(), "0"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "processor":
            processors += 1
        elif key == "physical id":
            physical_id = value.strip()
        elif key == "core id":
            core_ids.add((physical_id, value.strip()))
        elif key == "model name" and model == platform.machine():
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return CpuInfo(
        model,
        cores,
        frozenset(f for f in _FLAGS if f in flags),
        known=bool(flags),
        physical_cores=len(core_ids) or None,
        logical_cpus=processors or None,
    )


# NNCF's OverflowFix values, by the names our options use.
NNCF_OVERFLOW_FIX = {"enable": "enable", "disable": "disable", "first-layer": "first_layer_only"}


def overflow_fix_mode(choice: str, saturation_risk: bool) -> tuple[str, str]:
    """NNCF's overflow-fix value for ``choice`` (``auto`` follows the CPU) and why it was chosen."""
    if choice != "auto":
        return NNCF_OVERFLOW_FIX[choice], "requested"
    if saturation_risk:
        return "enable", "CPU without VNNI/AMX"
    return "disable", "CPU has VNNI/AMX"
