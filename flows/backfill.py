"""`backfill`: evaluate a past range, chunk by chunk, without touching the hourly watermark.

Run from a deployment, the parent splits [start, end) into chunks and starts each as a child
flow run of the same deployment (`run_deployment`), so any worker of the pool can take it; at
most `max_parallel` run at once. Run locally (`assay backfill`), the chunks run in this
process. Chunks are idempotent: a log already scored by an evaluator version is neither judged
nor written again, so rerunning a half-finished backfill does only the rest. All chunks spend
from one budget (`budget_usd`, the parent's ledger key) and from the deployment's daily cap.
"""

import asyncio
from datetime import datetime, timedelta
from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.deployments.flow_runs import arun_deployment
from prefect.runtime import deployment, flow_run
from pydantic import Field

from tasks.budget.ledger import Ledger
from tasks.config import Duration, EvalJob
from tasks.errors import BackfillIncomplete, ConfigError
from tasks.run.kinds import KINDS
from tasks.run.lifecycle import run_lifecycle
from tasks.run.probes import chunks_with_logs
from tasks.store.db import scores_engine
from tasks.store.runs import RunSummary, sum_children

#: The last instant of a chunk: windows are [start, end), the source reads `ts <= until`.


#: More chunks than this need the user's say-so (`assay backfill --yes`).
CONFIRM_CHUNKS = 10_000
#: More than this is never planned: the plan's memory stays bounded whatever the range.
MAX_CHUNKS = 200_000


def chunk_count(start: datetime, end: datetime, chunk: timedelta) -> int:
    """How many chunks [start, end) makes, by arithmetic (nothing is planned to count them)."""
    if end <= start:
        raise ConfigError(f"backfill: end {end} must be after start {start}")
    if chunk <= timedelta(0):
        raise ConfigError("backfill: chunk must be a positive duration, e.g. 1h or 1d")
    return -(-(end - start) // chunk)


def chunk_windows(
    start: datetime, end: datetime, chunk: timedelta
) -> list[tuple[datetime, datetime]]:
    count = chunk_count(start, end, chunk)
    if count > MAX_CHUNKS:
        raise ConfigError(
            f"backfill: {count:,} chunks of {chunk} is more than {MAX_CHUNKS:,}: use a longer "
            "chunk (e.g. 1d)"
        )
    windows = []
    while start < end:
        windows.append((start, min(start + chunk, end)))
        start += chunk
    return windows


def backfill_job(job: EvalJob, evaluators: list[str] | None, budget_usd: float | None) -> EvalJob:
    """The job narrowed to the requested evaluators, with the backfill's own budget: one cap
    for all its chunks (the daily cap still applies, shared with the hourly runs)."""
    # An evaluator may be named by its registry name or its score name (rubric:<id>).
    chosen = job.evaluators
    if evaluators:
        aliases = job.evaluator_aliases()
        unknown = sorted(set(evaluators) - set(aliases))
        if unknown:
            raise ConfigError(
                f"backfill: evaluator(s) {', '.join(unknown)} are not in {job.deployment}'s "
                f"job; choose from {', '.join(sorted(aliases))}"
            )
        wanted = {score for name in evaluators for score in aliases[name]}
        chosen = [cfg for cfg in job.evaluators if cfg.build().score_name in wanted]
    narrowed = job.model_copy(update={"evaluators": chosen})
    kept = set(evaluator_names(narrowed))
    return narrowed.model_copy(
        update={
            "budget": job.budget.model_copy(
                update={"max_usd_per_run": budget_usd, "max_calls_per_run": None}
            ),
            "alerts": job.alerts.model_copy(
                update={"rules": [r for r in job.alerts.rules if r.evaluator in kept]}
            ),
        }
    )


def evaluator_names(job: EvalJob) -> list[str]:
    return job.score_names()


#: The custom-run form, in order: what a person came to set first, the job object last.
#: (Prefect titles parameters by their names and drops `Field` descriptions; these restore them.)
FORM_FIELDS = {
    "start": ("Start", "First log time to evaluate (ISO 8601; UTC if no zone)."),
    "end": ("End", "Evaluate logs before this time (exclusive)."),
    "evaluators": ("Evaluators", "Only these evaluators of the job; empty means all of them."),
    "budget_usd": ("Budget (USD)", "Judge spend cap for the whole backfill, all chunks together."),
    "chunk": ("Chunk", "Length of each child run's window, e.g. 1h or 1d (ISO: PT1H, P1D)."),
    "max_parallel": ("Chunks at once", "How many chunks run at the same time, across workers."),
    "job": ("Job config (rarely changed)", "The deployment's job file as deployed: change it "
            "in deployments/jobs/ and run `assay deploy`, not here."),
}  # fmt: skip


def form_schema(schema: dict[str, Any], job: EvalJob) -> dict[str, Any]:
    """The backfill deployment's parameter schema as the Prefect UI form should show it: the
    range first, evaluators as a choice among the job's (a typo cannot be submitted), the job
    object last, and `parent_run_id` (internal: set by a backfill for its chunks) hidden. The
    schema does not forbid extra properties, so chunks still pass `parent_run_id`."""
    properties = {
        name: dict(schema.get("properties", {}).get(name, {}))
        for name in FORM_FIELDS
        if name in schema.get("properties", {})
    }
    for position, name in enumerate(properties):
        title, description = FORM_FIELDS[name]
        properties[name].update(position=position, title=title, description=description)
    choices = sorted(job.evaluator_aliases())
    if "evaluators" in properties:
        properties["evaluators"]["anyOf"] = [
            {"type": "array", "items": {"type": "string", "enum": choices}, "uniqueItems": True},
            {"type": "null"},
        ]
    return {**schema, "properties": properties,
            "required": [r for r in schema.get("required", []) if r in properties]}  # fmt: skip


async def run_chunk(
    job: EvalJob, start: datetime, end: datetime, budget_key: str, parent_run_id: str | None
) -> RunSummary:
    """Evaluate logs in [start, end), and sessions and traces that completed in it, that are
    not scored yet, as one backfill run."""
    async with run_lifecycle(
        job, KINDS["backfill"], window_end=end, start=start, budget_key=budget_key,
        parent_run_id=parent_run_id, evaluators=evaluator_names(job),
    ) as run:  # fmt: skip
        await run.pages()
        await run.sessions()
    assert run.summary is not None
    return run.summary


def deployment_parameters(
    job: EvalJob,
    window: tuple[datetime, datetime],
    evaluators: list[str] | None,
    budget_usd: float | None,
    chunk: timedelta,
    max_parallel: int,
    parent_run_id: str | None = None,
) -> dict[str, Any]:
    """The backfill deployment's parameters as JSON (for `run_deployment`): a whole backfill
    submitted from the CLI, or one chunk started by its parent."""
    return {
        "job": job.model_dump(mode="json"),
        "start": window[0].isoformat(),
        "end": window[1].isoformat(),
        "evaluators": evaluators,
        "budget_usd": budget_usd,
        "chunk": f"{chunk.total_seconds():g}s",
        "max_parallel": max_parallel,
        "parent_run_id": parent_run_id,
    }


async def fan_out(
    windows: list[tuple[datetime, datetime]],
    parameters: Any,
    max_parallel: int,
) -> list[str]:
    """Each window as a child flow run of this deployment; returns what did not complete."""
    name = f"{flow_run.flow_name}/{deployment.name}"
    gate = asyncio.Semaphore(max_parallel)

    async def one(window: tuple[datetime, datetime]) -> str | None:
        async with gate:
            child = await arun_deployment(
                name,
                parameters=parameters(window),
                flow_run_name=f"chunk-{window[0]:%Y%m%dT%H%M}",
                as_subflow=True,
                timeout=None,
                poll_interval=2,
            )
        state = child.state
        if state is not None and state.is_completed():
            return None
        outcome = state.name if state is not None else "unknown"
        return f"{window[0]:%Y-%m-%d %H:%M} to {window[1]:%Y-%m-%d %H:%M} ({outcome})"

    return [f for f in await asyncio.gather(*(one(w) for w in windows)) if f]


async def run_here(
    job: EvalJob, windows: list[tuple[datetime, datetime]], parent_run_id: str, max_parallel: int
) -> list[str]:
    """Chunks in this process (no deployment to fan out to)."""
    gate = asyncio.Semaphore(max_parallel)

    async def one(window: tuple[datetime, datetime]) -> str | None:
        async with gate:
            try:
                await run_chunk(job, window[0], window[1], parent_run_id, parent_run_id)
            except Exception as exc:
                return f"{window[0]:%Y-%m-%d %H:%M} ({type(exc).__name__}: {exc})"
        return None

    return [f for f in await asyncio.gather(*(one(w) for w in windows)) if f]


@flow(name="backfill", log_prints=False)
async def backfill(
    job: Annotated[
        EvalJob,
        Field(
            title="Job config (rarely changed)",
            description="The deployment's job file, as deployed; change it in the job file.",
        ),
    ],
    start: Annotated[
        datetime, Field(title="Start", description="First log time to evaluate (UTC if no zone).")
    ],
    end: Annotated[
        datetime, Field(title="End", description="Evaluate logs before this time (exclusive).")
    ],
    evaluators: Annotated[
        list[str] | None,
        Field(
            title="Evaluators",
            description="Only these evaluators (from the job); empty means all of them.",
        ),
    ] = None,
    budget_usd: Annotated[
        float | None,
        Field(
            ge=0,
            title="Budget (USD)",
            description="Judge spend cap for the whole backfill, all chunks together.",
        ),
    ] = None,
    chunk: Annotated[
        Duration,
        Field(title="Chunk", description="Length of each child run's window, e.g. 1h or 1d."),
    ] = timedelta(days=1),
    max_parallel: Annotated[
        int,
        Field(ge=1, le=64, title="Chunks at once", description="Across workers."),
    ] = 2,
    parent_run_id: Annotated[
        str | None, Field(description="Set by a backfill for its chunks (hidden in the form).")
    ] = None,
) -> RunSummary:
    """Evaluate logs in [start, end) with the job's evaluators (or `evaluators`), chunk by
    chunk, skipping what is already scored; the hourly watermark is never moved."""
    logger = get_run_logger()
    narrowed = backfill_job(job, evaluators, budget_usd)
    windows = chunk_windows(start, end, chunk)
    if parent_run_id is not None:  # one chunk, started by a parent backfill
        return await run_chunk(narrowed, start, end, parent_run_id, parent_run_id)
    names = evaluator_names(narrowed)
    async with run_lifecycle(
        narrowed, KINDS["backfill_parent"], window_end=end, start=start, evaluators=names
    ) as run:
        run_id, planned = run.plan.run_id, len(windows)
        run.details.update(chunks=planned, planned_chunks=planned)
        try:
            windows = chunks_with_logs(narrowed, windows, chunk)
            run.details.update(chunks=len(windows), empty_chunks=planned - len(windows))
            logger.info(
                "backfill %s of %s: %d chunk(s) of %s from %s to %s hold logs (%d empty, "
                "skipped), evaluators %s", run_id, job.deployment, len(windows), chunk, start,
                end, planned - len(windows), ", ".join(names),
            )  # fmt: skip
            if deployment.id and len(windows) > 1:
                failed = await fan_out(
                    windows,
                    lambda w: deployment_parameters(
                        job, w, evaluators, budget_usd, chunk, 1, parent_run_id=run_id
                    ),
                    max_parallel,
                )
            else:
                failed = await run_here(narrowed, windows, run_id, max_parallel)
            if failed:
                raise BackfillIncomplete(
                    f"{len(failed)} of {len(windows)} chunks did not complete: "
                    f"{'; '.join(failed)}. Run the same backfill again to finish them: what is "
                    "already scored is skipped."
                )
        finally:  # the chunks' counters add up into this run, whether or not all completed
            unscored = sum_children(scores_engine(), run_id)
        run.details["evaluators"] = names
        if unscored:  # the whole backfill's remainder, per evaluator (chunks hold the strata)
            run.details["sampling"] = {"unscored": {e: {"all": n} for e, n in unscored.items()}}
        if narrowed.budget.capped:
            ledger = Ledger(scores_engine(), job.deployment, run_id, narrowed.budget)
            run.details["spend"] = ledger.report().model_dump()
    assert run.summary is not None
    return run.summary
