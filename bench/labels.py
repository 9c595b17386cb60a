"""Agreement and corrected estimates over 1,000,000 judged scores and 10,000 human labels.

Ours: `assay agreement`'s computation (pairs from the analytics view, kappa and five other
metrics per judge version overall and per week, each with a 500-resample bootstrap) plus
`assay report`'s corrected pass rate (rollups, then prediction-powered inference over the
labels). Raw baseline, in the same run: one SQL query for the judge-by-person 2x2 table and
one for the judge's pass rate over every score, points only (no intervals). Target: ours
under 2 s.

Env: BENCH_LABEL_SCORES (default 1,000,000), BENCH_LABELS (default 10,000).
"""

import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from bench.common import END, migrated_database

SCORES = int(os.environ.get("BENCH_LABEL_SCORES", "1000000"))
LABELS = int(os.environ.get("BENCH_LABELS", "10000"))
DAYS = 28
SCORES_SQL = """
INSERT INTO assay.scores (deployment, log_id, evaluator, evaluator_version, log_ts, judge_model,
                          status, score, passed, cost_usd, weight, run_id, created_at)
SELECT 'bench', 'log-' || g, 'faithfulness', '1', ts, 'openai/gpt-4o-mini', 'ok',
       ((g::bigint * 7919) %% 1000) / 1000.0, ((g::bigint * 7919) %% 1000) >= 200, 0.0002, 1,
       '00000000-0000-0000-0000-000000000001', ts
FROM generate_series(1, %(n)s) AS g,
     LATERAL (SELECT %(end)s::timestamptz
                     - make_interval(secs => (g::bigint * %(span)s / %(n)s)::int) AS ts) t
"""
# People disagree with the judge on a tenth of what it passed and a third of what it failed.
LABELS_SQL = """
INSERT INTO assay.labels (deployment, log_id, criterion, passed, annotator, source)
SELECT 'bench', 'log-' || g, 'faithfulness',
       CASE WHEN ((g::bigint * 7919) %% 1000) >= 200 THEN (g / %(step)s) %% 10 <> 0
            ELSE (g / %(step)s) %% 3 = 0 END,
       'ann', 'import'
FROM generate_series(1, %(n)s, %(step)s) AS g
"""
RAW_TABLE = """
SELECT count(*) FILTER (WHERE s.passed AND l.passed), count(*) FILTER (WHERE s.passed AND NOT l.passed),
       count(*) FILTER (WHERE NOT s.passed AND l.passed), count(*) FILTER (WHERE NOT s.passed AND NOT l.passed)
FROM assay.labels l JOIN assay.scores s
  ON s.deployment = l.deployment AND s.log_id = l.log_id AND s.evaluator = l.criterion
WHERE l.deployment = 'bench' AND l.superseded_at IS NULL
"""
RAW_RATE = "SELECT avg(passed::int) FROM assay.scores WHERE deployment = 'bench' AND status = 'ok'"


def main() -> None:
    from tasks.analytics.report import build_report
    from tasks.labels.measure import agreements
    from tasks.store.rollups import refresh_score_rollups

    with migrated_database() as (conninfo, engine):
        with psycopg.connect(conninfo) as conn:
            conn.execute(SCORES_SQL, {"end": END, "n": SCORES, "span": DAYS * 86400})
            conn.execute(LABELS_SQL, {"n": SCORES, "step": max(1, SCORES // LABELS)})
            conn.execute("ANALYZE assay.scores")
            conn.execute("ANALYZE assay.labels")
        since, until = END - timedelta(days=DAYS), END + timedelta(hours=1)
        with engine.begin() as conn:
            refresh_score_rollups(conn, "bench", since, until)

        started = time.perf_counter()
        with psycopg.connect(conninfo) as conn:
            table = conn.execute(RAW_TABLE).fetchone()
            rate = conn.execute(RAW_RATE).fetchone()
        raw_s = time.perf_counter() - started

        started = time.perf_counter()
        with engine.connect() as conn:
            found = agreements(conn, "bench", "faithfulness", weekly=True)
        agreement_s = time.perf_counter() - started
        started = time.perf_counter()
        report = build_report(engine, "bench", since, until, evaluators=["faithfulness"])
        corrected_s = time.perf_counter() - started
        [row] = [r for r in report.evaluators if r.segment == "all"]
        overall = next(a for a in found if a.period == "overall")
        print(json.dumps({
            "bench": "labels",
            "scores": SCORES,
            "labels": overall.n,
            "agreement_rows": len(found),
            "raw_sql_s": round(raw_s, 3),
            "agreement_s": round(agreement_s, 3),
            "report_with_correction_s": round(corrected_s, 3),
            "ours_s": round(agreement_s + corrected_s, 3),
            "ours_over_raw": round((agreement_s + corrected_s) / raw_s, 2),
            "kappa": overall.kappa.model_dump(),
            "raw_table": list(table or ()),
            "judge_pass_rate": {"ours": row.pass_rate, "raw": float(rate[0]) if rate else None},
            "corrected": {"estimate": row.corrected_pass_rate, "low": row.corrected_low,
                          "high": row.corrected_high, "labels": row.human_labels},
            "targets": {"ours_s": "< 2"},
        }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
