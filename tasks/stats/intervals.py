"""Intervals for rates and for the difference of two rates.

- `wilson`: the Wilson score interval, with Kish's effective sample size (sum w)^2 / sum w^2
  standing in for n when inclusion weights differ (`weighted_rate`);
- `wilson_corrected`: with continuity correction, for the handful of scores a run may have;
- `difference_interval` / `rate_change`: Newcombe's hybrid score interval for p1 - p2.
"""

import math
from statistics import NormalDist

import numpy as np


def wilson(rate: float, n: float, confidence: float) -> tuple[float, float]:
    if n <= 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    denominator = 1 + z * z / n
    centre = (rate + z * z / (2 * n)) / denominator
    margin = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - margin), min(1.0, centre + margin)


def effective_n(weights: np.ndarray) -> float:
    total = float(weights.sum())
    squares = float((weights * weights).sum())
    return total * total / squares if squares else 0.0


def weighted_rate(
    hits: np.ndarray, weights: np.ndarray, confidence: float
) -> tuple[float, float, float]:
    rate = float((hits * weights).sum() / weights.sum())
    low, high = wilson(rate, effective_n(weights), confidence)
    return rate, low, high


def difference_interval(
    now: tuple[float, float, float], before: tuple[float, float, float]
) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p1 - p2 from each proportion's (value, low, high)
    Wilson interval (Newcombe 1998, method 10): independent samples, no normal approximation
    of the difference itself."""
    p1, l1, u1 = now
    p2, l2, u2 = before
    diff = p1 - p2
    return (
        diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


def wilson_corrected(passed: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson's score interval with continuity correction (Newcombe 1998, method 4; scipy's
    `wilsoncc`). At a handful of scores the plain score interval is too narrow (one failure
    against a 90% pass rate would be "significant"); this one keeps its coverage there."""
    if n <= 0:
        return 0.0, 1.0
    from scipy.stats import binomtest

    interval = binomtest(passed, n).proportion_ci(confidence, method="wilsoncc")
    return float(interval.low), float(interval.high)


def rate_change(
    passed: int,
    ok: int,
    passed_before: int,
    ok_before: int,
    confidence: float,
    min_samples: int = 1,
) -> tuple[float, float, float] | None:
    """(change, low, high) of a pass rate between two runs (Newcombe's interval from
    continuity-corrected Wilson intervals, method 11), or None when either side has fewer
    than `min_samples` scores: too few to call any change."""
    if min(ok, ok_before) < max(1, min_samples):
        return None
    p1, p2 = passed / ok, passed_before / ok_before
    low, high = difference_interval(
        (p1, *wilson_corrected(passed, ok, confidence)),
        (p2, *wilson_corrected(passed_before, ok_before, confidence)),
    )
    return p1 - p2, low, high
