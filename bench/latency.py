"""Latency percentiles as the benchmarks print them."""

from __future__ import annotations

import statistics


def percentile_ms(seconds: list[float], q: int) -> float:
    """The q-th percentile (1..99) of durations in seconds, in milliseconds; 0 when empty."""
    if len(seconds) < 2:
        return 1000 * seconds[0] if seconds else 0.0
    return statistics.quantiles(seconds, n=100)[q - 1] * 1000
