"""Shared helpers of the benchmark scripts."""
from __future__ import annotations

import math


def geo(xs):
    """Geometric mean of the positive, finite values (NaN when there are none)."""
    xs = [x for x in xs if x is not None and x > 0 and math.isfinite(x)]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")
