"""One page of the hourly pipeline: pull, normalize, evaluate, write. Pure of Prefect."""

import asyncio
import contextlib
import os
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, SecretStr

from evaluators.base import Cost, EvalContext, Evaluator
from evaluators.judges.builtin import JudgeEvaluator
from evaluators.judges.client import Endpoint, JudgeRuntime
from evaluators.judges.keys import check_endpoint
from tasks.budget.claims import claim_plan, release_claims, release_claims_now
from tasks.budget.dedupe import KnownVerdict, known_verdicts
from tasks.budget.ledger import LedgerGate
from tasks.budget.sampling import PagePlan, StratumCount, content_hash, plan_page
from tasks.config import FLAGGING_EVALUATORS, EvalJob, SourceConfig, check_url_env
from tasks.contract.suite import Admission, ContractSummary, admit, future_start
from tasks.errors import ConfigError, DataContractBroken, RowsUnaccounted
from tasks.score import judge_plan, score_records
from tasks.secrets import is_reference, resolve
from tasks.settings import get_settings
from tasks.store.db import engine_for, warehouse_url
from tasks.store.persist import PageCounts, write_page
from tasks.store.rows import Cursor, ScoreRow
from tasks.store.sql import query
from tasks.warehouse.normalize import reject
from tasks.warehouse.source import (
    count_between,
    counts_per_chunk,
    fetch_page,
    source_columns,
    undated_rows,
)

FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)


class PageOutcome(BaseModel):
    counts: PageCounts
    last: Cursor | None
    full: bool  # a full page means there may be more
    contract: ContractSummary = ContractSummary()
    strata: dict[str, dict[str, StratumCount]] = {}  # evaluator -> stratum -> counts
    unscored: dict[str, dict[str, int]] = {}  # evaluator -> stratum -> left by the budget
    copied: int = 0  # duplicate verdicts reused
    held_elsewhere: int = 0  # planned judge calls left to another run that holds the log


def source_engine(source: SourceConfig) -> sa.Engine:
    if source.url_env is None:
        setting = "ASSAY_WAREHOUSE_URL" if get_settings().warehouse_url else "ASSAY_DATABASE_URL"
        return engine_for(warehouse_url(), setting)
    try:  # checked at load; again with the worker's own list, which a config cannot widen
        check_url_env(source.url_env)
    except ValueError as refused:
        raise ConfigError(f"source: {refused}") from None
    if is_reference(source.url_env):
        return engine_for(SecretStr(resolve(source.url_env)), "source.url_env")
    value = os.environ.get(source.url_env)
    if not value:
        raise ConfigError(f"source.url_env names {source.url_env}, which is not set")
    return engine_for(SecretStr(resolve(value)), source.url_env)


def chunks_with_logs(
    job: EvalJob, windows: list[tuple[datetime, datetime]], chunk: timedelta
) -> list[tuple[datetime, datetime]]:
    """The backfill windows that hold logs, found with one grouped count over the whole range:
    an empty chunk costs no run (sessions and traces are found by their items, so a chunk
    without logs has none either)."""
    if not windows:
        return []
    source = fitted_job(job).source
    with source_engine(source).connect() as conn:
        counts = counts_per_chunk(conn, source, windows[0][0], windows[-1][1], chunk)
    return [window for number, window in enumerate(windows) if counts.get(number)]


def fitted_job(job: EvalJob) -> EvalJob:
    """The job with its source fitted to the columns the source really has (see
    `SourceConfig.fitted`): read once per run, in a READ ONLY transaction."""
    with source_engine(job.source).connect() as conn:
        available = source_columns(conn, job.source)
    return job.model_copy(update={"source": job.source.fitted(available)})


def build_evaluators(job: EvalJob) -> list[Evaluator]:
    # Session and trace evaluators run on whole units (tasks/sessions.py), not per log.
    return [e for e in (cfg.build() for cfg in job.evaluators) if isinstance(e, Evaluator)]


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


def judge_env(evaluators: list[Evaluator], extra: Sequence[Endpoint] = ()) -> dict[str, str]:
    """The environment the judge runtime reads keys from, with every `secret://BLOCK` its
    judges (and a check's prompt target, `extra`) name resolved (on the worker, at run time;
    never stored in parameters)."""
    env = dict(os.environ)
    endpoints = [*extra]
    for evaluator in evaluators:
        if isinstance(evaluator, JudgeEvaluator):
            endpoints += [evaluator.route.primary, *evaluator.route.fallbacks]
    for endpoint in endpoints:
        if endpoint.api_key_env and is_reference(endpoint.api_key_env):
            try:  # the worker's own list decides, whatever process loaded the config
                check_endpoint(endpoint.api_base, endpoint.api_key_env)
            except ValueError as refused:
                raise ConfigError(str(refused)) from None
            env[endpoint.api_key_env] = resolve(endpoint.api_key_env)
    return env


def flagged_ids(scores: list[ScoreRow]) -> set[str]:
    """Logs a flagging free evaluator failed (priority candidates for the judges)."""
    return {
        row.log_id
        for row in scores
        if row.evaluator in FLAGGING_EVALUATORS and row.status == "ok" and row.passed is False
    }


def known_for(
    scores_db: sa.Engine, deployment: str, plan: PagePlan, paid: list[Evaluator]
) -> dict[tuple[str, str], KnownVerdict]:
    """Verdicts already stored for the planned content, per evaluator version."""
    known: dict[tuple[str, str], KnownVerdict] = {}
    for evaluator in paid:
        hashes = sorted(
            {content_hash(i.record, evaluator) for i in plan.items if i.evaluator is evaluator}
        )
        found = known_verdicts(
            scores_db, deployment, evaluator.score_name, evaluator.evaluator_version, hashes
        )
        known.update({(evaluator.score_name, h): v for h, v in found.items()})
    return known


def without_scored(
    scores_db: sa.Engine, deployment: str, plan: PagePlan, paid: list[Evaluator]
) -> PagePlan:
    """The plan minus items already scored by the same evaluator version, so a rerun or a
    resumed backfill pays for nothing twice (the write would skip them anyway)."""
    done: set[tuple[str, str]] = set()
    with scores_db.connect() as conn:
        for evaluator in paid:
            ids = [i.record.id for i in plan.items if i.evaluator is evaluator]
            found = conn.execute(
                sa.text(query("persist", "scored_log_ids")),
                {
                    "deployment": deployment,
                    "evaluator": evaluator.score_name,
                    "version": evaluator.evaluator_version,
                    "log_ids": ids,
                },
            )
            done.update((evaluator.score_name, log_id) for log_id in found.scalars())
    if not done:
        return plan
    left = [i for i in plan.items if (i.evaluator.score_name, i.record.id) not in done]
    return plan.model_copy(update={"items": left})


def read_page(
    source: SourceConfig, after: Cursor | None, start: datetime, until: datetime
) -> list[dict[str, Any]]:
    with source_engine(source).connect() as conn:
        return fetch_page(conn, source, after, start, until)


async def process_page(
    job: EvalJob,
    scores_db: sa.Engine,
    run_id: str,
    after: Cursor | None,
    start: datetime,
    until: datetime,
    evaluators: list[Evaluator],
    judges: JudgeRuntime | None = None,
    so_far: PageCounts | None = None,
    backfill: bool = False,
) -> PageOutcome:
    """The next keyset page of the window, through `process_rows`; the watermark follows it,
    except in a backfill, which leaves it alone and skips what is already scored."""
    rows = await asyncio.to_thread(read_page, job.source, after, start, until)
    if not rows:
        return PageOutcome(counts=PageCounts(), last=None, full=False)
    last = Cursor(ts=rows[-1]["ts"], log_id=rows[-1]["id"])
    outcome = await process_rows(
        job,
        scores_db,
        run_id,
        rows,
        evaluators,
        judges,
        so_far or PageCounts(),
        cursor=None if backfill else last,
    )
    return outcome.model_copy(update={"full": len(rows) == job.source.page_size, "last": last})


async def process_rows(
    job: EvalJob,
    scores_db: sa.Engine,
    run_id: str,
    rows: list[dict[str, Any]],
    evaluators: list[Evaluator],
    judges: JudgeRuntime | None,
    so_far: PageCounts,
    cursor: Cursor | None,
    enforce_contract: bool = True,
) -> PageOutcome:
    """Contract, then free evaluators on every valid log, then paid ones on the sample, then
    one transaction (moving the watermark to `cursor` if given). A batch that breaks the
    contract is quarantined and stops the run before anything is evaluated."""
    # Database work runs in a worker thread, never on the event loop: chunks and judges of
    # other runs in this process go on while a page is read or written.
    admission = admit(rows, job.source.format, job.quality)
    admission = await asyncio.to_thread(without_duplicate_ids, scores_db, job.deployment, admission)
    check_accounted(rows, admission)
    problem = contract_breach(job, admission, len(rows), so_far) if enforce_contract else None
    if problem:
        await asyncio.to_thread(
            write_page, scores_db, job.deployment, run_id, [], admission.rejects, None, len(rows)
        )
        raise DataContractBroken(problem, admission.summary)
    # A trace's tool, retrieval and agent steps pass the contract like any row but are not LLM
    # calls: the trace evaluators read them (tasks/sessions.py), log evaluators do not.
    records = [r for r in admission.records if r.is_llm_call]
    ctx = EvalContext(deployment=job.deployment, run_id=run_id, judges=judges)
    free, paid = split_by_cost(evaluators)
    scores = await score_records(records, free, ctx)
    strata: dict[str, dict[str, StratumCount]] = {}
    unscored: dict[str, dict[str, int]] = {}
    copied = held_elsewhere = 0
    if paid:
        plan = plan_page(records, paid, job.sampling, flagged_ids(scores))
        # Claim before asking: a run over the same logs (a backfill beside the hourly run)
        # leaves what this one holds, and what a run committed before the claim is skipped.
        plan, held_elsewhere = await asyncio.to_thread(
            claim_plan, scores_db, job.deployment, run_id, plan, paid
        )
        plan = await asyncio.to_thread(without_scored, scores_db, job.deployment, plan, paid)
        known = (
            await asyncio.to_thread(known_for, scores_db, job.deployment, plan, paid)
            if job.sampling.dedupe
            else {}
        )
        try:
            judged = await judge_plan(plan.items, ctx, known, job.sampling.dedupe)
        except BaseException:
            await release_unstored(judges)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(release_claims_now, scores_db, run_id)
            raise
        scores += judged.rows
        strata, unscored, copied = plan.strata, judged.unscored, judged.copied
    gate = ledger_gate(judges)
    settled = gate.take() if gate is not None else []

    def in_the_page(conn: sa.Connection) -> None:
        # The calls behind these scores become spend, and the claims end, in the same
        # transaction as the scores.
        if gate is not None and settled:
            gate.ledger.apply(conn, settled)
        if paid:
            release_claims(conn, run_id)

    try:
        counts = await asyncio.to_thread(
            write_page,
            scores_db,
            job.deployment,
            run_id,
            scores,
            admission.rejects,
            cursor,
            len(rows),
            # A duplicate id's repeat is quarantined while its first occurrence is scored: the
            # quarantine row documents the duplicate and must stay.
            admitted=sorted(
                {r.id for r in admission.records} - {r.log_id for r in admission.rejects}
            ),
            usage=records,
            also=in_the_page if (gate and settled) or paid else None,
        )
    except BaseException:
        if gate is not None:
            with contextlib.suppress(Exception):
                await gate.release(settled)
        raise
    return PageOutcome(
        counts=counts,
        last=cursor,
        full=False,
        contract=admission.summary,
        strata=strata,
        unscored=unscored,
        copied=copied,
        held_elsewhere=held_elsewhere,
    )


def ledger_gate(judges: JudgeRuntime | None) -> LedgerGate | None:
    return judges.gate if judges is not None and isinstance(judges.gate, LedgerGate) else None


async def release_unstored(judges: JudgeRuntime | None) -> None:
    """A page that fails after judging stores none of its results: their reservations are
    released, and the logs are judged (and paid for) again when the page is retried."""
    gate = ledger_gate(judges)
    if gate is not None:
        with contextlib.suppress(Exception):
            await gate.release(gate.take())


def contract_breach(
    job: EvalJob, admission: Admission, pulled: int, so_far: PageCounts
) -> str | None:
    """Why this batch stops the run, or None. Small batches are judged with the run so far."""
    invalid, total = len(admission.rejects), pulled
    if pulled < job.quality.min_batch_rows:
        invalid, total = invalid + so_far.quarantined, total + so_far.pulled
        if total < job.quality.min_batch_rows:
            return None
    if invalid / total <= job.quality.max_invalid_fraction:
        return None
    top = ", ".join(f"{label} x{n}" for label, n in list(admission.summary.unexpected.items())[:5])
    sample = ", ".join(r.log_id for r in admission.rejects[:5])
    return (
        f"data contract broken for {job.deployment}: {invalid} of {total} logs "
        f"({invalid / total:.0%}) failed, above max_invalid_fraction "
        f"{job.quality.max_invalid_fraction:g}. Failed: {top or 'see quarantine'}. "
        f"Sample ids: {sample}. Nothing was evaluated and the watermark did not move; fix the "
        f"source, then rerun (see `assay quarantine {job.deployment}`)."
    )


def check_accounted(rows: Sequence[dict[str, Any]], admission: Admission) -> None:
    """Every pulled row is a record (to score) or a reject (to quarantine): pulled = normalized
    + quarantined, checked on each page rather than assumed. A row lost in between would be
    counted as pulled and never seen again, so the run fails loudly instead and the watermark
    stays where it was."""
    accounted = len(admission.records) + len(admission.rejects)
    if accounted == len(rows):
        return
    pulled = Counter(str(row.get("id")) for row in rows)
    kept = Counter([r.id for r in admission.records] + [str(r.log_id) for r in admission.rejects])
    missing = sorted((pulled - kept).elements())[:5]
    raise RowsUnaccounted(
        f"{len(rows):,} rows pulled but {len(admission.records):,} normalized + "
        f"{len(admission.rejects):,} quarantined = {accounted:,}"
        + (f"; not accounted for: {', '.join(missing)}" if missing else "")
    )


def without_duplicate_ids(scores_db: sa.Engine, deployment: str, admission: Admission) -> Admission:
    """A log id already scored at another time is a second log under a reused id: quarantined,
    naming the copy that was scored (never silently dropped by the score key's conflict)."""
    if not admission.records:
        return admission
    with scores_db.connect() as conn:
        found = conn.execute(
            sa.text(query("persist", "scored_times")),
            {"deployment": deployment, "log_ids": [r.id for r in admission.records]},
        )
        scored: dict[str, datetime] = {row.log_id: row.log_ts for row in found}
    repeats = [r for r in admission.records if r.id in scored and scored[r.id] != r.ts]
    if not repeats:
        return admission
    rejects = [
        reject(
            {"id": r.id, "ts": r.ts, "model": r.model, "customer_id": r.customer_id},
            [
                f"duplicate id: the log {r.id!r} at {scored[r.id].isoformat()} was already "
                f"scored; this one at {r.ts.isoformat()} reuses its id"
            ],
        )
        for r in repeats
    ]
    kept = [r for r in admission.records if r not in repeats]
    return admission.model_copy(update={"records": kept, "rejects": [*admission.rejects, *rejects]})


def quarantine_undated_logs(job: EvalJob, scores_db: sa.Engine, run_id: str) -> PageCounts:
    """Logs with a NULL timestamp fall in no window: each run looks for new ones (one cheap
    `ts IS NULL` probe) and quarantines them, so they are seen, not silently never read."""
    with source_engine(job.source).connect() as conn:
        rows = undated_rows(conn, job.source)
    if not rows:
        return PageCounts()
    rejects = [
        reject(row, ["ts: NULL, so the log belongs to no window and is never read; fix the "
                     "source, then `assay quarantine --replay`"])
        for row in rows
    ]  # fmt: skip
    with scores_db.connect() as conn:
        known = set(
            conn.execute(
                sa.text(query("persist", "quarantined_among")),
                {"deployment": job.deployment, "log_ids": [r.log_id for r in rejects]},
            ).scalars()
        )
    new = [r for r in rejects if r.log_id not in known]
    if not new:
        return PageCounts()
    return write_page(scores_db, job.deployment, run_id, [], new, None, len(new))


def late_logs(job: EvalJob, scores_db: sa.Engine, run_id: str) -> dict[str, Any] | None:
    """Logs that arrived behind the watermark (later than `lag` allowed) in the previous run's
    window: counted, so the summary can say so and name the backfill that scores them."""
    with scores_db.connect() as conn:
        previous = conn.execute(
            sa.text(query("runs", "previous_window")),
            {"deployment": job.deployment, "run_id": run_id},
        ).one_or_none()
    if previous is None or previous.window_start is None:
        return None
    with source_engine(job.source).connect() as conn:
        now = count_between(conn, job.source, previous.window_start, previous.window_end)
    late = now - previous.pulled
    if late <= 0:
        return None
    start, end = previous.window_start.isoformat(), previous.window_end.isoformat()
    return {
        "count": late,
        "window_start": start,
        "window_end": end,
        "remedy": f"assay backfill {job.deployment} --start {start} --end {end}",
    }


def quarantine_future_logs(
    job: EvalJob, scores_db: sa.Engine, run_id: str, now: datetime
) -> PageCounts:
    """Logs stamped beyond now + skew never enter a window until their time comes; catch them
    now, so a clock or timezone bug in logging is seen the hour it ships."""
    with source_engine(job.source).connect() as conn:
        rows = fetch_page(conn, job.source, None, future_start(job.quality, now), FAR_FUTURE)
    if not rows:
        return PageCounts()
    admission = admit(rows, job.source.format, job.quality, now=now)
    return write_page(scores_db, job.deployment, run_id, [], admission.rejects, None, len(rows))
