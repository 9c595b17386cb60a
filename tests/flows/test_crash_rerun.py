"""A run killed with SIGKILL mid-way, then rerun, leaves exactly the scores of one clean run."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from tasks.demo import data as demo_data
from tasks.demo.seed import SUPPORT_COLUMNS, copy_rows
from tasks.store.db import _engine
from tests import pg

pytestmark = [pytest.mark.slow]
NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
LOGS = 1500
SCORE_SQL = (
    "SELECT log_id, evaluator, evaluator_version, status, score, passed, label, reason"
    " FROM assay.scores ORDER BY log_id, evaluator"
)


@pytest.fixture
def fresh_db(admin_url: str, template_db: str) -> Iterator[str]:
    name = pg.create_database(admin_url, template=template_db)
    url = pg.as_sqlalchemy_url(pg.with_database(admin_url, name))
    with _engine(url).begin() as conn:
        copy_rows(
            conn, "assay.llm_logs", SUPPORT_COLUMNS, demo_data.support_bot_logs(LOGS, NOW, hours=6)
        )
    yield url
    _engine(url).dispose()
    pg.drop_database(admin_url, name)


def run_cli(db_url: str, config: Path, api_url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ASSAY_DATABASE_URL": db_url, "PREFECT_API_URL": api_url}
    return subprocess.Popen(
        [sys.executable, "-c", "from flows.cli import app; app()", "run", "crash-test",
         "--config", str(config), "--until", NOW.isoformat()],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def count_scores(url: str) -> int:
    with _engine(url).connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM assay.scores")).scalar_one())


def test_sigkill_then_rerun_equals_a_clean_run(
    admin_url: str, template_db: str, fresh_db: str, prefect_api: str, tmp_path: Path
) -> None:
    config = tmp_path / "crash-test.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "deployment": "crash-test",
                "source": {"page_size": 20, "initial_lookback": "1d", "lag": "0s"},
                "evaluators": [
                    {"name": n} for n in ("pii", "secrets", "prompt_injection", "refusal")
                ],
            }
        )
    )
    # The clean run, in its own database with the same logs.
    clean_name = pg.create_database(admin_url, template=template_db)
    clean_url = pg.as_sqlalchemy_url(pg.with_database(admin_url, clean_name))
    try:
        with _engine(clean_url).begin() as conn:
            copy_rows(conn, "assay.llm_logs", SUPPORT_COLUMNS,
                      demo_data.support_bot_logs(LOGS, NOW, hours=6))  # fmt: skip
        assert run_cli(clean_url, config, prefect_api).wait(timeout=300) == 0
        with _engine(clean_url).connect() as conn:
            clean = conn.execute(sa.text(SCORE_SQL)).all()

        crashing = run_cli(fresh_db, config, prefect_api)
        deadline = time.monotonic() + 120
        while count_scores(fresh_db) == 0:
            assert crashing.poll() is None, crashing.stdout.read() if crashing.stdout else ""
            assert time.monotonic() < deadline, "the run never wrote a score"
            time.sleep(0.05)
        crashing.send_signal(signal.SIGKILL)
        crashing.wait(timeout=30)
        partial = count_scores(fresh_db)
        assert 0 < partial < len(clean), "the kill must land mid-run"

        rerun = run_cli(fresh_db, config, prefect_api)
        output = rerun.communicate(timeout=300)[0].decode()
        assert rerun.returncode == 0, output
        with _engine(fresh_db).connect() as conn:
            recovered = conn.execute(sa.text(SCORE_SQL)).all()
            runs = conn.execute(
                sa.text("SELECT status, error FROM assay.eval_runs ORDER BY started_at")
            ).all()
        assert recovered == clean
        assert [r.status for r in runs] == ["failed", "completed"]
        assert "abandoned" in runs[0].error
    finally:
        _engine(clean_url).dispose()
        pg.drop_database(admin_url, clean_name)
