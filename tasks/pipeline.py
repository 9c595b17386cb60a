"""One page of the hourly pipeline: pull, normalize, evaluate, write. Pure of Prefect."""

import os
from datetime import datetime

import sqlalchemy as sa
from pydantic import BaseModel, SecretStr

from evaluators.base import Cost, EvalContext, Evaluator
from evaluators.judges.builtin import JudgeEvaluator
from evaluators.judges.client import JudgeRuntime
from evaluators.records import LogRecord
from tasks.config import EvalJob, SamplingConfig, SourceConfig
from tasks.db import engine_for, warehouse_url
from tasks.errors import ConfigError
from tasks.normalize import normalize_rows
from tasks.persist import PageCounts, write_page
from tasks.sampling import inclusion_weight, sampled
from tasks.score import judge_records, score_records
from tasks.source import Cursor, fetch_page


class PageOutcome(BaseModel):
    counts: PageCounts
    last: Cursor | None
    full: bool  # a full page means there may be more


def source_engine(source: SourceConfig) -> sa.Engine:
    if source.url_env is None:
        return engine_for(warehouse_url())
    value = os.environ.get(source.url_env)
    if not value:
        raise ConfigError(f"source.url_env names {source.url_env}, which is not set")
    return engine_for(SecretStr(value))


def build_evaluators(job: EvalJob) -> list[Evaluator]:
    return [cfg.build() for cfg in job.evaluators]


def split_by_cost(evaluators: list[Evaluator]) -> tuple[list[Evaluator], list[Evaluator]]:
    free = [e for e in evaluators if e.cost is Cost.FREE]
    paid = [e for e in evaluators if e.cost is Cost.PAID]
    return free, paid


def judge_models(evaluators: list[Evaluator]) -> list[str]:
    """Every judge model (primary and fallbacks) the paid evaluators may call."""
    models: set[str] = set()
    for evaluator in evaluators:
        if isinstance(evaluator, JudgeEvaluator):
            route = evaluator.route
            models.update(endpoint.model for endpoint in (route.primary, *route.fallbacks))
    return sorted(models)


def sample_work(
    records: list[LogRecord], paid: list[Evaluator], sampling: SamplingConfig
) -> list[tuple[LogRecord, Evaluator, float]]:
    weight = inclusion_weight(sampling.rate)
    return [
        (record, evaluator, weight)
        for evaluator in paid
        for record in records
        if sampled(sampling.seed, evaluator.score_name, record.id, sampling.rate)
    ]


async def process_page(
    job: EvalJob,
    scores_db: sa.Engine,
    run_id: str,
    after: Cursor | None,
    start: datetime,
    until: datetime,
    evaluators: list[Evaluator],
    judges: JudgeRuntime | None = None,
) -> PageOutcome:
    """Free evaluators on every record, then paid ones on the sample, then one transaction."""
    with source_engine(job.source).connect() as conn:
        rows = fetch_page(conn, job.source, after, start, until)
    if not rows:
        return PageOutcome(counts=PageCounts(), last=None, full=False)
    records, rejects = normalize_rows(rows, job.source.format)
    ctx = EvalContext(deployment=job.deployment, run_id=run_id, judges=judges)
    free, paid = split_by_cost(evaluators)
    scores = await score_records(records, free, ctx)
    if paid:
        scores += await judge_records(sample_work(records, paid, job.sampling), ctx)
    last = Cursor(ts=rows[-1]["ts"], log_id=rows[-1]["id"])
    counts = write_page(scores_db, job.deployment, run_id, scores, rejects, last, len(rows))
    return PageOutcome(counts=counts, last=last, full=len(rows) == job.source.page_size)
