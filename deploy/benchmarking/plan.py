"""How long ``pruneofa benchmark`` will take, said before it measures, and where it stands while it runs.

A run has phases: building each peer, then per batch size the static-shape compiles a candidate waits for,
the warm-up and the timed rounds. :func:`plan_phases` estimates each from what is known once the
candidates are loaded (each candidate's load time and one batch-1 call; the model's size for the peers,
whose build is most of a short run), and :class:`PhaseProgress` reports each phase with the time elapsed
and the estimated time left: a bar on stderr in a terminal, plain progress lines otherwise (logs, CI).
The estimate is refined once the peers are built and have run once. Only the rounds have a set length
(``--duration`` per variant and batch size); the rest is estimated.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pruneofa.core.progress import Progress, format_duration

# Seconds to build each peer: a fixed part plus a part per million parameters of the source model. Set
# from runs on the project's 2-core EPYC (docs/deploy.md, "How long a run takes" under `pruneofa benchmark`); a rough guide, said so.
PEER_BUILD_SECONDS = {
    "torch": (2.0, 0.1),  # load the model
    "onnxruntime": (8.0, 0.8),  # dynamo export, then an ORT session
    "optimum-intel": (12.0, 1.2),  # optimum-intel export, NNCF calibration, compile
}
# Before a peer has run, its batch-1 call is guessed as this many times the slowest candidate's.
PEER_LATENCY_GUESS = 3.0
# A static-shape compile takes about this share of the candidate's load (which also reads the IR and
# prepares the sparse kernels).
STATIC_COMPILE_SHARE = 0.5
# Writing benchmark.json, .md and the chart (matplotlib's import included).
REPORT_SECONDS = 5.0
# Each round runs every variant at least this many times (measurement.measure's minimum).
MIN_CALLS_PER_ROUND = 3


def parameters_millions(hf_config: Any) -> float:
    """A transformer's size from its config (12·layers·hidden² + vocabulary·hidden), in millions."""
    hidden = int(getattr(hf_config, "hidden_size", 0) or getattr(hf_config, "dim", 0) or 0)
    layers = int(getattr(hf_config, "num_hidden_layers", 0) or getattr(hf_config, "n_layers", 0) or 0)
    vocab = int(getattr(hf_config, "vocab_size", 0) or 0)
    return (12 * layers * hidden * hidden + vocab * hidden) / 1e6


def peer_phase(kind: str) -> str:
    """The phase that builds the peer ``kind``."""
    return f"building peer {kind}"


def call_ms(variant: Any, feed: dict[str, Any], calls: int = 2) -> float:
    """Milliseconds of a call of a built variant on ``feed``, the quickest of ``calls`` (0 for one that
    could not be built or fails: the warm-up reports that failure)."""
    if variant.run is None:
        return 0.0
    times = []
    try:
        for _ in range(calls):
            started = time.perf_counter()
            variant.run(feed)
            times.append((time.perf_counter() - started) * 1000.0)
    except Exception:  # an estimate never stops the run
        return 0.0
    return min(times)


def measured_costs(variants: list[Any], batch: int, known: list[VariantCost]) -> list[VariantCost]:
    """Each variant's cost from its median at ``batch`` (per sequence), keeping the static-shape compile
    time known from loading."""
    compile_s = {c.label: c.static_compile_s for c in known}
    costs = []
    for variant in variants:
        result = next((m for m in variant.report.results if m.batch == batch), None)
        if result is not None:
            label = variant.report.label
            costs.append(VariantCost(label, result.p50_ms / batch, compile_s.get(label, 0.0)))
    return costs


def peer_build_seconds(kind: str, millions: float) -> float:
    fixed, per_million = PEER_BUILD_SECONDS[kind]
    return fixed + per_million * millions


@dataclass
class VariantCost:
    """What is known of one variant before the rounds: one batch-1 call (ms) and, for a candidate that
    runs each batch on a static-shape copy, the seconds one compile takes (its load time)."""

    label: str
    batch1_ms: float
    static_compile_s: float = 0.0

    def call_s(self, batch: int) -> float:
        """One call at ``batch``: the batch-1 call scaled linearly (a rough guide for small models)."""
        return self.batch1_ms * batch / 1000.0


@dataclass
class Phase:
    name: str
    estimate_s: float
    kind: str  # "peer", "compile", "warm-up", "rounds"


def plan_phases(
    variants: list[VariantCost],
    peers: list[str],
    peer_costs: list[VariantCost] | None,
    *,
    millions: float,
    batches: list[int],
    duration: float,
    repeats: int,
    warmup: int,
) -> list[Phase]:
    """The phases still to come with their estimated seconds. ``peer_costs`` is None before the peers are
    built (their build then comes first and their calls are guessed); after, the measured peers."""
    phases: list[Phase] = []
    if peer_costs is None:
        phases += [Phase(peer_phase(kind), peer_build_seconds(kind, millions), "peer") for kind in peers]
        slowest = max((v.batch1_ms for v in variants), default=10.0)
        peer_costs = [VariantCost(kind, PEER_LATENCY_GUESS * slowest) for kind in peers]
    everyone = [*variants, *peer_costs]
    share = duration / repeats
    for batch in batches:
        compiles = sum(v.static_compile_s for v in everyone)
        if compiles > 0:
            phases.append(Phase(f"batch {batch}: static-shape compiles", compiles, "compile"))
        warm = sum(max(warmup, 1) * v.call_s(batch) for v in everyone)
        phases.append(Phase(f"batch {batch}: warm-up", warm, "warm-up"))
        rounds = sum(repeats * max(share, MIN_CALLS_PER_ROUND * v.call_s(batch)) for v in everyone)
        phases.append(Phase(f"batch {batch}: {repeats} rounds", rounds, "rounds"))
    phases.append(Phase("writing the report", REPORT_SECONDS, "report"))
    return phases


def estimate_line(phases: list[Phase], *, variants: int, batches: int, duration: float, repeats: int) -> str:
    """The line printed before measuring: the estimated total and what it is made of."""
    total = sum(p.estimate_s for p in phases)
    by_kind = {
        k: sum(p.estimate_s for p in phases if p.kind == k) for k in ("peer", "compile", "warm-up", "rounds")
    }
    parts = []
    if by_kind["peer"]:
        parts.append(f"building peers ~{format_duration(by_kind['peer'])}")
    if by_kind["compile"]:
        parts.append(f"static-shape compiles ~{format_duration(by_kind['compile'])}")
    parts.append(f"warm-up ~{format_duration(by_kind['warm-up'])}")
    parts.append(
        f"timed rounds {variants} variant{'s' * (variants != 1)} × {batches} batch size{'s' * (batches != 1)}"
        f" × {duration:g} s"
        f" ≈ {format_duration(by_kind['rounds'])}"
    )
    return f"estimated time left: about {format_duration(total)} ({', '.join(parts)}); {repeats} rounds per batch size"


class PhaseProgress(Progress):
    """Progress of the benchmark's phases; a :class:`~pruneofa.core.progress.Progress` whose lines carry
    the elapsed and estimated remaining time.

    :meth:`start` begins a planned phase and says so; other messages go out as usual. In a terminal
    (``bar=True``) a bar on stderr follows the estimated seconds done, ticking once a second, and the
    messages are written above it. ``clock`` is replaceable for tests."""

    def __init__(
        self, quiet: bool = False, *, bar: bool = False, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.clock = clock
        super().__init__(quiet)
        self.started = clock()
        self.phases: list[Phase] = []
        self._done_s = 0.0  # estimated seconds of the phases already finished
        self._current: Phase | None = None
        self._phase_started = self.started
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._bar: Any = None
        self._ticker: threading.Thread | None = None
        if bar and not quiet:
            from tqdm import tqdm

            self._bar = tqdm(
                total=1,
                file=sys.stderr,
                desc="benchmark",
                bar_format="{desc} |{bar}| {percentage:3.0f}%{postfix}",
                dynamic_ncols=True,
                leave=False,
                disable=False,
            )
            self._ticker = threading.Thread(target=self._tick, daemon=True, name="pruneofa-benchmark-bar")
            self._ticker.start()

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def __call__(self, message: str) -> None:
        if self.quiet:
            return
        if self._bar is not None:
            with self._lock:
                self._bar.write(f"[{self.elapsed:6.1f}s] {message}", file=sys.stderr)
        else:
            super().__call__(message)

    def set_plan(self, phases: list[Phase]) -> None:
        """The phases still to come (replaces what remained of the previous plan)."""
        with self._lock:
            self.phases = list(phases)
        self._refresh()

    def remaining_s(self) -> float:
        """Estimated seconds left: what the current phase has not used of its estimate, plus the rest."""
        with self._lock:
            left = sum(p.estimate_s for p in self.phases)
            if self._current is not None:
                left += max(0.0, self._current.estimate_s - (self.clock() - self._phase_started))
            return left

    def status(self) -> str:
        """``elapsed 1m05s, about 2m10s left``."""
        return f"elapsed {format_duration(self.elapsed)}, about {format_duration(self.remaining_s())} left"

    def start(self, name: str) -> None:
        """Finish the current phase and begin ``name`` (a planned phase, or an unplanned one of no estimate)."""
        with self._lock:
            self._finish()
            found = next((p for p in self.phases if p.name == name), None)
            if found is not None:
                self.phases.remove(found)
            self._current = found or Phase(name, 0.0, "other")
            self._phase_started = self.clock()
        self(f"{name} ({self.status()})")
        self._refresh()

    def note(self, message: str) -> None:
        """A message within the current phase, with the elapsed and remaining time."""
        self(f"{message} ({self.status()})")
        self._refresh()

    def close(self) -> None:
        """End the last phase and remove the bar (call before printing results)."""
        with self._lock:
            self._finish()
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def finish(self) -> None:
        """End the current phase (its estimate counts as done)."""
        with self._lock:
            self._finish()
        self._refresh()

    def _finish(self) -> None:
        if self._current is not None:
            self._done_s += self._current.estimate_s
            self._current = None

    def _refresh(self) -> None:
        with self._lock:
            if self._bar is None:
                return
            current = 0.0
            if self._current is not None:
                current = min(self._current.estimate_s, self.clock() - self._phase_started)
            done = self._done_s + current
            self._bar.total = max(done + self.remaining_s(), 1e-9)
            self._bar.n = done
            self._bar.set_description_str(self._current.name if self._current else "benchmark", refresh=False)
            self._bar.set_postfix_str(self.status(), refresh=False)
            self._bar.refresh()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self._refresh()
            except Exception:  # a bar that cannot draw must not stop the measurement
                return
