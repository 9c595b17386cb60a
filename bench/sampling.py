"""Sampling and ledger benchmark. Prints JSON.

(a) planning the sample over BENCH_LOGS (default 1,000,000) canonical records with 3 strata
    keys (model, prompt_slug, customer_id), 3 paid evaluators, rate 5%, min 2 per stratum,
    priority on flags and feedback, in pages of 5,000 as the flow does: time and peak RSS
(b) ledger overhead per judged call against real Postgres: reserve + settle one by one, and
    through the judge runtime's gate (settlements batched) with 50 concurrent callers
    (target < 2 ms per call)
"""

import asyncio
import json
import os
import resource
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import create_database, drop_database
from evaluators.records import LogRecord
from evaluators.registry import build_evaluator
from tasks.budget.ledger import Ledger, LedgerGate
from tasks.budget.sampling import plan_page
from tasks.config import BudgetConfig, SamplingConfig
from tasks.store.db import _engine, migrate

LOGS = int(os.environ.get("BENCH_LOGS", "1000000"))
PAGE = 5000
LEDGER_CALLS = 2000


def plan_benchmark() -> dict[str, object]:
    judges = [build_evaluator(n, {}) for n in ("faithfulness", "answer_relevance", "toxicity")]
    sampling = SamplingConfig(
        rate=0.05, seed="bench", stratify_by=["model", "prompt_slug", "customer_id"],
        min_per_stratum=2, priority=["flagged", "negative_feedback"],
    )  # fmt: skip
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    planned = build = plan = 0.0
    for offset in range(0, LOGS, PAGE):
        start = time.perf_counter()
        page = [
            LogRecord(
                id=f"log-{i:08d}", ts=ts, prompt="p", response="r",
                model=("gpt-4o", "gpt-4o-mini", "claude")[i % 3],
                prompt_slug=("order", "refund", "qa", "account")[i % 4],
                customer_id=f"c{i % 50}",
                feedback="negative" if i % 97 == 0 else None,
            )
            for i in range(offset, min(offset + PAGE, LOGS))
        ]  # fmt: skip
        build += time.perf_counter() - start
        start = time.perf_counter()
        result = plan_page(page, judges, sampling, flagged={page[0].id})
        plan += time.perf_counter() - start
        planned += len(result.items)
    return {
        "logs": LOGS,
        "strata_keys": 3,
        "paid_evaluators": 3,
        "planned_items": int(planned),
        "plan_seconds": round(plan, 2),
        "plan_us_per_log_and_evaluator": round(plan / LOGS / 3 * 1e6, 2),
        "record_build_seconds": round(build, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


async def ledger_benchmark(url: str) -> dict[str, object]:
    engine = _engine(url)
    migrate(engine)
    budget = BudgetConfig(max_usd_per_run=1e9, max_usd_per_day=1e9)
    ledger = Ledger(engine, "bench", str(uuid.uuid4()), budget)
    start = time.perf_counter()
    for _ in range(LEDGER_CALLS):
        reservation = ledger.reserve(0.001)
        assert reservation is not None
        ledger.settle(reservation, 0.0008)
    sequential = (time.perf_counter() - start) / LEDGER_CALLS
    gate = LedgerGate(Ledger(engine, "bench", str(uuid.uuid4()), budget))
    gate_sem = asyncio.Semaphore(50)

    async def call() -> None:
        async with gate_sem:
            reservation = await gate.reserve("m", 0.001)
            await gate.settle(reservation, 0.0008)

    start = time.perf_counter()
    await asyncio.gather(*(call() for _ in range(LEDGER_CALLS)))
    await gate.close()
    ledger.close()
    concurrent = (time.perf_counter() - start) / LEDGER_CALLS
    engine.dispose()
    return {
        "calls": LEDGER_CALLS,
        "unbatched_ms_per_call": round(sequential * 1000, 3),
        "gate_50_concurrent_ms_per_call": round(concurrent * 1000, 3),
        "target_ms_per_call": "< 2",
    }


def main() -> None:
    name, _conninfo, url = create_database()
    try:
        ledger = asyncio.run(ledger_benchmark(url))
        plan = plan_benchmark()
        print(json.dumps({"planning": plan, "ledger": ledger}, indent=2))
    finally:
        drop_database(name)


if __name__ == "__main__":
    main()
