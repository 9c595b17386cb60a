"""One page of a run: contract, free evaluators on every valid log, paid ones on the sample,
then one transaction. Pure of Prefect: the task shell around it is `tasks/run/shell.py`."""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from evaluators.base import Cost, EvalContext, Evaluator
from evaluators.judges.client import JudgeRuntime
from tasks.budget.claims import claim_plan, release_claims, release_claims_now
from tasks.budget.dedupe import KnownVerdict, known_verdicts
from tasks.budget.sampling import PagePlan, StratumCount, content_hash, plan_page
from tasks.config import FLAGGING_EVALUATORS, EvalJob
from tasks.contract.accounting import check_accounted, contract_breach, without_duplicate_ids
from tasks.contract.suite import ContractSummary, admit
from tasks.errors import DataContractBroken
from tasks.run.judging import ledger_gate, release_unstored
from tasks.run.kinds import Kind
from tasks.run.scoring import judge_plan, score_records
from tasks.store.persist import PageCounts, Usage, write_page
from tasks.store.rows import Cursor, ScoreRow
from tasks.store.sql import query
from tasks.warehouse.connect import read_page


class PageOutcome(BaseModel):
    counts: PageCounts
    last: Cursor | None
    full: bool  # a full page means there may be more
    contract: ContractSummary = ContractSummary()
    strata: dict[str, dict[str, StratumCount]] = {}  # evaluator -> stratum -> counts
    unscored: dict[str, dict[str, int]] = {}  # evaluator -> stratum -> left by the budget
    copied: int = 0  # duplicate verdicts reused
    held_elsewhere: int = 0  # planned judge calls left to another run that holds the log


@dataclass
class PageContext:
    """Everything a page of one run needs, built once by the run: the job, the run's kind and
    window, the evaluators, the judge runtime, the scores database, and the counts so far (a
    small batch is judged against the contract with the run so far)."""

    job: EvalJob
    kind: Kind
    run_id: str
    start: datetime
    until: datetime
    evaluators: list[Evaluator]
    scores_db: sa.Engine
    judges: JudgeRuntime | None = None
    so_far: PageCounts = field(default_factory=PageCounts)


def split_by_cost(evaluators: list[Evaluator]) -> tuple[list[Evaluator], list[Evaluator]]:
    free = [e for e in evaluators if e.cost is Cost.FREE]
    paid = [e for e in evaluators if e.cost is Cost.PAID]
    return free, paid


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


async def walk_pages(
    step: Callable[[Cursor | None], Awaitable[tuple[Cursor | None, bool]]],
    cursor: Cursor | None = None,
) -> None:
    """The keyset page loop, one for every reader of a window (a run's pages, an estimate):
    `step(after)` handles the page after `after` and says where it ended and whether it was
    full (a full page means there may be more)."""
    while True:
        last, full = await step(cursor)
        if last is None or not full:
            return
        cursor = last


async def process_page(ctx: PageContext, after: Cursor | None) -> PageOutcome:
    """The next keyset page of the window, through `process_rows`; the watermark follows it
    when the run's kind consumes its window (a backfill leaves it alone)."""
    job = ctx.job
    rows = await asyncio.to_thread(read_page, job.source, after, ctx.start, ctx.until)
    if not rows:
        return PageOutcome(counts=PageCounts(), last=None, full=False)
    last = Cursor(ts=rows[-1]["ts"], log_id=rows[-1]["id"])
    outcome = await process_rows(ctx, rows, cursor=last if ctx.kind.moves_watermark else None)
    return outcome.model_copy(update={"full": len(rows) == job.source.page_size, "last": last})


async def process_rows(
    ctx: PageContext, rows: list[dict[str, Any]], cursor: Cursor | None
) -> PageOutcome:
    """Contract, then free evaluators on every valid log, then paid ones on the sample, then
    one transaction (moving the watermark to `cursor` if given). A batch that breaks the
    contract is quarantined and stops the run (when its kind enforces the contract) before
    anything is evaluated."""
    job, scores_db, run_id, judges = ctx.job, ctx.scores_db, ctx.run_id, ctx.judges
    # Database work runs in a worker thread, never on the event loop: chunks and judges of
    # other runs in this process go on while a page is read or written.
    admission = admit(rows, job.source.format, job.quality)
    admission = await asyncio.to_thread(without_duplicate_ids, scores_db, job.deployment, admission)
    check_accounted(rows, admission)
    problem = (
        contract_breach(job, admission, len(rows), ctx.so_far)
        if ctx.kind.enforces_contract
        else None
    )
    if problem:
        await asyncio.to_thread(
            write_page, scores_db, job.deployment, run_id, [], admission.rejects, None, len(rows)
        )
        raise DataContractBroken(problem, admission.summary)
    # A trace's tool, retrieval and agent steps pass the contract like any row but are not LLM
    # calls: the trace evaluators read them (tasks/sessions/), log evaluators do not.
    records = [r for r in admission.records if r.is_llm_call]
    eval_ctx = EvalContext(deployment=job.deployment, run_id=run_id, judges=judges)
    free, paid = split_by_cost(ctx.evaluators)
    scores = await score_records(records, free, eval_ctx)
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
            judged = await judge_plan(plan.items, eval_ctx, known, job.sampling.dedupe)
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
            usage=Usage(records, ctx.start, once=ctx.kind.counts_usage_once),
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
