"""`assay report` over 100k and over 1M scores: the report reads hourly rollups, so its time
should grow with hours x segments, not with scores (target: 1M/100k time ratio < 2).

The raw baseline, in the same run, is the same numbers read straight from `assay.scores`
through the analytics view (exact percentiles over every score), whose time grows with scores.
Both sizes cover the same 7 days, 3 evaluators and the same segments.
"""

import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from bench.common import END, create_database, drop_database

SIZES = [int(n) for n in os.environ.get("BENCH_REPORT_SIZES", "100000,1000000").split(",")]
DAYS = 7
SCORES_SQL = """
INSERT INTO assay.scores (deployment, log_id, evaluator, evaluator_version, log_ts, judge_model,
                          status, score, passed, cost_usd, tokens, weight, run_id, model,
                          provider, prompt_slug, topic, customer_id, environment)
SELECT 'support-bot', 'log-' || g, e.name, '1', %(end)s::timestamptz
         - make_interval(secs => (g::bigint * %(span)s / %(n)s)::int),
       CASE WHEN e.paid THEN 'openai/gpt-4o-mini' END,
       CASE WHEN g %% 97 = 0 THEN 'error' ELSE 'ok' END,
       CASE WHEN g %% 97 = 0 THEN NULL ELSE ((g::bigint * 7919) %% 1000) / 1000.0 END,
       CASE WHEN g %% 97 = 0 THEN NULL ELSE ((g::bigint * 7919) %% 1000) >= 150 END,
       CASE WHEN e.paid THEN 0.0002 ELSE 0 END, 400, CASE WHEN e.paid THEN 5 ELSE 1 END,
       '00000000-0000-0000-0000-000000000001',
       (ARRAY['gpt-4o-mini', 'gpt-4o', 'claude-3-5-haiku', 'gemini-1.5-flash'])[1 + g %% 4],
       (ARRAY['openai', 'openai', 'anthropic', 'google'])[1 + g %% 4],
       (ARRAY['order_status', 'refund_policy', 'product_qa', 'account_help'])[1 + g %% 4],
       (ARRAY['shipping', 'billing', 'returns', 'devices', 'login'])[1 + g %% 5],
       'cust-' || (g %% 50), 'production'
FROM generate_series(1, %(per_evaluator)s) AS g,
     (VALUES ('faithfulness', true), ('pii', false), ('refusal', false)) AS e(name, paid)
"""
RAW_SQL = """
SELECT evaluator, value, sum(n), avg(pass_rate), avg(p50)
FROM assay_analytics.score_distribution
WHERE granularity = 'week' AND dim = :dim AND period >= :since - interval '7 days'
  AND deployment = 'support-bot'
GROUP BY evaluator, value
"""


def measure(n: int) -> dict[str, Any]:
    import sqlalchemy as sa

    from tasks.analytics.report import build_report
    from tasks.store.db import _engine, migrate
    from tasks.store.rollups import refresh_score_rollups

    name, conninfo, url = create_database()
    try:
        engine = _engine(url)
        migrate(engine)
        started = time.perf_counter()
        with psycopg.connect(conninfo) as conn:
            conn.execute(
                SCORES_SQL,
                {"end": END, "n": n // 3, "per_evaluator": n // 3, "span": DAYS * 86400},
            )
            conn.execute("ANALYZE assay.scores")
        load_s = time.perf_counter() - started
        since, until = END - timedelta(days=DAYS), END + timedelta(hours=1)
        started = time.perf_counter()
        with engine.begin() as conn:
            refresh_score_rollups(conn, "support-bot", since, until)
        refresh_s = time.perf_counter() - started
        with engine.connect() as conn:
            rollup_rows = conn.execute(sa.text("SELECT count(*) FROM assay.score_rollups")).scalar()
        timings: dict[str, dict[str, float]] = {}
        for by in ("all", "customer_id"):
            build_report(engine, "support-bot", since, until, by)  # warm
            started = time.perf_counter()
            report = build_report(engine, "support-bot", since, until, by)
            report_s = time.perf_counter() - started
            started = time.perf_counter()
            with engine.connect() as conn:
                raw = conn.execute(sa.text(RAW_SQL), {"dim": by, "since": since}).all()
            raw_s = time.perf_counter() - started
            assert report.evaluators and raw
            timings[by] = {"report_s": round(report_s, 4), "raw_view_s": round(raw_s, 3)}
        engine.dispose()
        return {
            "scores": n // 3 * 3,
            "load_s": round(load_s, 2),
            "rollup_refresh_s": round(refresh_s, 2),
            "rollup_rows": rollup_rows,
            "by": timings,
        }
    finally:
        drop_database(name)


def main() -> None:
    results = [measure(n) for n in SIZES]
    small, large = results[0], results[-1]
    ratios = {
        by: {
            "report_ratio": round(large["by"][by]["report_s"] / small["by"][by]["report_s"], 2),
            "raw_view_ratio": round(
                large["by"][by]["raw_view_s"] / small["by"][by]["raw_view_s"], 2
            ),
        }
        for by in small["by"]
    }
    print(
        json.dumps(
            {
                "bench": "report",
                "sizes": results,
                f"ratio_{large['scores']}_over_{small['scores']}": ratios,
                "target": "report ratio < 2",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
