"""The statistics behind breach decisions, checked against independent computations."""

import math

import numpy as np
import pytest

from tasks.alerts.rules import Measurement, judge
from tasks.config import AlertsConfig, ThresholdRule
from tasks.stats.bootstrap import bootstrap
from tasks.stats.intervals import (
    effective_n,
    rate_change,
    weighted_rate,
    wilson,
    wilson_corrected,
)


def test_wilson_matches_the_textbook_formula() -> None:
    # 8 of 10 at 95%: Wilson interval (0.490, 0.943) (e.g. Agresti & Coull 1998, table values)
    low, high = wilson(0.8, 10, 0.95)
    assert math.isclose(low, 0.4902, abs_tol=1e-3) and math.isclose(high, 0.9433, abs_tol=1e-3)
    low, high = wilson(0.8, 200, 0.95)
    assert 0.73 < low < 0.75 and 0.84 < high < 0.86


def test_unequal_weights_shrink_the_effective_sample() -> None:
    equal = np.ones(100)
    skewed = np.array([1.0] * 90 + [20.0] * 10)
    assert effective_n(equal) == pytest.approx(100)
    assert effective_n(skewed) < 40
    hits = np.array([1.0] * 90 + [0.0] * 10)
    rate, low, high = weighted_rate(hits, skewed, 0.95)
    assert rate == pytest.approx(90 / 290)  # the ten heavy failures dominate the population
    wide = high - low
    _, low_equal, high_equal = weighted_rate(hits, equal, 0.95)
    assert wide > high_equal - low_equal


def test_bootstrap_interval_covers_the_true_mean_and_is_deterministic() -> None:
    rng = np.random.default_rng(1)
    values = rng.beta(8, 2, size=400)  # true mean 0.8
    weights = np.ones(400)
    point, low, high = bootstrap("mean", values, weights, 0.95)
    assert low < 0.8 < high and low < point < high
    assert (point, low, high) == bootstrap("mean", values, weights, 0.95)
    _p50, low50, high50 = bootstrap("p50", values, weights, 0.95)
    assert low50 <= float(np.median(values)) <= high50


def test_breach_needs_the_whole_interval_past_the_threshold() -> None:
    rule = ThresholdRule(evaluator="x", metric="pass_rate", op="<", value=0.9)
    alerts = AlertsConfig(min_samples=5)
    noisy = Measurement(evaluator="x", metric="pass_rate", segment="", n=10, value=0.8,
                        low=0.49, high=0.94)  # fmt: skip
    solid = noisy.model_copy(update={"n": 200, "low": 0.74, "high": 0.85})
    assert judge(rule, noisy, alerts).state == "healthy"
    assert judge(rule, solid, alerts).state == "breach"
    assert judge(rule.model_copy(update={"mode": "raw"}), noisy, alerts).state == "breach"
    few = noisy.model_copy(update={"n": 3})
    assert judge(rule, few, alerts).state == "too_few"
    upward = ThresholdRule(evaluator="x", metric="error_rate", op=">", value=0.05)
    errors = Measurement(evaluator="x", metric="error_rate", segment="", n=300, value=0.2,
                         low=0.16, high=0.25)  # fmt: skip
    assert judge(upward, errors, alerts).state == "breach"


@pytest.mark.parametrize(
    ("passed", "n", "low", "high"),
    [(81, 263, 0.2535, 0.3682), (15, 148, 0.0598, 0.1644), (0, 20, 0.0, 0.2005),
     (1, 29, 0.0018, 0.1963)],
)  # fmt: skip
def test_the_corrected_interval_matches_newcombes_table(
    passed: int, n: int, low: float, high: float
) -> None:
    """Newcombe (1998), Table II, method 4 (score interval with continuity correction)."""
    assert wilson_corrected(passed, n, 0.95) == pytest.approx((low, high), abs=1e-4)


@pytest.mark.parametrize(
    ("passed", "n", "significant"),
    [
        (0, 1, False),  # one failure against 900 of 1,000: P = 0.10 under the old rate
        (0, 2, True),  # two of two fail: P = 0.01
        (2, 5, True),  # two of five pass: P = 0.009
        (4, 5, False),  # four of five pass: P = 0.41
    ],
)
def test_a_change_at_small_n_is_called_only_when_the_data_say_so(
    passed: int, n: int, significant: bool
) -> None:
    change = rate_change(passed, n, 900, 1000, 0.95)
    assert change is not None
    _delta, low, high = change
    assert (high < 0) is significant and low <= high


def test_too_few_scores_on_either_side_is_no_change_at_all() -> None:
    assert rate_change(0, 1, 900, 1000, 0.95, min_samples=30) is None
    assert rate_change(900, 1000, 0, 5, 0.95, min_samples=30) is None
    assert rate_change(20, 30, 900, 1000, 0.95, min_samples=30) is not None
