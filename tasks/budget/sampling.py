"""Deterministic sampling for paid evaluators: the same seed picks the same logs, every time.

Inclusion is a stable hash of (seed, evaluator, log id) compared with the rate, so reruns, retries
and backfills agree, and a higher rate keeps every log a lower rate kept (nested samples).
"""

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from pydantic import BaseModel

from evaluators.base import Evaluator
from evaluators.judges.prompting import log_values, template_variables
from evaluators.records import LogRecord
from tasks.config import SamplingConfig

_SCALE = float(2**64)


def inclusion_point(seed: str, evaluator: str, log_id: str) -> float:
    """A uniform number in [0, 1) fixed for this seed, evaluator and log."""
    digest = hashlib.blake2b(f"{seed}\0{evaluator}\0{log_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def below_rate(point: float, rate: float) -> bool:
    return rate >= 1.0 or point < rate


def sampled(seed: str, evaluator: str, log_id: str, rate: float) -> bool:
    return below_rate(inclusion_point(seed, evaluator, log_id), rate)


def inclusion_weight(rate: float) -> float:
    """How many logs of the population each sampled score stands for (Horvitz-Thompson)."""
    return 1.0 / rate if rate > 0 else 0.0


class WorkItem(NamedTuple):
    record: LogRecord
    evaluator: Evaluator
    weight: float  # how many logs of the population this score stands for (0: priority only)
    priority: bool
    stratum: str


class StratumCount(BaseModel):
    population: int = 0
    sampled: int = 0
    priority: int = 0


def merge_strata(total: dict[str, dict[str, int]], page: dict[str, StratumCount]) -> None:
    """Add one page's stratum counts of an evaluator into a running total (run or estimate)."""
    for stratum, count in page.items():
        cell = total.setdefault(stratum, {"population": 0, "sampled": 0, "priority": 0})
        for field, value in count.model_dump().items():
            cell[field] += value


class PagePlan(BaseModel):
    """Who each paid evaluator judges on one page, and the counts the run record reports."""

    model_config = {"arbitrary_types_allowed": True}

    items: list[WorkItem]
    strata: dict[str, dict[str, StratumCount]]  # evaluator -> stratum -> counts


def stratum_of(record: LogRecord, by: list[str]) -> str:
    return stratum_key(record.segment(), by)


def stratum_key(segment: Mapping[str, Any], by: Sequence[str]) -> str:
    return "|".join(f"{field}={segment.get(field)}" for field in by) if by else "all"


def stratum_sample(
    members: list[str], evaluator: str, sampling: SamplingConfig
) -> tuple[list[str], float]:
    """The ids one stratum gives an evaluator, and their weight: those with the lowest inclusion
    points, the rate's share and at least `min_per_stratum`, so raising either only ever adds
    ids. Weight 1/rate for a plain sample; N_h/n_h once strata are in play."""
    stratified = bool(sampling.stratify_by) or sampling.min_per_stratum > 0
    points = {m: inclusion_point(sampling.seed, evaluator, m) for m in members}
    ranked = sorted(members, key=lambda m: points[m])
    chosen = [m for m in ranked if below_rate(points[m], sampling.rate)]
    wanted = min(sampling.min_per_stratum, len(members))
    if len(chosen) < wanted:
        chosen = ranked[:wanted]
    weight = (
        len(members) / len(chosen) if stratified and chosen else inclusion_weight(sampling.rate)
    )
    return chosen, weight


def priority_reasons(record: LogRecord, flagged: set[str], wanted: list[str]) -> list[str]:
    reasons = []
    if "flagged" in wanted and record.id in flagged:
        reasons.append("flagged")
    if "negative_feedback" in wanted and record.feedback == "negative":
        reasons.append("negative_feedback")
    if "provider_error" in wanted and record.status == "error":
        reasons.append("provider_error")
    return reasons


def plan_page(
    records: list[LogRecord],
    paid: list[Evaluator],
    sampling: SamplingConfig,
    flagged: set[str] | None = None,
) -> PagePlan:
    """Deterministic, stratified sample per paid evaluator, plus priority logs, priority first.

    Within each stratum the logs with the lowest inclusion points are taken: the rate's share
    and at least `min_per_stratum`, so raising either only ever adds logs. Weights: 1/rate for a
    plain sample; N_h/n_h (stratum population over its sample) once strata are topped up.
    Priority logs outside the random sample get weight 0: they are judged, but excluded from
    population estimates, which stay unbiased.
    """
    flagged = flagged or set()
    strata: dict[str, list[LogRecord]] = {}
    for record in records:
        strata.setdefault(stratum_of(record, list(sampling.stratify_by)), []).append(record)
    urgent = {r.id for r in records if priority_reasons(r, flagged, list(sampling.priority))}
    priority_items: list[WorkItem] = []
    sample_items: list[WorkItem] = []
    counts: dict[str, dict[str, StratumCount]] = {}
    for evaluator in paid:
        name = evaluator.score_name
        per_stratum = counts.setdefault(name, {})
        for stratum, members in sorted(strata.items()):
            chosen, weight = stratum_sample([r.id for r in members], name, sampling)
            chosen_ids = set(chosen)
            count = per_stratum.setdefault(stratum, StratumCount())
            count.population += len(members)
            count.sampled += len(chosen)
            for record in members:
                is_priority = record.id in urgent
                if record.id in chosen_ids:
                    item = WorkItem(record, evaluator, weight, is_priority, stratum)
                    (priority_items if is_priority else sample_items).append(item)
                elif is_priority:
                    count.priority += 1
                    priority_items.append(WorkItem(record, evaluator, 0.0, True, stratum))
    return PagePlan(items=priority_items + sample_items, strata=counts)


#: Always part of the content hash, whether or not a template reads them.
BASE_VARIABLES = frozenset({"prompt", "response", "context"})


def content_hash(record: LogRecord, evaluator: Evaluator | None = None) -> str:
    """Identity of what a judge sees: the prompt, response and context, plus every other
    variable the judge's template reads (`{reference}`, `{metadata.KEY}`), so two logs share a
    verdict only when the judge would have been shown the same thing."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (record.prompt, record.response or "", *record.context):
        digest.update(part.encode("utf-8", "replace") + b"\0")
    template = getattr(evaluator, "template", None)
    if callable(template):
        values = log_values(record)
        for name in sorted(template_variables(template()) - BASE_VARIABLES):
            value = values.get(name) or ""
            digest.update(name.encode() + b"=" + value.encode("utf-8", "replace") + b"\0")
    return digest.hexdigest()
