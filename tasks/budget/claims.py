"""One paid call per score key across runs: claim a log for a judge in Postgres before calling.

A scheduled run and a backfill over the same window would otherwise both judge the same logs
(and pay twice; the second verdict is dropped by the score key). Before a page's judges run,
the run claims every planned (deployment, log, evaluator, version) key; a key another live run
holds is left to it. Claims end when the page commits (its scores then say the log is judged)
or fails; a claim of a run that is no longer running, or older than `CLAIM_TIMEOUT_S`, is taken
over, so an abandoned run never blocks a log for good.
"""

import sqlalchemy as sa

from evaluators.base import Evaluator
from tasks.budget.sampling import PagePlan
from tasks.store.sql import query

#: A page's judging never takes this long (calls have timeouts and retries are bounded); past
#: it, a claim is treated as abandoned even if its run still looks alive.
CLAIM_TIMEOUT_S = 1800


def claim_plan(
    scores_db: sa.Engine, deployment: str, run_id: str, plan: PagePlan, paid: list[Evaluator]
) -> tuple[PagePlan, int]:
    """The plan narrowed to the keys this run now holds, and how many it left to other runs.
    Claims commit at once, so a concurrent run sees them before it calls."""
    held: set[tuple[str, str]] = set()
    wanted = 0
    with scores_db.begin() as conn:
        for evaluator in paid:
            ids = sorted({i.record.id for i in plan.items if i.evaluator is evaluator})
            if not ids:
                continue
            wanted += len(ids)
            got = conn.execute(
                sa.text(query("persist", "claim_score_keys")),
                {"deployment": deployment, "evaluator": evaluator.score_name,
                 "version": evaluator.evaluator_version, "run_id": run_id, "log_ids": ids,
                 "timeout_s": CLAIM_TIMEOUT_S},
            )  # fmt: skip
            held.update((evaluator.score_name, log_id) for log_id in got.scalars())
    if len(held) == wanted:
        return plan, 0
    kept = [i for i in plan.items if (i.evaluator.score_name, i.record.id) in held]
    return plan.model_copy(update={"items": kept}), wanted - len(held)


def release_claims(conn: sa.Connection, run_id: str) -> None:
    """In the page's own transaction: its keys are scored now, or were never written."""
    conn.execute(sa.text(query("persist", "release_claims")), {"run_id": run_id})


def release_claims_now(scores_db: sa.Engine, run_id: str) -> None:
    with scores_db.begin() as conn:
        release_claims(conn, run_id)
