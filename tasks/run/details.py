"""What the run record keeps beyond counts: the contract's findings, the sample (per evaluator
and stratum), what the budget left unscored, spend, and judge health."""

from typing import Any

from tasks.config import EvalJob
from tasks.run.judging import Judging, ledger_gate
from tasks.run.tally import RunTally


def run_details(
    job: EvalJob, judged: Judging, tally: RunTally, run_id: str | None = None
) -> dict[str, Any]:
    details: dict[str, Any] = {"contract": tally.contract.model_dump()}
    if tally.late:
        details["late"] = tally.late
    judges, ledger = judged.judges, judged.ledger
    if judges is not None:
        details["sampling"] = {
            "rule": job.sampling.model_dump(),
            "strata": tally.strata,
            "unscored": tally.unscored,
            "duplicates_copied": tally.copied,
            "left_to_other_runs": tally.held_elsewhere,
        }
        details["judges"] = judges.report()
    if ledger is not None:
        details["spend"] = ledger.report().model_dump()
        gate = ledger_gate(judges)
        unstored = gate.unstored_usd if gate is not None else 0.0
        if unstored:
            # Paid for, but the page failed before storing them: judged again on the rerun.
            details["spend"]["unstored_usd"] = unstored
        if judges is not None and run_id is not None and ledger.run_id != run_id:
            details["spend"] = own_spend(details["spend"], judges, unstored)
    return details


def own_spend(shared: dict[str, Any], judges: Any, unstored: float) -> dict[str, Any]:
    """A backfill chunk's spend: the ledger row it settles on is the whole backfill's (one cap
    across chunks), so the chunk reports its own calls, cost and refusals, and the budget's
    totals so far beside them under `budget_*`."""
    stats = list(judges.stats.values())
    return {
        **shared,
        "budget_spent_usd": shared["run_spent_usd"],
        "budget_calls": shared["run_calls"],
        "budget_refused": shared["run_refused"],
        "run_spent_usd": max(0.0, sum(s.cost_usd for s in stats) - unstored),
        "run_calls": sum(s.calls for s in stats),
        "run_refused": sum(s.budget_refusals for s in stats),
    }
