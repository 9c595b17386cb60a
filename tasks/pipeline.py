"""One page of the hourly pipeline: pull, normalize, evaluate, write. Pure of Prefect."""

import os
from datetime import datetime

import sqlalchemy as sa
from pydantic import BaseModel, SecretStr

from evaluators.base import EvalContext, Evaluator
from evaluators.registry import build_evaluator
from tasks.config import EvalJob, SourceConfig
from tasks.db import engine_for, warehouse_url
from tasks.errors import ConfigError
from tasks.normalize import normalize_rows
from tasks.persist import PageCounts, write_page
from tasks.score import score_records
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
    return [build_evaluator(cfg.name, cfg.params) for cfg in job.evaluators]


async def process_page(
    job: EvalJob,
    scores_db: sa.Engine,
    run_id: str,
    after: Cursor | None,
    start: datetime,
    until: datetime,
    evaluators: list[Evaluator],
) -> PageOutcome:
    with source_engine(job.source).connect() as conn:
        rows = fetch_page(conn, job.source, after, start, until)
    if not rows:
        return PageOutcome(counts=PageCounts(), last=None, full=False)
    records, rejects = normalize_rows(rows, job.source.format)
    ctx = EvalContext(deployment=job.deployment, run_id=run_id)
    scores = await score_records(records, evaluators, ctx)
    last = Cursor(ts=rows[-1]["ts"], log_id=rows[-1]["id"])
    counts = write_page(scores_db, job.deployment, run_id, scores, rejects, last, len(rows))
    return PageOutcome(counts=counts, last=last, full=len(rows) == job.source.page_size)
