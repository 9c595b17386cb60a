"""`replay_quarantine`: re-read quarantined logs from the (fixed) source, re-check them against
the contract, and score the ones that pass, once. The watermark is not touched.

A replay is a run like any other (the `replay` kind of the one lifecycle): the deployment's
lock, the spend ledger's per-run and per-day caps, priced judges, redaction, artifacts.
"""

from datetime import datetime

from prefect import flow, get_run_logger

from tasks.config import EvalJob
from tasks.contract.quarantine import ReplayResult, quarantined_ids
from tasks.run.kinds import KINDS
from tasks.run.lifecycle import run_lifecycle
from tasks.store.db import scores_engine
from tasks.store.runs import RunSummary
from tasks.warehouse.connect import source_engine
from tasks.warehouse.source import rows_by_id


@flow(name="replay_quarantine", log_prints=False)
async def replay_quarantine(job: EvalJob, run_id: str | None = None) -> RunSummary:
    """Replay a deployment's quarantined logs (optionally only those from one run)."""
    ids = quarantined_ids(scores_engine(), job.deployment, run_id)
    result = ReplayResult(requested=len(ids))
    async with run_lifecycle(job, KINDS["replay"]) as run:
        size = job.source.page_size
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            with source_engine(job.source).connect() as conn:
                rows = rows_by_id(conn, run.job.source, chunk)
            result.missing_from_source += len(chunk) - len(rows)
            times = [r.get("ts") for r in rows]
            result.seen += [t for t in times if isinstance(t, datetime) and t.tzinfo]
            await run.process(rows)
        counts = run.tally.counts
        result.readmitted = counts.normalized
        result.still_invalid = counts.quarantined
        result.scores_written = counts.scored
        get_run_logger().info("replay of %s: %s", job.deployment, result.model_dump())
        run.details["replay"] = result.model_dump()
        if result.seen:  # the rollups of the hours the replayed logs belong to
            run.rollup_hours = (min(result.seen), max(result.seen))
    assert run.summary is not None
    return run.summary
