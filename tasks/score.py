"""Run evaluators over records. An evaluator that raises yields an `error` row; the run goes on."""

import asyncio
from datetime import datetime

from pydantic import BaseModel

from evaluators.base import EvalContext, Evaluator, Score
from evaluators.records import LogRecord


class ScoreRow(BaseModel):
    """One row of `assay.scores`, as written."""

    deployment: str
    log_id: str
    evaluator: str
    evaluator_version: str
    log_ts: datetime
    judge_model: str | None = None
    status: str
    score: float | None
    passed: bool | None
    label: str | None
    reason: str | None
    cost_usd: float | None = 0.0  # None: a judge whose price is unknown
    tokens: int | None = None
    latency_ms: int | None = None
    weight: float = 1.0
    run_id: str
    model: str | None
    provider: str | None
    prompt_slug: str | None
    topic: str | None
    customer_id: str | None
    environment: str | None


SCORE_COLUMNS: tuple[str, ...] = tuple(ScoreRow.model_fields)
MAX_REASON_CHARS = 1000


async def evaluate_safely(evaluator: Evaluator, record: LogRecord, ctx: EvalContext) -> Score:
    try:
        return await evaluator.evaluate(record, ctx)
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
