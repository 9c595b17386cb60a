"""Run evaluators over records. An evaluator that raises yields an `error` row; the run goes on."""

import asyncio

from pydantic import BaseModel

from evaluators.base import EvalContext, Evaluator, Score, ScoreStatus
from evaluators.errors import GateUnavailable
from evaluators.judges.builtin import UNSCORED_BUDGET
from evaluators.records import LogRecord
from tasks.budget.dedupe import KnownVerdict
from tasks.budget.sampling import WorkItem, content_hash
from tasks.errors import TransientError
from tasks.store.rows import MAX_REASON_CHARS, ScoreRow


async def evaluate_safely(evaluator: Evaluator, record: LogRecord, ctx: EvalContext) -> Score:
    try:
        return await evaluator.evaluate(record, ctx)
    except GateUnavailable as exc:
        # Not the log's fault: an error row would block a later real score. The page is retried.
        raise TransientError(f"the spend ledger is unreachable: {exc}") from None
    except Exception as exc:  # an evaluator bug must cost one row, not the run
        return Score.error(f"{type(exc).__name__}: {exc}"[:MAX_REASON_CHARS])


def score_row(
    record: LogRecord, evaluator: Evaluator, score: Score, ctx: EvalContext, weight: float = 1.0
) -> ScoreRow:
    return ScoreRow(
        deployment=ctx.deployment,
        log_id=record.id,
        evaluator=evaluator.score_name,
        evaluator_version=evaluator.evaluator_version,
        log_ts=record.ts,
        judge_model=score.judge_model,
        status=score.status,
        score=score.score,
        passed=score.passed,
        label=score.label,
        reason=score.reason[:MAX_REASON_CHARS] if score.reason else None,
        cost_usd=score.cost_usd,
        tokens=score.tokens,
        latency_ms=score.latency_ms,
        weight=weight,
        run_id=ctx.run_id,
        **record.segment(),
    )


async def score_records(
    records: list[LogRecord], evaluators: list[Evaluator], ctx: EvalContext
) -> list[ScoreRow]:
    """Every evaluator on every record, in record order."""
    rows = []
    for record in records:
        for evaluator in evaluators:
            score = await evaluate_safely(evaluator, record, ctx)
            rows.append(score_row(record, evaluator, score, ctx))
    return rows


async def judge_records(
    work: list[tuple[LogRecord, Evaluator, float]], ctx: EvalContext, max_pending: int = 512
) -> list[ScoreRow]:
    """Paid evaluators, concurrently: (record, judge, inclusion weight) triples, order kept.

    The judge runtime's limiters decide how many calls are in flight; `max_pending` only bounds
    how many prompts are rendered and waiting at once.
    """
    gate = asyncio.Semaphore(max_pending)

    async def one(record: LogRecord, evaluator: Evaluator, weight: float) -> ScoreRow:
        async with gate:
            score = await evaluate_safely(evaluator, record, ctx)
        return score_row(record, evaluator, score, ctx, weight)

    return list(await asyncio.gather(*(one(*item) for item in work)))


class JudgedPage(BaseModel):
    rows: list[ScoreRow]
    unscored: dict[str, dict[str, int]]  # evaluator -> stratum -> not judged (budget)
    copied: int  # duplicates that reused a verdict


async def judge_plan(
    items: list[WorkItem],
    ctx: EvalContext,
    known: dict[tuple[str, str], KnownVerdict],
    dedupe: bool = True,
) -> JudgedPage:
    """Judge planned items (priority first); duplicates copy their first occurrence's verdict or
    one already stored; what the budget refused is counted, not written."""
    first: dict[tuple[str, str], int] = {}
    calls: list[int] = []
    keys = []
    for position, item in enumerate(items):
        key = (item.evaluator.score_name, content_hash(item.record, item.evaluator))
        keys.append(key)
        if dedupe and (key in known or key in first):
            continue
        first.setdefault(key, position)
        calls.append(position)
    judged = await judge_records(
        [(items[p].record, items[p].evaluator, items[p].weight) for p in calls], ctx
    )
    by_position = dict(zip(calls, judged, strict=True))
    rows: list[ScoreRow] = []
    unscored: dict[str, dict[str, int]] = {}
    copied = 0
    for position, item in enumerate(items):
        key = keys[position]
        if position in by_position:
            row = by_position[position]
        elif key in known:
            row = _copy(item, known[key], ctx)
        else:
            source = by_position[first[key]]
            row = _copy(item, KnownVerdict(log_id=source.log_id, score=source.score,
                                           passed=source.passed, label=source.label,
                                           reason=source.reason, judge_model=source.judge_model),
                        ctx, status=source.status)  # type: ignore[arg-type]  # fmt: skip
        if row.label == UNSCORED_BUDGET:
            per = unscored.setdefault(item.evaluator.score_name, {})
            per[item.stratum] = per.get(item.stratum, 0) + 1
            continue
        copied += position not in by_position
        rows.append(row.model_copy(update={"content_hash": key[1]}))
    return JudgedPage(rows=rows, unscored=unscored, copied=copied)


#: How a score reused from another experiment's judgement starts its reason.
CACHED_PREFIX = "cached from "


def _copied_from(verdict: KnownVerdict, ctx: EvalContext) -> str:
    if verdict.deployment and verdict.deployment != ctx.deployment:
        return f"{CACHED_PREFIX}{verdict.deployment}: {verdict.reason or ''}"
    return f"duplicate of log {verdict.log_id}: {verdict.reason or ''}"


def _copy(
    item: WorkItem, verdict: KnownVerdict, ctx: EvalContext, status: ScoreStatus = "ok"
) -> ScoreRow:
    """A duplicate's row: the source's verdict, no cost, and a reason naming the source."""
    score = Score(
        status=status,
        score=verdict.score,
        passed=verdict.passed,
        label=verdict.label,
        reason=_copied_from(verdict, ctx)[:MAX_REASON_CHARS],
        judge_model=verdict.judge_model,
        cost_usd=0.0,
    )
    return score_row(item.record, item.evaluator, score, ctx, item.weight)
