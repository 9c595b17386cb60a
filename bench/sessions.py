"""Sessions as units: 200,000 logs in 20,000 conversations of 10 turns, assembled and evaluated
with three free session evaluators (`evaluate_completed_units`: find the complete sessions,
read their turns in chunks of 200 sessions, normalize, assemble, evaluate, write scores and
unit records), against the per-log path over the same rows in the same run (keyset pages of
1,000, normalize, three free log evaluators, write scores). Target: sessions at least 0.7x the
per-log throughput (logs per second), with peak memory bounded by the chunk of open sessions,
not by the window (Python heap peak, tracemalloc). The same rows are also agent traces (a root
step per run, every third step a tool call), evaluated with three free trace evaluators.

Env: BENCH_SESSION_LOGS (default 200,000), BENCH_TURNS (default 10).
"""

import asyncio
import json
import os
import sys
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from bench.common import END, create_database, drop_database

LOGS = int(os.environ.get("BENCH_SESSION_LOGS", "200000"))
TURNS = int(os.environ.get("BENCH_TURNS", "10"))
SEED_SQL = """
INSERT INTO assay.llm_logs (id, ts, prompt, response, model, customer_id, user_id, session_id,
                            status, environment, trace_id, parent_span_id, step_kind)
SELECT 'log-' || g, %(end)s::timestamptz - interval '2 hours'
                    - make_interval(secs => (%(n)s - g) * 0.5),
       'Question ' || (g %% 97) || ' about order ' || (g / %(turns)s) || '?',
       'Your order ' || (g / %(turns)s) || ' ships in ' || (g %% 5 + 1) || ' days.',
       'gpt-4o-mini', 'cust-' || ((g / %(turns)s) %% 50), 'u' || (g / %(turns)s),
       's' || (g / %(turns)s), 'ok', 'production', 't' || (g / %(turns)s),
       CASE WHEN g %% %(turns)s = 0 THEN NULL ELSE 'log-' || (g - g %% %(turns)s) END,
       CASE WHEN g %% 3 = 1 THEN 'tool' ELSE 'llm' END
FROM generate_series(0, %(n)s - 1) AS g
"""


def job(kind: str) -> Any:
    """Three free evaluators either way: of logs, or of sessions."""
    from tasks.config import parse_job

    names = {
        "logs": ["refusal", "length", "pii"],
        "sessions": ["turn_count", "repeated_question", "unanswered_final_turn"],
        "traces": ["tool_error_rate", "tool_loop", "step_limit"],
    }[kind]
    return parse_job({
        "deployment": f"bench-{kind}", "source": {"initial_lookback": "30d", "page_size": 1000},
        "evaluators": [{"name": n} for n in names],
        "sessions": {"idle": "30m", "lookback": "30d"},
    })  # fmt: skip


def per_log(url: str) -> tuple[float, int]:
    """The per-log path over every row: pages, normalize, free evaluators, score writes."""
    from evaluators.base import EvalContext
    from tasks.config import build_evaluators
    from tasks.run.scoring import score_records
    from tasks.store.db import _engine
    from tasks.store.persist import copy_scores
    from tasks.store.rows import Cursor
    from tasks.warehouse.connect import fitted_job, source_engine
    from tasks.warehouse.normalize import normalize_rows
    from tasks.warehouse.source import fetch_page

    logs = fitted_job(job("logs"))
    evaluators = build_evaluators(logs)
    ctx = EvalContext(deployment=logs.deployment, run_id="00000000-0000-0000-0000-000000000001")
    source, scores = source_engine(logs.source), _engine(url)
    after: Cursor | None = None
    seen = 0
    started = time.perf_counter()
    while True:
        with source.connect() as conn:
            rows = fetch_page(conn, logs.source, after, END - timedelta(days=30), END)
        if not rows:
            break
        records, _bad = normalize_rows(rows, "canonical")
        written = asyncio.run(score_records(records, evaluators, ctx))
        with scores.begin() as conn:
            copy_scores(conn, written)
        seen += len(rows)
        after = Cursor(ts=rows[-1]["ts"], log_id=rows[-1]["id"])
    return time.perf_counter() - started, seen


def units(url: str, kind: Literal["session", "trace"]) -> tuple[float, Any]:
    from tasks.sessions import evaluate_completed_units
    from tasks.store.db import _engine
    from tasks.warehouse.connect import fitted_job, source_engine

    unit_job = fitted_job(job(f"{kind}s"))
    started = time.perf_counter()
    outcome = asyncio.run(evaluate_completed_units(
        unit_job, kind, _engine(url), source_engine(unit_job.source),
        "00000000-0000-0000-0000-000000000002", END,
    ))  # fmt: skip
    return time.perf_counter() - started, outcome


def main() -> None:
    from tasks.settings import get_settings
    from tasks.store.db import _engine, migrate

    name, conninfo, url = create_database()
    os.environ["ASSAY_DATABASE_URL"] = url
    get_settings.cache_clear()
    try:
        migrate(_engine(url))
        with psycopg.connect(conninfo) as conn:
            conn.execute(SEED_SQL, {"end": END, "n": LOGS, "turns": TURNS})
            conn.execute("ANALYZE assay.llm_logs")
            conn.execute(
                "INSERT INTO assay.eval_runs (run_id, deployment, kind, status, window_end) "
                "VALUES ('00000000-0000-0000-0000-000000000001', 'bench-logs', 'manual', "
                "'running', now()), ('00000000-0000-0000-0000-000000000002', 'bench-sessions', "
                "'manual', 'running', now())"
            )
        tracemalloc.start()
        log_s, logs = per_log(url)
        log_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        session_s, outcome = units(url, "session")
        session_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        trace_s, traced = units(url, "trace")
        trace_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        log_rate, session_rate = logs / log_s, LOGS / session_s
        print(json.dumps({
            "bench": "sessions",
            "logs": LOGS,
            "sessions": outcome.evaluated,
            "turns_per_session": TURNS,
            "per_log": {"seconds": round(log_s, 2), "logs_per_s": round(log_rate),
                        "peak_heap_mib": round(log_peak / 2**20, 1)},
            "sessions_path": {"seconds": round(session_s, 2), "logs_per_s": round(session_rate),
                              "sessions_per_s": round(outcome.evaluated / session_s),
                              "scores": outcome.scored,
                              "peak_heap_mib": round(session_peak / 2**20, 1)},
            "traces_path": {"seconds": round(trace_s, 2), "logs_per_s": round(LOGS / trace_s),
                            "traces": traced.evaluated, "scores": traced.scored,
                            "peak_heap_mib": round(trace_peak / 2**20, 1)},
            "sessions_over_per_log": round(session_rate / log_rate, 2),
            "traces_over_per_log": round(LOGS / trace_s / log_rate, 2),
            "targets": {"sessions_over_per_log": ">= 0.7"},
        }, indent=2))  # fmt: skip
    finally:
        drop_database(name)


if __name__ == "__main__":
    main()
