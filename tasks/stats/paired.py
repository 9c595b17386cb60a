"""Two experiments on the same items, evaluator by evaluator: a paired test, never two
independent rates (the same items make the comparison far more sensitive, and honest).

- pass/fail: McNemar's exact test on the discordant items (passed in one, failed in the other),
  a two-sided binomial test (scipy.stats.binomtest);
- mean scores: a paired bootstrap interval for the mean difference (scipy.stats.bootstrap).
"""

from typing import Any

import numpy as np
from pydantic import BaseModel

MCNEMAR = "McNemar exact (paired, discordant items)"
PAIRED_BOOTSTRAP = "paired bootstrap of the mean score difference"


class EvaluatorComparison(BaseModel):
    evaluator: str
    shared: int  # items both experiments judged
    baseline_pass_rate: float | None
    pass_rate: float | None
    regressed: list[str]  # passed in the baseline, failed now
    improved: list[str]  # failed in the baseline, pass now
    p_value: float | None
    mean_difference: float | None
    mean_low: float | None
    mean_high: float | None
    method: str
    significant_drop: bool

    @property
    def delta(self) -> float | None:
        if self.pass_rate is None or self.baseline_pass_rate is None:
            return None
        return self.pass_rate - self.baseline_pass_rate


def compare_evaluator(
    evaluator: str,
    before: dict[str, tuple[bool | None, float | None]],
    now: dict[str, tuple[bool | None, float | None]],
    confidence: float = 0.95,
) -> EvaluatorComparison:
    shared = sorted(set(before) & set(now))
    regressed = [i for i in shared if before[i][0] and not now[i][0]]
    improved = [i for i in shared if not before[i][0] and now[i][0]]
    alpha = 1 - confidence
    base: dict[str, Any] = {"evaluator": evaluator, "shared": len(shared),
                            "regressed": regressed, "improved": improved}  # fmt: skip
    if not shared:
        return EvaluatorComparison(
            **base, baseline_pass_rate=None, pass_rate=None, p_value=None,
            mean_difference=None, mean_low=None, mean_high=None, method=MCNEMAR,
            significant_drop=False,
        )  # fmt: skip
    from scipy.stats import binomtest, bootstrap  # ~1 s to import: not on every run's path

    rate_before = sum(bool(before[i][0]) for i in shared) / len(shared)
    rate_now = sum(bool(now[i][0]) for i in shared) / len(shared)
    discordant = len(regressed) + len(improved)
    p_value = binomtest(len(improved), discordant, 0.5).pvalue if discordant else 1.0
    scores = [(before[i][1], now[i][1]) for i in shared]
    paired = [(b, n) for b, n in scores if b is not None and n is not None]
    mean = low = high = None
    if len(paired) >= 2:
        differences = np.array([n - b for b, n in paired], dtype=float)
        mean = float(differences.mean())
        if np.ptp(differences) > 0:
            result = bootstrap(
                (differences,), np.mean, confidence_level=confidence, n_resamples=2000,
                random_state=7, method="percentile",
            )  # fmt: skip
            low = float(result.confidence_interval.low)
            high = float(result.confidence_interval.high)
        else:
            low = high = mean
    return EvaluatorComparison(
        **base, baseline_pass_rate=rate_before, pass_rate=rate_now, p_value=float(p_value),
        mean_difference=mean, mean_low=low, mean_high=high,
        method=f"{MCNEMAR}; {PAIRED_BOOTSTRAP}",
        significant_drop=rate_now < rate_before and p_value < alpha,
    )  # fmt: skip


def compare_experiments(
    before: dict[str, dict[str, Any]], now: dict[str, dict[str, Any]], confidence: float = 0.95
) -> list[EvaluatorComparison]:
    return [
        compare_evaluator(evaluator, before[evaluator], now[evaluator], confidence)
        for evaluator in sorted(set(before) & set(now))
    ]
