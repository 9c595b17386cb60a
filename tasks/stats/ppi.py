"""Estimates corrected by human labels: prediction-powered inference (Angelopoulos et al.,
Science 2023). The judge's pass rate over the judged sample, minus the judge's mean error
(judge minus person) over the labelled logs, with the variance of both terms; the interval is
valid even when the judge is biased, because the labels measure the bias."""

from statistics import NormalDist

import numpy as np
from pydantic import BaseModel


class Corrected(BaseModel):
    judge_rate: float
    estimate: float
    low: float
    high: float
    labels: int  # labelled logs the correction rests on
    bias: float  # the judge's mean error the labels measured (judge minus person)


def _mean_and_variance(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Weighted mean and the variance of that mean (Kish's effective sample size)."""
    mean = float(np.average(values, weights=weights))
    n_eff = weights.sum() ** 2 / (weights**2).sum()
    spread = float(np.average((values - mean) ** 2, weights=weights))
    return mean, spread * n_eff / max(n_eff - 1, 1) / n_eff


def corrected_rate(
    judge_all: np.ndarray,
    weights_all: np.ndarray,
    judge_labelled: np.ndarray,
    human_labelled: np.ndarray,
    weights_labelled: np.ndarray,
    confidence: float = 0.95,
) -> Corrected:
    """`judge_all`: the judge's verdicts (0/1) over the judged sample; `*_labelled`: the judge's
    and the people's verdicts on the labelled logs, with their sampling weights."""
    rate, rate_var = _mean_and_variance(judge_all.astype(float), weights_all)
    errors = judge_labelled.astype(float) - human_labelled.astype(float)
    bias, bias_var = _mean_and_variance(errors, weights_labelled)
    estimate = rate - bias
    half = NormalDist().inv_cdf((1 + confidence) / 2) * float(np.sqrt(rate_var + bias_var))
    return Corrected(
        judge_rate=rate, estimate=estimate, low=max(0.0, estimate - half),
        high=min(1.0, estimate + half), labels=len(errors), bias=bias,
    )  # fmt: skip


def corrected_from_rate(
    judge_rate: float,
    judge_rate_variance: float,
    judge_labelled: np.ndarray,
    human_labelled: np.ndarray,
    weights_labelled: np.ndarray,
    confidence: float = 0.95,
) -> Corrected:
    """The same from a pass rate already aggregated (a report's rollups), given the variance of
    that rate."""
    errors = judge_labelled.astype(float) - human_labelled.astype(float)
    bias, bias_var = _mean_and_variance(errors, weights_labelled)
    estimate = judge_rate - bias
    spread = float(np.sqrt(judge_rate_variance + bias_var))
    half = NormalDist().inv_cdf((1 + confidence) / 2) * spread
    return Corrected(
        judge_rate=judge_rate, estimate=estimate, low=max(0.0, estimate - half),
        high=min(1.0, estimate + half), labels=len(errors), bias=bias,
    )  # fmt: skip
