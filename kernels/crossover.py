"""When a sparse layer pays: the crossover sparsity per (in_features, out_features) and ISA, from measurement.

``crossover.json`` beside this file is written by ``benchmarks/kernels_layers.py``: for each ISA and
measured shape, the lowest sparsity at which the SparseLinear op beat OpenVINO's dense MatMul (same
threads, interleaved rounds) at every measured token count. Shapes not measured are interpolated by
inverse-distance weighting in (log2 in_features, log2 out_features), from the three nearest measured
shapes. An ISA without a table (or a missing file) gives None: ``mode="auto"`` then keeps layers dense.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

TABLE_PATH = Path(__file__).resolve().parent / "crossover.json"


@functools.lru_cache(maxsize=4)
def load_table(path: str | None = None) -> dict:
    file = Path(path) if path else TABLE_PATH
    if not file.is_file():
        return {}
    return json.loads(file.read_text(encoding="utf-8"))


def crossover(
    in_features: int, out_features: int, isa: str | None, table: dict | None = None
) -> float | None:
    """Sparsity (0..1) from which the sparse op is faster than dense for this shape on ``isa``, or None."""
    table = load_table() if table is None else table
    entries = table.get("isas", {}).get(isa or "", {}).get("shapes", [])
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
