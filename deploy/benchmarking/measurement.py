"""How the benchmark measures: identical random inputs, warm-up, then interleaved rounds in which every
variant runs for the same time in turn, so that machine noise hits all alike; per-round percentiles
summarized by their median over rounds; peak memory while a variant loads; and a warning when the
machine is already busy.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel

from pruneofa.deploy.benchmarking.plan import MIN_CALLS_PER_ROUND, PhaseProgress


class Measurement(BaseModel):
    batch: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    throughput_seq_s: float
    iterations: int
    rounds: int


def machine_load_average() -> float | None:
    """The 1-minute load average, where the system reports one."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def busy_machine(cores: int, load: float | None = None) -> str | None:
    """A warning when other processes already keep the cores busy (1-minute load average): OpenMP
    threads then wait at every barrier for a core, so latencies, and ratios against PyTorch most of all,
    are not what an idle machine gives (docs/deploy.md has the figures)."""
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (OSError, AttributeError):
            return None
    if load < 0.5 * cores:
        return None
    return (
        f"warning: the machine is busy (load average {load:.1f} on {cores} cores); latencies will be inflated, "
        "PyTorch's OpenMP threads most of all — measure on an idle machine for figures to publish"
    )


def passive_openmp() -> str:
    """Make idle OpenMP threads sleep instead of spin, for every variant of this process, and say so.

    PyTorch (the PyTorch peer, and optimum-intel's, which imports it) starts OpenMP threads whose default
    wait policy spins after each parallel region. On a machine with as many cores as the benchmark's
    threads they then take cores from the OpenVINO variants measured after them in the same process:
    measured on the 2-core Zen 4-class EPYC, MiniLM seq 128 batch 1, with optimum-intel's peer loaded,
    the 90 % 1 × 4 INT8 sparse model took 6.4 ms and dense INT8 8.6 ms; with ``OMP_WAIT_POLICY=PASSIVE``,
    4.7 and 7.7 (the peer itself 8.0 → 7.7). GNU OpenMP reads the variable once, when PyTorch loads it, so
    it is set here only where the user has not set it and PyTorch is not imported yet: ``pruneofa
    benchmark`` calls this before importing the benchmark (which imports PyTorch)."""
    import sys

    global _OPENMP_SET
    if _OPENMP_SET:
        return _OPENMP_SET
    if "OMP_WAIT_POLICY" in os.environ:
        return f"OpenMP: OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']} (as set)"
    if "torch" in sys.modules:
        return (
            "OpenMP: wait policy left at its default (PyTorch was imported before the benchmark started; set "
            "OMP_WAIT_POLICY=PASSIVE before importing it, or idle PyTorch threads may spin beside the variants)"
        )
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    _OPENMP_SET = (
        "OpenMP: OMP_WAIT_POLICY=PASSIVE (idle PyTorch threads sleep instead of spinning beside the variants)"
    )
    return _OPENMP_SET


_OPENMP_SET = ""  # the line passive_openmp() returned when it set the variable itself


class PeakRss:
    """Peak resident memory of this process while the block runs (sampled every 5 ms), minus the start."""

    def __enter__(self) -> PeakRss:
        import psutil

        self._process = psutil.Process()
        gc.collect()
        self.start = self._process.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(0.005)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    @property
    def megabytes(self) -> float:
        return round((self.peak - self.start) / 2**20, 1)


def make_feed(tokenizer: Any, input_names: list[str], batch: int, seq: int, vocab: int, seed: int = 0):
    """``batch`` × ``seq`` random ordinary tokens between the tokenizer's start and end tokens."""
    rng = np.random.default_rng(seed)
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    ordinary = np.array([i for i in range(vocab) if i not in special], dtype=np.int64)
    ids = ordinary[rng.integers(0, len(ordinary), size=(batch, seq))]
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    end = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if start is not None:
        ids[:, 0] = start
    if end is not None:
        ids[:, -1] = end
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    if "token_type_ids" in input_names:
        feed["token_type_ids"] = np.zeros_like(ids)
    return feed


def measure(run: Callable, feed: dict[str, np.ndarray], seconds: float, minimum: int = 3) -> list[float]:
    """Milliseconds of each call of ``run(feed)`` for ``seconds`` (and at least ``minimum`` calls)."""
    times = []
    deadline = time.perf_counter() + seconds
    while len(times) < minimum or time.perf_counter() < deadline:
        started = time.perf_counter()
        run(feed)
        times.append((time.perf_counter() - started) * 1000.0)
    return times


def summarize(batch: int, rounds: list[list[float]]) -> Measurement:
    """The median over rounds of each round's percentiles and throughput."""
    per_round = [np.percentile(r, [50, 90, 99]) for r in rounds]
    throughput = [batch * len(r) / (sum(r) / 1000.0) for r in rounds]
    return Measurement(
        batch=batch,
        p50_ms=round(float(np.median([p[0] for p in per_round])), 3),
        p90_ms=round(float(np.median([p[1] for p in per_round])), 3),
        p99_ms=round(float(np.median([p[2] for p in per_round])), 3),
        throughput_seq_s=round(float(np.median(throughput)), 2),
        iterations=sum(len(r) for r in rounds),
        rounds=len(rounds),
    )


def interleaved_rounds(
    variants: Sequence[Any],
    feed: dict[str, np.ndarray],
    batch: int,
    *,
    warmup: int,
    repeats: int,
    duration: float,
    step: PhaseProgress,
) -> None:
    """Wait for the candidates' static-shape compiles for this batch, warm every variant up on ``feed``,
    then run ``repeats`` rounds in which each variant runs for ``duration / repeats`` seconds in turn (at
    least :data:`MIN_CALLS_PER_ROUND` calls); each variant's report gets its :class:`Measurement` for
    ``batch``. A variant that fails is marked unavailable with the reason and left out of the rounds."""
    runnable = list(variants)

    def failed(variant: Any, err: Exception) -> None:  # a runtime error in one variant is reported, not fatal
        variant.report.available = False
        variant.report.reason = f"failed at batch {batch}: {type(err).__name__}: {str(err)[:200]}"
        runnable.remove(variant)

    if any(v.static_shapes for v in runnable):
        step.start(f"batch {batch}: static-shape compiles")
    for variant in list(runnable):
        try:
            variant.specialize(feed)
        except Exception as err:
            failed(variant, err)
    step.start(f"batch {batch}: warm-up")
    for variant in list(runnable):
        try:
            for _ in range(max(warmup, 1)):
                variant.run(feed)
        except Exception as err:
            failed(variant, err)
    rounds: dict[int, list[list[float]]] = {id(v): [] for v in runnable}
    share = duration / repeats
    step.start(f"batch {batch}: {repeats} rounds")
    for round_index in range(repeats):
        step.note(f"batch {batch}: round {round_index + 1}/{repeats}, {share:.1f} s per variant")
        for variant in runnable:
            rounds[id(variant)].append(measure(variant.run, feed, share, MIN_CALLS_PER_ROUND))
    for variant in runnable:
        variant.report.results.append(summarize(batch, rounds[id(variant)]))
