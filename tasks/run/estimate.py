"""`assay estimate`: what a run over a window would judge and cost, without calling any judge."""

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from evaluators.base import EvalContext
from evaluators.judges.builtin import JudgeEvaluator
from evaluators.judges.client import count_tokens
from evaluators.judges.pricing import price_for
from evaluators.judges.sessions import UnitJudge
from tasks.budget.sampling import content_hash, merge_strata, plan_page
from tasks.config import FLAGGING_EVALUATORS, EvalJob, build_evaluators
from tasks.contract.suite import admit
from tasks.run.page import flagged_ids, split_by_cost, walk_pages
from tasks.run.scoring import score_records
from tasks.store.rows import Cursor
from tasks.store.sql import query
from tasks.warehouse.connect import fitted_job, read_page, source_engine
from tasks.warehouse.source import UNIT_SLOTS

TOKEN_SAMPLE = 300  # prompts tokenized per evaluator; the rest is extrapolated from them
#: Logs checked against the whole data contract when the estimate is not asked to check every
#: one: enough to see a contract that would stop the run, in a few seconds.
CONTRACT_SAMPLE = 500


class ContractSample(BaseModel):
    """The first logs of the window checked against the data contract, and whether a run over
    the window would stop on it."""

    checked: int = 0
    invalid: int = 0
    failed: dict[str, int] = {}  # expectation -> logs of the sample that fail it
    max_invalid_fraction: float = 0.0
    would_stop: str | None = None  # why the run would stop, when it would


class EvaluatorEstimate(BaseModel):
    evaluator: str
    model: str
    eligible: int = 0  # planned: sample plus priority
    priority: int = 0
    to_judge: int = 0  # after dedupe: calls to make
    mean_input_tokens: float | None = None
    usd_per_call: float | None = None
    projected_usd: float | None = None
    strata: dict[str, dict[str, int]] = {}


class Estimate(BaseModel):
    deployment: str
    start: datetime
    end: datetime
    logs: int = 0
    quarantined: int = 0
    contract_checked: bool = False
    contract_sample: ContractSample | None = None
    evaluators: list[EvaluatorEstimate] = []
    projected_usd: float | None = 0.0
    max_usd_per_run: float | None = None
    max_usd_per_day: float | None = None
    spent_today_usd: float = 0.0
    max_calls_per_run: int | None = None
    verdict: str = ""


async def estimate(
    job: EvalJob,
    scores_db: sa.Engine,
    start: datetime,
    end: datetime,
    progress: Callable[[int], None] | None = None,
    contract: bool = False,
) -> Estimate:
    """Without `contract`, rows the data contract would quarantine are counted as judged: the
    projection is an upper bound, and fast (no GX)."""
    job = fitted_job(job)
    evaluators = build_evaluators(job)
    free, paid = split_by_cost(evaluators)
    judges = [e for e in paid if isinstance(e, JudgeEvaluator)]
    result = Estimate(deployment=job.deployment, start=start, end=end, contract_checked=contract)
    per = {e.score_name: EvaluatorEstimate(evaluator=e.score_name, model=e.model) for e in judges}
    seen: dict[str, set[str]] = {e.score_name: set() for e in judges}
    tokens: dict[str, list[int]] = {e.score_name: [] for e in judges}
    ctx = EvalContext(deployment=job.deployment, run_id="00000000-0000-0000-0000-000000000000")
    flagging = [e for e in free if e.score_name in FLAGGING_EVALUATORS]

    async def step(after: Cursor | None) -> tuple[Cursor | None, bool]:
        rows = await asyncio.to_thread(read_page, job.source, after, start, end)
        if not rows:
            return None, False
        admission = admit(rows, job.source.format, job.quality, contract=contract)
        result.logs += len(rows)
        result.quarantined += len(admission.rejects)
        flagged: set[str] = set()
        if "flagged" in job.sampling.priority and flagging:
            flagged = flagged_ids(await score_records(admission.records, flagging, ctx))
        plan = plan_page(admission.records, list(judges), job.sampling, flagged)
        for item in plan.items:
            name = item.evaluator.score_name
            entry = per[name]
            entry.eligible += 1
            entry.priority += item.priority
            key = (
                content_hash(item.record, item.evaluator) if job.sampling.dedupe else item.record.id
            )
            if key in seen[name]:
                continue
            seen[name].add(key)
            entry.to_judge += 1
            if len(tokens[name]) < TOKEN_SAMPLE and isinstance(item.evaluator, JudgeEvaluator):
                try:
                    messages = item.evaluator.messages(item.record)
                except KeyError:
                    continue
                tokens[name].append(count_tokens(item.evaluator.model, messages))
        for name, strata in plan.strata.items():
            merge_strata(per[name].strata, strata)
        if progress is not None:
            progress(len(rows))
        last = Cursor(ts=rows[-1]["ts"], log_id=rows[-1]["id"])
        return last, len(rows) == job.source.page_size

    # The same keyset page loop as a run's, reading the same pages.
    await walk_pages(step)
    if not contract:
        result.contract_sample = await asyncio.to_thread(contract_sample, job, start, end)
    unit_judges = await asyncio.to_thread(_unit_judging, job, scores_db, start, end, per, tokens)
    total: float | None = 0.0
    every: list[JudgeEvaluator | UnitJudge] = [*judges, *unit_judges]
    for judge in every:
        entry = per[judge.score_name]
        price = price_for(judge.model, job.budget.prices)
        if tokens[entry.evaluator]:
            entry.mean_input_tokens = sum(tokens[entry.evaluator]) / len(tokens[entry.evaluator])
        if price is not None and entry.mean_input_tokens is not None:
            entry.usd_per_call = price.cost(
                round(entry.mean_input_tokens), job.budget.expected_output_tokens
            )
            entry.projected_usd = entry.usd_per_call * entry.to_judge
        elif price is not None:
            entry.projected_usd = 0.0
        if entry.projected_usd is None or total is None:
            total = None
        else:
            total += entry.projected_usd
    result.evaluators = list(per.values())
    result.projected_usd = total
    result.max_usd_per_run = job.budget.max_usd_per_run
    result.max_usd_per_day = job.budget.max_usd_per_day
    result.max_calls_per_run = job.budget.max_calls_per_run
    with scores_db.connect() as conn:
        today = conn.execute(
            sa.text(query("budget", "day_spend")),
            {"deployment": job.deployment, "day": datetime.now(UTC).date()},
        ).one_or_none()
    result.spent_today_usd = today.spent_usd if today else 0.0
    result.verdict = _verdict(result)
    return result


def _unit_judging(
    job: EvalJob,
    scores_db: sa.Engine,
    start: datetime,
    end: datetime,
    per: dict[str, "EvaluatorEstimate"],
    tokens: dict[str, list[int]],
) -> list[UnitJudge]:
    """The session and trace judges' share: the units complete by `end` (last item after
    `start`) not evaluated yet, sampled as a run would, each call's input tokens counted on the
    transcript the judge would be sent (cut to its `transcript_chars`)."""
    from tasks.sessions import (
        CHUNK,
        UNIT_KINDS,
        evaluators_of,
        find_pending,
        read_units,
        unit_sample,
    )

    found: list[UnitJudge] = []
    source_db = source_engine(job.source)
    for kind in UNIT_KINDS:
        judges = [e for e in evaluators_of(job, kind) if isinstance(e, UnitJudge)]
        if not judges or UNIT_SLOTS[kind] not in job.source.column_mapping():
            continue
        found += judges
        for judge in judges:
            per[judge.score_name] = EvaluatorEstimate(evaluator=judge.score_name, model=judge.model)
            tokens[judge.score_name] = []
        pending = find_pending(job, kind, scores_db, source_db, start, end)
        sizes = {u: found["items"] for u, found in pending.by_id.items()}
        todo = pending.todo
        for at in range(0, len(todo), CHUNK):
            chunk = todo[at : at + CHUNK]
            units, _rejects, _skipped = read_units(job, kind, source_db, chunk, end, sizes)
            for unit, judge, _weight in unit_sample(job, units, judges):
                entry = per[judge.score_name]
                entry.eligible += 1
                entry.to_judge += 1
                if len(tokens[judge.score_name]) < TOKEN_SAMPLE:
                    counted = count_tokens(judge.model, judge.messages(unit.unit))
                    tokens[judge.score_name].append(counted)
    return found


def contract_sample(job: EvalJob, start: datetime, end: datetime) -> ContractSample:
    """The window's first CONTRACT_SAMPLE logs through the real contract (its expectations, as a
    run checks them): a contract that would stop the run is said before the run, not by it."""
    source = job.source.model_copy(update={"page_size": CONTRACT_SAMPLE})
    rows = read_page(source, None, start, end)
    sample = ContractSample(
        checked=len(rows), max_invalid_fraction=job.quality.max_invalid_fraction
    )
    if not rows:
        return sample
    admission = admit(rows, job.source.format, job.quality)
    sample.invalid = len(admission.rejects)
    sample.failed = dict(admission.summary.unexpected)
    share = sample.invalid / sample.checked
    if sample.checked >= job.quality.min_batch_rows and share > job.quality.max_invalid_fraction:
        top = ", ".join(f"{label} x{n}" for label, n in list(sample.failed.items())[:3])
        sample.would_stop = (
            f"the data contract would stop this run: {sample.invalid:,} of the first "
            f"{sample.checked:,} logs ({share:.1%}) fail, above max_invalid_fraction "
            f"{job.quality.max_invalid_fraction:g}"
            + (f" ({top})" if top else "")
            + f"; see them with `assay estimate {job.deployment} --contract`, fix the source or "
            "the mapping, or raise quality.max_invalid_fraction"
        )
    return sample


def _verdict(e: Estimate) -> str:
    if e.contract_sample is not None and e.contract_sample.would_stop:
        return e.contract_sample.would_stop
    if e.projected_usd is None:
        return "cannot project: a judge model has no known price (set budget.prices)"
    calls = sum(x.to_judge for x in e.evaluators)
    notes = []
    if e.max_calls_per_run is not None and calls > e.max_calls_per_run:
        notes.append(f"{calls:,} calls exceed max_calls_per_run {e.max_calls_per_run:,}")
    if e.max_usd_per_run is not None and e.projected_usd > e.max_usd_per_run:
        notes.append(f"${e.projected_usd:.4f} exceeds max_usd_per_run ${e.max_usd_per_run:g}")
    if e.max_usd_per_day is not None and e.spent_today_usd + e.projected_usd > e.max_usd_per_day:
        left = max(e.max_usd_per_day - e.spent_today_usd, 0)
        notes.append(f"${e.projected_usd:.4f} exceeds today's remaining ${left:.4f}")
    if notes:
        return "over budget: " + "; ".join(notes) + " (the rest would be counted as unscored)"
    return "fits the budget"


def as_rows(e: Estimate) -> list[dict[str, Any]]:
    return [x.model_dump(exclude={"strata"}) for x in e.evaluators]
