"""Weighted bootstrap intervals for means and percentiles: resampling with probability
proportional to the inclusion weight, seeded so a rerun decides the same way."""

import numpy as np

BOOTSTRAP_RESAMPLES = 1000
PERCENTILES = {"p5": 5, "p10": 10, "p25": 25, "p50": 50, "p75": 75, "p90": 90, "p95": 95}


def statistic(metric: str, values: np.ndarray, weights: np.ndarray) -> float:
    if metric == "mean":
        return float(np.average(values, weights=weights))
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order]) / weights.sum()
    index = int(np.searchsorted(cumulative, PERCENTILES[metric] / 100))
    return float(values[order][min(index, len(values) - 1)])


def bootstrap(
    metric: str, values: np.ndarray, weights: np.ndarray, confidence: float, seed: int = 7
) -> tuple[float, float, float]:
    point = statistic(metric, values, weights)
    rng = np.random.default_rng(seed)
    probabilities = weights / weights.sum()
    draws = rng.choice(len(values), size=(BOOTSTRAP_RESAMPLES, len(values)), p=probabilities)
    ones = np.ones(len(values))
    stats = np.array([statistic(metric, values[d], ones) for d in draws])
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return point, float(low), float(high)
