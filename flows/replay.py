"""`replay_quarantine`: re-read quarantined logs from the (fixed) source, re-check them against
the contract, and score the ones that pass, once. The watermark is not touched."""

from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger

from evaluators.judges.client import JudgeRuntime
from tasks import pipeline
from tasks.config import EvalJob
from tasks.db import scores_engine
from tasks.judging import judge_slots, lease_slots
from tasks.persist import PageCounts
from tasks.quarantine import ReplayResult, quarantined_ids
from tasks.runs import RunSummary, deployment_lock, finish_run, start_run
from tasks.source import rows_by_id


@flow(name="replay_quarantine", log_prints=False)
async def replay_quarantine(job: EvalJob, run_id: str | None = None) -> RunSummary:
    """Replay a deployment's quarantined logs (optionally only those from one run)."""
    logger = get_run_logger()
    engine = scores_engine()
    with deployment_lock(engine, job.deployment):
        ids = quarantined_ids(engine, job.deployment, run_id)
        plan = start_run(
            engine, job.deployment, datetime.now(UTC), job.source.initial_lookback, "manual"
        )
        result = ReplayResult(requested=len(ids))
        evaluators = pipeline.build_evaluators(job)
        models = pipeline.judge_models(evaluators)
        judges = JudgeRuntime(job.judge_settings()) if models else None
        try:
            slots = await lease_slots(judges, models)
            counts = PageCounts()
            seen: list[datetime] = []  # log times, so the rollups of those hours are redone
            size = job.source.page_size
            for start in range(0, len(ids), size):
                chunk = ids[start : start + size]
                with pipeline.source_engine(job.source).connect() as conn:
                    rows = rows_by_id(conn, job.source, chunk)
                result.missing_from_source += len(chunk) - len(rows)
                seen += [r["ts"] for r in rows if isinstance(r.get("ts"), datetime)]
                async with judge_slots(slots):
                    outcome = await pipeline.process_rows(
                        job, engine, plan.run_id, rows, evaluators, judges, counts,
                        cursor=None, enforce_contract=False,
                    )  # fmt: skip
                counts = counts + outcome.counts
            result.readmitted = counts.normalized
            result.still_invalid = counts.quarantined
            result.scores_written = counts.scored
            logger.info("replay of %s: %s", job.deployment, result.model_dump())
        except BaseException as exc:
            finish_run(engine, plan.run_id, "failed", error=f"{type(exc).__name__}: {exc}"[:2000])
            raise
        finally:
            if judges is not None:
                await judges.close()
        details: dict[str, Any] = {"replay": result.model_dump()}
        hours = (min(seen), max(seen)) if seen and seen[0].tzinfo else None
        return finish_run(engine, plan.run_id, "completed", details=details, rollups=hours)
