"""`assay check` killed (SIGKILL, with its temporary Prefect server) in the middle of judging,
then run again: the same experiment, every item scored exactly once, nothing judged twice
that was stored, and the spend ledger equal to the scores' cost."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.cli import assay
from tests.fakes.llm import FakeLLM, Reply, always, verdict

pytestmark = pytest.mark.slow
ITEMS = 80


def start_check(args: list[str], db_url: str, home: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ASSAY_DATABASE_URL": db_url, "PREFECT_HOME": str(home)}
    for name in ("PREFECT_API_URL", "ASSAY_SLACK_BOT_TOKEN", "ASSAY_WAREHOUSE_URL"):
        env.pop(name, None)
    return subprocess.Popen([str(Path(sys.executable).parent / "assay"), "check", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip


def test_a_killed_check_reruns_to_the_same_rows(
    engine: sa.Engine, assay_env: str, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text("".join(
        json.dumps({"id": f"k{i:03d}", "input": f"question {i}", "expected": "yes"}) + "\n"
        for i in range(ITEMS)))  # fmt: skip
    assert (
        assay("dataset", "import", "kill", str(items), "--create", db_url=assay_env).returncode == 0
    )
    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text("".join(json.dumps({"item_id": f"k{i:03d}", "output": "yes"}) + "\n"
                               for i in range(ITEMS)))  # fmt: skip
    config = tmp_path / "kill.yaml"
    config.write_text(json.dumps({
        "deployment": "kill-bot", "source": {"page_size": 20},
        "evaluators": [{"name": "exact_match"},
                       {"name": "toxicity", "model": "openai/judge", "api_base": fake_llm.api_base}],
        "budget": {"max_usd_per_day": 100, "prices": {"openai/judge": {
            "input_usd_per_mtok": 1, "output_usd_per_mtok": 2}}},
        "limits": {"default": {"concurrency": 8, "retries": 0}},
    }))  # fmt: skip
    fake_llm.latency = 0.4
    fake_llm.script("judge", always(Reply(content=verdict(0.9, True, "fine"))))
    args = ["kill", "--config", str(config), "--outputs", str(outputs), "--format", "json"]
    home = tmp_path / "prefect"
    home.mkdir()
    first = start_check(args, assay_env, home)
    deadline = time.monotonic() + 180
    while len(fake_llm.requests) < 40 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.poll() is None, (first.stdout.read() if first.stdout else b"").decode()[-3000:]
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    with engine.connect() as conn:
        stored = conn.execute(sa.text(
            "SELECT count(DISTINCT log_id) FROM assay.scores WHERE evaluator = 'toxicity'"
        )).scalar_one()  # fmt: skip
    calls_before = len(fake_llm.requests)

    second = start_check(args, assay_env, home)
    output, _ = second.communicate(timeout=400)
    assert second.returncode == 0, output.decode()[-3000:]
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT count(*), count(DISTINCT (log_id, evaluator)), sum(cost_usd) "
            "FROM assay.scores WHERE deployment LIKE 'experiment-%'")).one()  # fmt: skip
        spend = conn.execute(
            sa.text("SELECT sum(spent_usd), sum(reserved_usd) FROM assay.spend")
        ).one()
        experiments = conn.execute(
            sa.text("SELECT count(*), min(status) FROM assay.experiments")
        ).one()
    assert rows[0] == rows[1] == 2 * ITEMS  # every item, each evaluator, once
    assert len(fake_llm.requests) - calls_before <= ITEMS - stored  # stored items not re-judged
    assert spend[0] == pytest.approx(rows[2]) and spend[1] == pytest.approx(0, abs=1e-12)
    assert tuple(experiments) == (1, "completed")  # the rerun is the same experiment
