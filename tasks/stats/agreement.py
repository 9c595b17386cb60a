"""How well a judge agrees with people: Cohen's kappa, accuracy, the judge's precision and recall
on failures, TPR/TNR, and Spearman correlation of scores, each with a bootstrap interval, all
weighted by the annotation queue's inverse inclusion probabilities (unbiased for the population
the queue was drawn from); and the pass threshold that would agree best."""

from typing import NamedTuple

import numpy as np
from pydantic import BaseModel

RESAMPLES = 500
MIN_LABELS = 20


class Pair(NamedTuple):
    """A judged log a person labelled: the judge's verdict beside the person's."""

    log_id: str
    judge_passed: bool
    judge_score: float | None
    human_passed: bool
    human_score: float | None
    weight: float


class Estimate(BaseModel):
    value: float | None
    low: float | None = None
    high: float | None = None


class Agreement(BaseModel):
    deployment: str = ""
    evaluator: str
    evaluator_version: str
    period: str  # "overall", or an ISO week such as 2026-W48
    n: int  # labelled logs
    min_labels: int
    enough: bool
    kappa: Estimate = Estimate(value=None)
    accuracy: Estimate = Estimate(value=None)
    precision_on_failures: Estimate = Estimate(value=None)  # judge failed it: a person agrees
    recall_on_failures: Estimate = Estimate(value=None)  # a person failed it: the judge did too
    tpr: Estimate = Estimate(value=None)  # P(judge passes | person passes)
    tnr: Estimate = Estimate(value=None)  # P(judge fails | person fails)
    spearman: Estimate = Estimate(value=None)  # judge score against the person's score
    inter_annotator_kappa: float | None = None
    inter_annotator_logs: int = 0

    def verdict(self) -> str:
        if not self.enough:
            return f"not enough labels ({self.n} of {self.min_labels})"
        return f"kappa {self.kappa.value:.2f}" if self.kappa.value is not None else "kappa –"


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1), np.nan)


def table_metrics(j: np.ndarray, h: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    """The 2x2 metrics, for one sample (1-d arrays) or many at once (2-d: one per row)."""
    return cell_metrics(
        (w * (j & h)).sum(axis=-1),  # both pass
        (w * (j & ~h)).sum(axis=-1),  # judge passes, person fails
        (w * (~j & h)).sum(axis=-1),  # judge fails, person passes
        (w * (~j & ~h)).sum(axis=-1),  # both fail
    )


def cell_metrics(
    a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray
) -> dict[str, np.ndarray]:
    total = a + b + c + d
    observed = _ratio(a + d, total)
    judge_pass, human_pass = _ratio(a + b, total), _ratio(a + c, total)
    chance = judge_pass * human_pass + (1 - judge_pass) * (1 - human_pass)
    return {
        "kappa": _ratio(observed - chance, 1 - chance),
        "accuracy": observed,
        "precision_on_failures": _ratio(d, c + d),
        "recall_on_failures": _ratio(d, b + d),
        "tpr": _ratio(a, a + c),
        "tnr": _ratio(d, b + d),
    }


def weighted_spearman(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float | None:
    if len(x) < 3:
        return None
    from scipy.stats import rankdata  # scipy.stats takes ~1 s to import: only when used

    rx, ry = rankdata(x), rankdata(y)
    mx, my = np.average(rx, weights=w), np.average(ry, weights=w)
    cov = np.average((rx - mx) * (ry - my), weights=w)
    sx = np.sqrt(np.average((rx - mx) ** 2, weights=w))
    sy = np.sqrt(np.average((ry - my) ** 2, weights=w))
    return None if sx == 0 or sy == 0 else float(cov / (sx * sy))


def _estimate(point: float, draws: np.ndarray, confidence: float) -> Estimate:
    if np.isnan(point):
        return Estimate(value=None)
    finite = draws[~np.isnan(draws)]
    if len(finite) == 0:
        return Estimate(value=float(point))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Estimate(value=float(point), low=float(low), high=float(high))


def agreement(
    pairs: list[Pair],
    evaluator: str,
    version: str,
    period: str = "overall",
    min_labels: int = MIN_LABELS,
    confidence: float = 0.95,
    seed: int = 7,
) -> Agreement:
    found = Agreement(
        evaluator=evaluator, evaluator_version=version, period=period, n=len(pairs),
        min_labels=min_labels, enough=len(pairs) >= min_labels,
    )  # fmt: skip
    if not found.enough:
        return found
    j = np.array([p.judge_passed for p in pairs], dtype=bool)
    h = np.array([p.human_passed for p in pairs], dtype=bool)
    w = np.array([p.weight for p in pairs], dtype=float)
    points = table_metrics(j, h, w)
    # The bootstrap draws labelled logs with probability proportional to their weight, so each
    # resample is a sample of the population (as the alert statistics do). Only the 2x2 cell
    # counts of a resample matter, and those are multinomial in the cells' weight shares: drawn
    # directly, 500 resamples of 10,000 labels cost microseconds instead of a second.
    rng = np.random.default_rng(seed)
    cells = np.array([w[j & h].sum(), w[j & ~h].sum(), w[~j & h].sum(), w[~j & ~h].sum()])
    counts = rng.multinomial(len(pairs), cells / cells.sum(), size=RESAMPLES).astype(float)
    resampled = cell_metrics(counts[:, 0], counts[:, 1], counts[:, 2], counts[:, 3])
    for name, point in points.items():
        setattr(found, name, _estimate(float(point), resampled[name], confidence))
    scored = [
        i for i, p in enumerate(pairs) if p.judge_score is not None and p.human_score is not None
    ]
    if len(scored) >= 3:
        xs = np.array([pairs[i].judge_score for i in scored], dtype=float)
        ys = np.array([pairs[i].human_score for i in scored], dtype=float)
        ws = w[scored]
        rho = weighted_spearman(xs, ys, ws)
        picks = rng.choice(len(scored), size=(200, len(scored)), p=ws / ws.sum())
        boot = [weighted_spearman(xs[d], ys[d], np.ones(len(d))) for d in picks]
        found.spearman = _estimate(
            np.nan if rho is None else rho,
            np.array([np.nan if b is None else b for b in boot], dtype=float),
            confidence,
        )
    return found


def cohen_kappa(x: list[bool], y: list[bool]) -> float | None:
    """Unweighted kappa between two raters (inter-annotator agreement)."""
    if not x:
        return None
    kappa = table_metrics(np.array(x), np.array(y), np.ones(len(x)))["kappa"]
    return None if np.isnan(kappa) else float(kappa)


class ThresholdSuggestion(BaseModel):
    current: float
    current_kappa: float | None
    suggested: float
    suggested_kappa: float | None
    n: int


def suggest_threshold(pairs: list[Pair], current: float) -> ThresholdSuggestion | None:
    """For a score-based judge: the pass threshold on its scores that maximises kappa against
    the people's verdicts (ties go to the threshold nearest the current one)."""
    scored = [p for p in pairs if p.judge_score is not None]
    if not scored:
        return None
    scores = np.array([p.judge_score for p in scored], dtype=float)
    h = np.array([p.human_passed for p in scored], dtype=bool)
    w = np.array([p.weight for p in scored], dtype=float)
    candidates = np.unique(np.concatenate([scores, [current]]))
    judged = scores[None, :] >= candidates[:, None]  # one row per candidate threshold
    kappas = table_metrics(
        judged, np.broadcast_to(h, judged.shape), np.broadcast_to(w, judged.shape)
    )["kappa"]
    kappas = np.where(np.isnan(kappas), -np.inf, kappas)
    best = max(range(len(candidates)), key=lambda i: (kappas[i], -abs(candidates[i] - current)))
    at_current = kappas[int(np.searchsorted(candidates, current))]
    return ThresholdSuggestion(
        current=current, current_kappa=None if np.isinf(at_current) else float(at_current),
        suggested=float(candidates[best]),
        suggested_kappa=None if np.isinf(kappas[best]) else float(kappas[best]), n=len(scored),
    )  # fmt: skip
