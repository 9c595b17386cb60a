"""Backfill scale-out: N logs (default 100,000) judged at 200 ms latency through one process
worker, then through two, on one real `prefect server`.

Each worker runs at most two flow runs at once (the parent backfill takes one slot while it
waits), and a backfill runs two chunks at a time; so one worker judges one chunk at a time and
two workers judge two. Each chunk process holds up to 50 calls in flight; the judge model's
Prefect global concurrency limit is 100, and the fake server reports the peak it saw, which
must never pass it. The baseline is the ceiling one process can reach at this latency
(50 in flight / 0.2 s = 250 calls/s).
"""

import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# A Prefect home of its own: judge concurrency limits left on a shared home by other runs (the
# tests create `openai/judge` at 4) would cap this run's concurrency and skew the ratio.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="assay-bench-prefect-")

from bench.common import (  # noqa: E402
    ADMIN,
    END,
    create_database,
    drop_database,
    fake_server,
    seed,
    server_stats,
)

LOGS = int(os.environ.get("BENCH_BACKFILL_LOGS", "100000"))
LATENCY = 0.2
IN_FLIGHT = 50
GLOBAL_LIMIT = 100
CHUNKS = 8


def job(api_base: str) -> dict[str, Any]:
    return {
        "deployment": "bench-backfill",
        "source": {"table": "assay.llm_logs", "page_size": 2000},
        "evaluators": [{"name": "faithfulness", "model": "openai/judge", "api_base": api_base}],
        "sampling": {"rate": 1.0, "dedupe": False},  # the seed repeats four texts
        "budget": {
            "prices": {"openai/judge": {"input_usd_per_mtok": 0.1, "output_usd_per_mtok": 0.4}}
        },
        "limits": {
            "default": {
                "concurrency": IN_FLIGHT,
                "global_concurrency": GLOBAL_LIMIT,
                "timeout_s": 30,
                "retries": 2,
            }
        },
        "quality": {"expect_traffic": False},
    }


def prefect_file(api_base: str, directory: Path) -> Path:
    spec = {
        "name": "assay-bench",
        "deployments": [
            {
                "name": "bench-backfill",
                "entrypoint": "flows/backfill.py:backfill",
                "work_pool": {"name": "assay-process"},
                "pull": [
                    {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
                ],
                "parameters": {"job": job(api_base), "chunk": "1h", "max_parallel": 2},
            }
        ],
    }
    path = directory / "prefect.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


async def backfill_once(server: Any, start: Any, end: Any) -> float:
    from prefect.deployments.flow_runs import arun_deployment

    from tests.deploy.test_deployments import client_for, wait_for

    async with client_for(server) as client:
        began = time.perf_counter()
        run = await arun_deployment(
            "backfill/bench-backfill",
            # Eight chunks whatever the size, so two workers always have work to share.
            parameters={
                "start": start.isoformat(),
                "end": end.isoformat(),
                "chunk": f"{math.ceil((end - start).total_seconds() / CHUNKS)}s",
            },
            timeout=0,
            as_subflow=False,
        )
        done = await wait_for(client, run.id, timeout=3 * 3600)
        elapsed = time.perf_counter() - began
        if not done.state.is_completed():
            raise RuntimeError(f"backfill ended {done.state_name}")
    return elapsed


def reset(conninfo: str) -> None:
    with psycopg.connect(conninfo) as conn:
        conn.execute("TRUNCATE assay.scores, assay.eval_runs, assay.run_spend, assay.spend")
        conn.execute("TRUNCATE assay.score_rollups")


def scored(conninfo: str) -> int:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT log_id) FROM assay.scores").fetchone()
    assert row is not None and row[0] == row[1], "duplicate scores"
    return int(row[0])


def main() -> None:
    from tasks.store.db import _engine, migrate
    from tests.deploy.conftest import running_server, stop

    name, conninfo, url = create_database()
    results: dict[str, Any] = {"bench": "backfill", "logs": LOGS, "latency_s": LATENCY}
    try:
        migrate(_engine(url))
        seed(conninfo, LOGS)
        start, end = END - timedelta(seconds=LOGS * 0.5 + 1), END + timedelta(seconds=1)
        with (
            tempfile.TemporaryDirectory() as tmp,
            running_server(ADMIN, Path(tmp)) as server,
            fake_server(LATENCY) as base,
        ):
            deployed = prefect_file(f"{base}/v1", Path(tmp))
            done = subprocess.run(
                [sys.executable, "-m", "flows.cli", "deploy", "--prefect-file", str(deployed)],
                cwd=ROOT, env=server.env(), capture_output=True, text=True,
            )  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(done.stdout + done.stderr)
            for workers in (1, 2):
                reset(conninfo)
                procs = [
                    server.start_worker(url, Path(tmp) / f"worker{i}.log", limit=2)
                    for i in range(workers)
                ]
                try:
                    wall = asyncio.run(backfill_once(server, start, end))
                finally:
                    for proc in procs:
                        stop(proc)
                results[f"workers_{workers}"] = {
                    "wall_s": round(wall, 1),
                    "scores": scored(conninfo),
                    "logs_per_s": round(LOGS / wall, 1),
                }
            stats = server_stats(base)
        one, two = results["workers_1"], results["workers_2"]
        results.update(
            {
                "throughput_ratio_2_over_1": round(two["logs_per_s"] / one["logs_per_s"], 2),
                "one_process_ceiling_per_s": IN_FLIGHT / LATENCY,
                "global_limit": GLOBAL_LIMIT,
                "peak_in_flight_at_server": stats["peak_in_flight"],
                "limit_held": stats["peak_in_flight"] <= GLOBAL_LIMIT,
                "rate_limited": stats["rate_limited"],
            }
        )
        print(json.dumps(results, indent=2))
    finally:
        drop_database(name)


if __name__ == "__main__":
    main()
