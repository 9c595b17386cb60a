"""`replay_quarantine`: re-read quarantined logs from the (fixed) source, re-check them against
the contract, and score the ones that pass, once. The watermark is not touched."""

from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger

from flows.evaluate import Judging, judging, require_prices
from tasks import pipeline
from tasks.config import EvalJob
from tasks.db import scores_engine
from tasks.judging import judge_slots, lease_slots
from tasks.persist import PageCounts
from tasks.quarantine import ReplayResult, quarantined_ids
from tasks.runs import HeldLock, RunSummary, deployment_lock, finish_run, start_run
from tasks.source import rows_by_id


@flow(name="replay_quarantine", log_prints=False)
async def replay_quarantine(job: EvalJob, run_id: str | None = None) -> RunSummary:
    """Replay a deployment's quarantined logs (optionally only those from one run)."""
    logger = get_run_logger()
    engine = scores_engine()
    with deployment_lock(engine, job.deployment) as lock:
        ids = quarantined_ids(engine, job.deployment, run_id)
        plan = start_run(
            engine, job.deployment, datetime.now(UTC), job.source.initial_lookback, "manual"
        )
        result = ReplayResult(requested=len(ids))
        evaluators = pipeline.build_evaluators(job)
        try:
            # The same judge runtime as every run: the spend ledger's per-run and per-day caps,
            # and no paid judge without a price.
            async with judging(job, engine, plan.run_id) as judged:
                require_prices(job, judged.models)
                await replay_pages(job, engine, plan.run_id, ids, evaluators, judged, result, lock)
            logger.info("replay of %s: %s", job.deployment, result.model_dump())
        except BaseException as exc:
            finish_run(engine, plan.run_id, "failed", error=f"{type(exc).__name__}: {exc}"[:2000])
            raise
        details: dict[str, Any] = {"replay": result.model_dump()}
        if judged.ledger is not None:
            details["spend"] = judged.ledger.report().model_dump()
        hours = (min(result.seen), max(result.seen)) if result.seen else None
        return finish_run(engine, plan.run_id, "completed", details=details, rollups=hours)


async def replay_pages(
    job: EvalJob,
    engine: Any,
    run_id: str,
    ids: list[str],
    evaluators: list[Any],
    judged: Judging,
    result: ReplayResult,
    lock: HeldLock,
) -> None:
    judges = judged.judges
    slots = await lease_slots(judges, judged.models)
    counts = PageCounts()
    size = job.source.page_size
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        lock.ensure()
        with pipeline.source_engine(job.source).connect() as conn:
            rows = rows_by_id(conn, job.source, chunk)
        result.missing_from_source += len(chunk) - len(rows)
        result.seen += [
            r["ts"] for r in rows if isinstance(r.get("ts"), datetime) and r["ts"].tzinfo
        ]
        async with judge_slots(slots):
            outcome = await pipeline.process_rows(
                job, engine, run_id, rows, evaluators, judges, counts,
                cursor=None, enforce_contract=False,
            )  # fmt: skip
        counts = counts + outcome.counts
    result.readmitted = counts.normalized
    result.still_invalid = counts.quarantined
    result.scores_written = counts.scored
