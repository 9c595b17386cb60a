"""Pipeline benchmark: each stage against a raw baseline in the same run. Prints JSON.

    (a) pull + normalize vs a raw psycopg server-side cursor over the same rows   (target >= 0.5)
    (b) score writes (COPY to staging + ON CONFLICT) vs raw COPY of the same rows   (target >= 0.7)
    (c) peak RSS of a full `assay run` over every log                              (target < 1 GiB)
    (d) end-to-end free-evaluator throughput, logs/s
    (e) two backfill chunks at once in one process vs one chunk alone (database work runs off
        the event loop, so they overlap)                                         (target < 1.6)

Env: BENCH_LOGS (default 1,000,000), BENCH_ADMIN_URL (default the local Postgres).
"""

import json
import os
import resource
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import END, create_database, drop_database, fake_server, seed
from tasks.config import parse_job
from tasks.store.db import _engine, migrate
from tasks.store.persist import copy_scores
from tasks.store.rows import SCORE_COLUMNS, Cursor, ScoreRow
from tasks.warehouse.normalize import normalize_rows
from tasks.warehouse.source import fetch_page

LOGS = int(os.environ.get("BENCH_LOGS", "1000000"))


def raw_read(conninfo: str) -> float:
    start = time.perf_counter()
    rows = 0
    with psycopg.connect(conninfo) as conn, conn.cursor(name="raw") as cur:
        cur.itersize = 5000
        cur.execute("SELECT * FROM assay.llm_logs ORDER BY ts, id")
        for _ in cur:
            rows += 1
    assert rows == LOGS
    return time.perf_counter() - start


def our_pull(engine: sa.Engine) -> float:
    source = parse_job({"deployment": "bench", "source": {"page_size": 5000}}).source
    start, after, total = time.perf_counter(), None, 0
    with engine.connect() as conn:
        while True:
            rows = fetch_page(conn, source, after, END - timedelta(days=30), END)
            records, rejects = normalize_rows(rows, "canonical")
            total += len(records) + len(rejects)
            if len(rows) < source.page_size:
                break
            after = Cursor(ts=rows[-1]["ts"], log_id=rows[-1]["id"])
    assert total == LOGS, total
    return time.perf_counter() - start


def score_rows(n: int) -> list[ScoreRow]:
    run_id = str(uuid.uuid4())
    return [
        ScoreRow(
            deployment="bench", log_id=f"log-{i:08d}", evaluator="pii", evaluator_version="1",
            log_ts=END, status="ok", score=1.0, passed=True, label=None, reason=None,
            run_id=run_id, model="gpt-4o-mini", provider="openai", prompt_slug="order_status",
            topic="support", customer_id="c1", environment="production",
        )
        for i in range(n)
    ]  # fmt: skip


def raw_copy(conninfo: str, rows: list[ScoreRow], batch: int) -> float:
    with psycopg.connect(conninfo) as conn:
        conn.execute("CREATE TABLE bench_raw_scores (LIKE assay.scores INCLUDING ALL)")
        conn.commit()
        start = time.perf_counter()
        for i in range(0, len(rows), batch):
            with (
                conn.cursor() as cur,
                cur.copy(f"COPY bench_raw_scores ({', '.join(SCORE_COLUMNS)}) FROM STDIN") as copy,
            ):
                for row in rows[i : i + batch]:
                    copy.write_row(tuple(getattr(row, c) for c in SCORE_COLUMNS))
            conn.commit()
        return time.perf_counter() - start


def our_write(engine: sa.Engine, rows: list[ScoreRow], batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(rows), batch):
        with engine.begin() as conn:
            copy_scores(conn, rows[i : i + batch])
    return time.perf_counter() - start


def full_run(url: str, workdir: Path) -> dict[str, Any]:
    config = workdir / "bench.yaml"
    config.write_text(
        yaml.safe_dump({"deployment": "bench", "source": {"initial_lookback": "30d", "lag": "0s"}})
    )
    env = {**os.environ, "ASSAY_DATABASE_URL": url, "PREFECT_LOGGING_LEVEL": "WARNING"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", "from flows.cli import app; app()", "run", "bench",
         "--config", str(config), "--until", END.isoformat(), "--format", "json"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(done.stdout + done.stderr)
    summary = json.loads(done.stdout)
    run_seconds = (
        datetime.fromisoformat(summary["finished_at"])
        - datetime.fromisoformat(summary["started_at"])
    ).total_seconds()
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "logs": summary["pulled"],
        "scores_written": summary["scored"],
        "evaluators": len(summary["evaluators"]),
        "wall_seconds": round(wall, 1),
        "run_seconds": round(run_seconds, 1),
        "logs_per_second": round(summary["pulled"] / run_seconds),
        "peak_rss_mib": round(peak_kib / 1024),
    }


#: Seeded logs are half a second apart: a chunk of this length holds the same number of logs
#: wherever it falls (43,200 when BENCH_LOGS covers it).
CHUNK = timedelta(hours=6)


def backfill_seconds(url: str, workdir: Path, chunks: int, parallel: int, api_base: str) -> float:
    """One local `assay backfill` of the last `chunks` chunks, `parallel` at once; run seconds.
    Free evaluators on every log and a judge (the fake server, 200 ms) on a 2% sample: each
    chunk waits on the network as a real one does, which a blocked event loop would serialise."""
    config = workdir / "bench-chunks.yaml"
    judge = {"name": "toxicity", "model": "openai/judge", "api_base": f"{api_base}/v1"}
    config.write_text(
        yaml.safe_dump(
            {
                "deployment": f"bench-{chunks}-{parallel}",
                "source": {"initial_lookback": "30d"},
                "evaluators": [{"name": n} for n in ("pii", "refusal", "length")] + [judge],
                "sampling": {"rate": 0.02, "dedupe": False},
                "budget": {"prices": {"openai/judge": {"input_usd_per_mtok": 1,
                                                       "output_usd_per_mtok": 1}}},
                "limits": {"default": {"concurrency": 16, "retries": 0}},
            }
        )
    )  # fmt: skip
    env = {**os.environ, "ASSAY_DATABASE_URL": url, "PREFECT_LOGGING_LEVEL": "WARNING"}
    start = (END - chunks * CHUNK).isoformat()
    done = subprocess.run(
        [sys.executable, "-c", "from flows.cli import app; app()", "backfill",
         f"bench-{chunks}-{parallel}", "--config", str(config), "--start", start,
         "--end", END.isoformat(), "--chunk", f"{CHUNK.total_seconds():g}s",
         "--max-parallel", str(parallel),
         "--format", "json"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(done.stdout + done.stderr)
    summary = json.loads(done.stdout)
    return (
        datetime.fromisoformat(summary["finished_at"])
        - datetime.fromisoformat(summary["started_at"])
    ).total_seconds()


def two_chunks(url: str, workdir: Path) -> dict[str, Any]:
    with fake_server(0.2) as api_base:
        one = backfill_seconds(url, workdir, chunks=1, parallel=1, api_base=api_base)
        two = backfill_seconds(url, workdir, chunks=2, parallel=2, api_base=api_base)
    return {
        "logs_per_chunk": min(LOGS, int(CHUNK.total_seconds() / 0.5)),
        "one_chunk_seconds": round(one, 1),
        "two_chunks_at_once_seconds": round(two, 1),
        "ratio": round(two / one, 2),
        "target": "< 1.6 (2.0 = they wait on each other)",
    }


def main() -> None:
    name, conninfo, url = create_database()
    engine = _engine(url)
    try:
        migrate(engine)
        seed_s = seed(conninfo, LOGS)
        raw_s = raw_read(conninfo)
        pull_s = our_pull(engine)
        n_scores = min(LOGS, 500_000)
        rows = score_rows(n_scores)
        copy_s = raw_copy(conninfo, rows, 45_000)
        write_s = our_write(engine, rows, 45_000)
        del rows
        with engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE assay.scores"))
        workdir = Path(os.environ.get("TMPDIR", "/tmp"))
        run = full_run(url, workdir)
        chunks = two_chunks(url, workdir)
        result = {
            "logs": LOGS,
            "seed_seconds": round(seed_s, 1),
            "pull_normalize": {
                "raw_rows_per_s": round(LOGS / raw_s),
                "assay_rows_per_s": round(LOGS / pull_s),
                "ratio": round(raw_s / pull_s, 3),
                "target": ">= 0.5",
            },
            "score_write": {
                "rows": n_scores,
                "raw_copy_rows_per_s": round(n_scores / copy_s),
                "assay_rows_per_s": round(n_scores / write_s),
                "ratio": round(copy_s / write_s, 3),
                "target": ">= 0.7",
            },
            "full_run": run | {"peak_rss_target_mib": "< 1024"},
            "two_chunks_in_one_process": chunks,
        }
        print(json.dumps(result, indent=2))
    finally:
        engine.dispose()
        drop_database(name)


if __name__ == "__main__":
    main()
