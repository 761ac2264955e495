"""``pruneofa benchmark``: latency and throughput of exported folders beside the peers a user would
otherwise run.

* :mod:`.benchmark`: :func:`benchmark_model`, the command as a function;
* :mod:`.peers`: what runs (the candidates, and the PyTorch, ONNX Runtime and optimum-intel peers);
* :mod:`.measurement`: the inputs, the interleaved timing rounds and their statistics, peak memory;
* :mod:`.plan`: the time estimate printed before measuring, and progress per phase with the time left;
* :mod:`.report`: the JSON schema, ratios and verdict, the Markdown table and the chart.
"""

from pruneofa.core.lazy import lazy_exports

_EXPORTS = {
    "benchmark_model": "benchmark",
    "BenchmarkReport": "report",
    "markdown_table": "report",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
