"""Leases, not leaks: `assay run` killed (SIGKILL, with its temporary Prefect server) in the
middle of judging. The next run gets the judge slots back within the lease, releases the dead
run's reservations, scores every log exactly once, and the ledger equals the scores' cost."""

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import insert_logs, log
from tests.fakes.llm import FakeLLM, Reply, always, verdict

pytestmark = pytest.mark.slow
BASE = (datetime.now(UTC) - timedelta(hours=5)).replace(microsecond=0)
LOGS = 160
#: The longest the next run may wait for the dead run's slots (lease 60 s, then released).
MAX_WAIT_S = 90


def config(api_base: str) -> str:
    return f"""deployment: killed
source: {{initial_lookback: 1d, page_size: 40}}
evaluators:
  - {{name: refusal}}
  - {{name: toxicity, model: openai/judge, api_base: "{api_base}"}}
sampling: {{dedupe: false}}
budget:
  max_usd_per_day: 100
  prices: {{openai/judge: {{input_usd_per_mtok: 1, output_usd_per_mtok: 2}}}}
limits: {{default: {{concurrency: 8, retries: 0}}}}
alerts: {{summary: never}}
"""


def start_run(config_file: Path, db_url: str, home: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ASSAY_DATABASE_URL": db_url, "PREFECT_HOME": str(home)}
    for name in ("PREFECT_API_URL", "ASSAY_SLACK_BOT_TOKEN", "ASSAY_WAREHOUSE_URL"):
        env.pop(name, None)
    assay = Path(sys.executable).parent / "assay"
    return subprocess.Popen(
        [str(assay), "run", "killed", "--config", str(config_file),
         "--until", (BASE + timedelta(hours=1)).isoformat()],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def judging_run(
    engine: sa.Engine, db_url: str, fake: FakeLLM, tmp_path: Path, calls: int
) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """`assay run` over LOGS logs with a slow judge, returned once `calls` calls were made."""
    fake.latency = 0.4
    fake.script("judge", always(Reply(content=verdict(0.9, True, "fine"))))
    insert_logs(engine, [log(f"k{i:03d}", BASE + timedelta(seconds=i * 10)) for i in range(LOGS)])
    config_file = tmp_path / "killed.yaml"
    config_file.write_text(config(fake.api_base))
    home = tmp_path / "prefect"
    home.mkdir()
    run = start_run(config_file, db_url, home)
    deadline = time.monotonic() + 180
    while len(fake.requests) < calls and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.poll() is None, (run.stdout.read() if run.stdout else b"").decode()[-3000:]
    return run, config_file, home


def test_a_killed_local_run_leaks_no_slots_no_reservations_and_no_scores(
    engine: sa.Engine, assay_env: str, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    first, config_file, home = judging_run(engine, assay_env, fake_llm, tmp_path, calls=60)
    os.killpg(first.pid, signal.SIGKILL)  # the CLI and its temporary server, mid-judging
    first.wait()
    killed_at = time.monotonic()
    seen_before = len(fake_llm.requests)
    with engine.connect() as conn:
        reserved = conn.execute(sa.text("SELECT sum(reserved_usd) FROM assay.spend")).scalar_one()
        pending = conn.execute(sa.text("SELECT sum(pending_usd) FROM assay.spend")).scalar_one()
    assert reserved and reserved > 0  # the kill left reservations behind
    # ... and calls that returned and were settled as spend, but whose page never committed:
    # the next run takes them back out, so the ledger is again the stored scores' cost.
    assert pending and pending > 0

    second = start_run(config_file, assay_env, home)
    output, _ = second.communicate(timeout=400)
    assert second.returncode == 0, output.decode()[-3000:]

    resumed = [seen.at for seen in fake_llm.requests[seen_before:]]
    assert resumed, "the second run judged nothing"
    waited = min(resumed) - killed_at
    print(f"next run's first judge call came {waited:.1f} s after the kill")
    assert waited < MAX_WAIT_S
    with engine.connect() as conn:
        counts = dict(
            conn.execute(sa.text("SELECT evaluator, count(*) FROM assay.scores GROUP BY 1")).all()
        )
        distinct = conn.execute(
            sa.text("SELECT count(DISTINCT (log_id, evaluator)) FROM assay.scores")
        ).scalar_one()
        spend = conn.execute(
            sa.text("SELECT sum(spent_usd), sum(reserved_usd), sum(pending_usd) FROM assay.spend")
        ).one()
        cost = conn.execute(sa.text("SELECT sum(cost_usd) FROM assay.scores")).scalar_one()
        statuses = dict(
            conn.execute(sa.text("SELECT status, count(*) FROM assay.eval_runs GROUP BY 1")).all()
        )
    assert counts == {"refusal": LOGS, "toxicity": LOGS} and distinct == 2 * LOGS
    assert spend[1] == pytest.approx(0, abs=1e-12)  # the dead run's reservations were released
    assert spend[0] == pytest.approx(cost)  # the ledger is exactly the stored scores' cost
    assert spend[2] == pytest.approx(0, abs=1e-12)  # nothing left pending
    assert statuses == {"failed": 1, "completed": 1}  # the killed run is marked abandoned


def test_sigterm_ends_a_run_within_seconds_marked_failed_even_without_its_server(
    engine: sa.Engine, assay_env: str, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    run, _config, _home = judging_run(engine, assay_env, fake_llm, tmp_path, calls=20)

    os.killpg(run.pid, signal.SIGTERM)  # the CLI and its temporary server together
    told = time.monotonic()
    output, _ = run.communicate(timeout=120)
    took = time.monotonic() - told

    print(f"stopped {took:.1f} s after SIGTERM")
    assert run.returncode == 1, output.decode()[-2000:]
    assert took < 30
    with engine.connect() as conn:
        status, error = conn.execute(sa.text("SELECT status, error FROM assay.eval_runs")).one()
    assert status == "failed" and "stopped" in error
