"""Annotation queues that give unbiased numbers: a stratified probability sample of judged logs.

The strata are the judge's verdict (pass / fail), optionally crossed with a segment; an optional
share of the queue goes to an `uncertain` stratum (judge scores near the pass threshold, where
people and judges disagree most). Strata get equal shares of what is left (so the judge's rarer
verdict is well represented), capped by their size. Every drawn log records its inclusion
probability n_h / N_h: weighting each label by its inverse makes agreement and error rates
estimated from the queue unbiased for the whole population of judged logs.
"""

import hashlib
from typing import NamedTuple

import numpy as np
from pydantic import BaseModel


class Judged(NamedTuple):
    """One judged log of the population a queue is drawn from."""

    log_id: str
    passed: bool | None
    score: float | None
    reason: str | None
    segment: str | None = None


class Drawn(BaseModel):
    log_id: str
    position: int  # the order annotators get items in (shuffled: no run of one verdict)
    stratum: str
    inclusion_probability: float
    judge_passed: bool | None
    judge_score: float | None
    judge_reason: str | None


class Stratum(BaseModel):
    population: int
    sample: int


UNCERTAIN = "uncertain"


def stratum_of(j: Judged, threshold: float, band: float | None) -> str:
    if band is not None and j.score is not None and abs(j.score - threshold) <= band:
        return UNCERTAIN
    verdict = "pass" if j.passed else "fail"
    return verdict if j.segment is None else f"{verdict} · {j.segment}"


def allocate(sizes: dict[str, int], total: int) -> dict[str, int]:
    """Equal shares of `total` across strata, each capped by its size; what a small stratum
    cannot take goes to the others."""
    wanted = dict.fromkeys(sizes, 0)
    left = min(total, sum(sizes.values()))
    open_strata = [s for s in sorted(sizes) if sizes[s] > 0]
    while left > 0 and open_strata:
        share, extra = divmod(left, len(open_strata))
        for position, name in enumerate(open_strata):
            give = min(share + (1 if position < extra else 0), sizes[name] - wanted[name])
            wanted[name] += give
            left -= give
        open_strata = [s for s in open_strata if wanted[s] < sizes[s]]
    return wanted


def draw(
    population: list[Judged],
    size: int,
    seed: str,
    threshold: float = 0.5,
    uncertain_share: float = 0.0,
    band: float = 0.1,
) -> tuple[list[Drawn], dict[str, Stratum]]:
    """The queue: `size` logs drawn without replacement within strata, with their inclusion
    probabilities, and the design (population and sample per stratum)."""
    rng = np.random.default_rng(int(hashlib.sha256(seed.encode()).hexdigest()[:15], 16))
    by_stratum: dict[str, list[Judged]] = {}
    for j in sorted(population, key=lambda j: j.log_id):
        key = stratum_of(j, threshold, band if uncertain_share > 0 else None)
        by_stratum.setdefault(key, []).append(j)
    sizes = {k: len(v) for k, v in by_stratum.items()}
    sample = dict.fromkeys(sizes, 0)
    budget = min(size, sum(sizes.values()))
    if UNCERTAIN in sizes:
        sample[UNCERTAIN] = min(sizes[UNCERTAIN], round(budget * uncertain_share))
    rest = {k: n for k, n in sizes.items() if k != UNCERTAIN}
    sample.update(allocate(rest, budget - sample.get(UNCERTAIN, 0)))
    chosen: list[tuple[Judged, str, float]] = []
    for key, members in by_stratum.items():
        n = sample[key]
        if n == 0:
            continue
        picks = rng.choice(len(members), size=n, replace=False)
        chosen += [(members[i], key, n / len(members)) for i in sorted(picks)]
    order = rng.permutation(len(chosen))
    drawn = [
        Drawn(log_id=j.log_id, position=int(order[i]), stratum=key, inclusion_probability=p,
              judge_passed=j.passed, judge_score=j.score, judge_reason=j.reason)
        for i, (j, key, p) in enumerate(chosen)
    ]  # fmt: skip
    design = {k: Stratum(population=sizes[k], sample=sample[k]) for k in sorted(sizes)}
    return sorted(drawn, key=lambda d: d.position), design
