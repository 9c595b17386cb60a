"""`assay run` killed (SIGKILL, with its temporary Prefect server) while judging whole sessions,
after some chunks of sessions were written: the rerun evaluates every remaining session once,
none twice and none missing, and the spend ledger equals the stored scores' cost."""

import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tasks.sessions import CHUNK
from tests.conftest import insert_logs, log
from tests.fakes.llm import FakeLLM, Reply, always, verdict
from tests.hostile.test_kill import BASE, start_run

pytestmark = pytest.mark.slow
SESSIONS = CHUNK + 100


def config(api_base: str) -> str:
    return f"""deployment: killed
source: {{initial_lookback: 1d}}
evaluators:
  - {{name: refusal}}
  - {{name: turn_count}}
  - {{name: conversation_resolved, model: openai/judge, api_base: "{api_base}"}}
sessions: {{idle: 5m}}
sampling: {{rate: 1.0}}
budget:
  max_usd_per_day: 100
  prices: {{openai/judge: {{input_usd_per_mtok: 1, output_usd_per_mtok: 2}}}}
limits: {{default: {{concurrency: 8, retries: 0}}}}
alerts: {{summary: never}}
"""


def test_a_run_killed_while_judging_sessions_leaves_no_duplicate_and_no_missing_unit(
    engine: sa.Engine, assay_env: str, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    fake_llm.latency = 0.1
    fake_llm.script("judge", always(Reply(content=verdict(0.9, True, "resolved"))))
    insert_logs(engine, [
        log(f"s{i:03d}-{turn}", BASE + timedelta(seconds=i * 5 + turn), session_id=f"s{i:03d}",
            customer_id="c1")
        for i in range(SESSIONS) for turn in range(2)
    ])  # fmt: skip
    config_file = tmp_path / "killed.yaml"
    config_file.write_text(config(fake_llm.api_base))
    home = tmp_path / "prefect"
    home.mkdir()
    first = start_run(config_file, assay_env, home)

    def written() -> int:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(
                "SELECT count(*) FROM assay.unit_evaluations")).scalar_one())  # fmt: skip

    deadline = time.monotonic() + 240
    while written() < CHUNK and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.poll() is None, (first.stdout.read() if first.stdout else b"").decode()[-3000:]
    os.killpg(first.pid, signal.SIGKILL)  # mid-way through the second chunk of sessions
    first.wait()
    assert CHUNK <= written() < SESSIONS

    second = start_run(config_file, assay_env, home)
    output, _ = second.communicate(timeout=400)
    assert second.returncode == 0, output.decode()[-3000:]
    with engine.connect() as conn:
        per_evaluator = dict(conn.execute(sa.text(
            "SELECT evaluator, count(*) FROM assay.scores WHERE unit_kind = 'session' "
            "GROUP BY 1")).all())  # fmt: skip
        distinct = conn.execute(sa.text(
            "SELECT count(DISTINCT (log_id, evaluator)) FROM assay.scores "
            "WHERE unit_kind = 'session'")).scalar_one()  # fmt: skip
        spent = conn.execute(sa.text("SELECT sum(spent_usd) FROM assay.spend")).scalar_one()
        cost = conn.execute(sa.text("SELECT sum(cost_usd) FROM assay.scores")).scalar_one()
    assert per_evaluator == {"turn_count": SESSIONS, "conversation_resolved": SESSIONS}
    assert distinct == 2 * SESSIONS and written() == SESSIONS
    assert spent == pytest.approx(cost) and cost > 0
