"""How much of a hard cap a run spends, and how soon it stops once the cap is reached.

A scheduled run (`evaluate_recent`, real Prefect, real Postgres ledger) over more eligible logs
than the per-run cap can pay for, judged by the fake LLM at a paced RPM. Reported beside the
raw baselines of the same run: the cap itself and the exact sum of the stored scores' costs.
Targets (issue 25): >= 95% of the cap spent, never more; the ledger equals the scores' cost;
after the cap, the run finishes within seconds (not at the RPM pace).
"""

import asyncio
import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import END, fake_server, migrated_database, seed, server_stats
from tasks.config import EvalJob, parse_job

LOGS = int(os.environ.get("BENCH_BUDGET_LOGS", "1500"))
CAP_USD = float(os.environ.get("BENCH_BUDGET_CAP", "0.05"))
RPM = 600  # 10 calls/s: refusals at this pace would take LOGS / 10 seconds


def job(base: str) -> EvalJob:
    return parse_job(
        {
            "deployment": "bench-budget",
            "source": {"initial_lookback": "30d", "lag": "0s", "page_size": 500},
            "evaluators": [{"name": "faithfulness", "model": "openai/judge", "api_base": f"{base}/v1"}],
            "sampling": {"dedupe": False},
            "limits": {"default": {"concurrency": 16, "rpm": RPM, "retries": 0}},
            "budget": {
                "max_usd_per_run": CAP_USD,
                "prices": {"openai/judge": {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0}},
            },
            "alerts": {"summary": "never"},
        }
    )  # fmt: skip


async def capped_run(base: str, engine: sa.Engine) -> dict[str, Any]:
    from flows.evaluate import evaluate_recent

    warm = await evaluate_recent(job(base), until=END - timedelta(days=40))  # Prefect's server
    assert warm.status == "completed"
    started = time.monotonic()  # the fake server stamps arrivals on the same clock
    summary = await evaluate_recent(job(base), until=END)
    finished = time.monotonic()
    with engine.connect() as conn:
        ledger = conn.execute(
            sa.text("SELECT spent_usd, reserved_usd, pending_usd, calls, refused FROM assay.run_spend"
                    " WHERE run_id = CAST(:r AS uuid)"), {"r": summary.run_id}
        ).one()  # fmt: skip
        scores = conn.execute(
            sa.text("SELECT coalesce(sum(cost_usd), 0), count(*) FILTER (WHERE status = 'ok')"
                    " FROM assay.scores WHERE evaluator = 'faithfulness' AND run_id = :r"),
            {"r": summary.run_id},
        ).one()  # fmt: skip
    arrivals = sorted(t for t in server_stats(base)["arrivals"] if t >= started)
    per_call = scores[0] / scores[1] if scores[1] else 0.0
    return {
        "eligible_logs": summary.pulled,
        "cap_usd": CAP_USD,
        "spent_usd": round(ledger.spent_usd, 6),
        "scores_cost_usd": round(scores[0], 6),
        "cap_used": round(ledger.spent_usd / CAP_USD, 4),
        "never_more": ledger.spent_usd <= CAP_USD + 1e-12,
        "ledger_equals_scores": abs(ledger.spent_usd - scores[0]) < 1e-9,
        "left_reserved_or_pending_usd": round(ledger.reserved_usd + ledger.pending_usd, 9),
        "judged": scores[1],
        "would_fit_at_mean_cost": int(CAP_USD // per_call) if per_call else None,
        "refused": ledger.refused,
        "judging_seconds": round(arrivals[-1] - arrivals[0], 2) if arrivals else None,
        "seconds_after_the_last_call": round(finished - arrivals[-1], 2) if arrivals else None,
        "refusals_at_rpm_pace_would_take_s": round(ledger.refused / (RPM / 60), 1),
        "target": ">= 0.95 of the cap, never more; done within seconds after the cap",
    }


async def main() -> None:
    with migrated_database() as (conninfo, engine):
        url = engine.url.render_as_string(hide_password=False)
        os.environ["ASSAY_DATABASE_URL"] = url
        from tasks.settings import get_settings

        get_settings.cache_clear()
        seed(conninfo, LOGS)
        with fake_server(latency=0.1) as base:
            result = await capped_run(base, engine)
    print(json.dumps({"bench": "budget", "logs": LOGS, "capped_run": result}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
