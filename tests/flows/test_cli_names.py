"""Mistakes on the command line are exit 2 with what to type instead, before anything heavy
starts (no Prefect server, no traceback)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.cli import assay
from tests.conftest import insert_logs, log

pytestmark = pytest.mark.slow


def usage_error(done: object) -> str:
    import subprocess

    assert isinstance(done, subprocess.CompletedProcess)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "temporary server" not in done.stderr
    return " ".join(done.stderr.split())


def test_typos_in_names_get_did_you_mean(assay_env: str) -> None:
    for command in (["report", "suport-bot"], ["quarantine", "suport-bot"],
                    ["dashboard", "--deployment", "suport-bot"], ["run", "suport-bot"],
                    ["estimate", "suport-bot"]):  # fmt: skip
        assert "did you mean 'support-bot'" in usage_error(assay(*command, db_url=assay_env))
    message = usage_error(assay("report", "--evaluator", "faithfulnes", db_url=assay_env))
    assert "did you mean 'faithfulness'" in message
    message = usage_error(assay("report", "--by", "modle", db_url=assay_env))
    assert "did you mean 'model'" in message
    message = usage_error(assay("backfill", "support-bot", "--start", "2026-11-01",
                                "--end", "2026-11-02", "--evaluator", "toxicty", db_url=assay_env))  # fmt: skip
    assert "did you mean 'toxicity'" in message


def test_a_deployment_known_only_from_its_scores_is_accepted(
    engine: sa.Engine, assay_env: str, tmp_path: Path
) -> None:
    """Deployments configured elsewhere still have results here: the scores table counts."""
    config = tmp_path / "elsewhere.yaml"
    config.write_text("deployment: elsewhere\nevaluators: [{name: refusal}]\n")
    insert_logs(engine, [log("e1", datetime.now(UTC) - timedelta(hours=1))])
    assert assay("run", "elsewhere", "--config", str(config), db_url=assay_env).returncode == 0
    assert assay("report", "elsewhere", db_url=assay_env).returncode == 0


def test_dates_durations_and_urls_are_checked_first(assay_env: str) -> None:
    message = usage_error(assay("backfill", "support-bot", "--start", "yesterday",
                                "--end", "2026-11-02", db_url=assay_env))  # fmt: skip
    assert "ISO 8601" in message and "2026-11-22T10:00Z" in message
    message = usage_error(assay("backfill", "support-bot", "--start", "2026-11-03",
                                "--end", "2026-11-02", db_url=assay_env))  # fmt: skip
    assert "is not before" in message
    message = usage_error(assay("backfill", "support-bot", "--start", "2026-11-01",
                                "--end", "2026-11-02", "--chunk", "daily", db_url=assay_env))  # fmt: skip
    assert "30m, 1h, 1d" in message
    message = usage_error(assay("report", "--since", "last week", db_url=assay_env))
    assert "7d" in message or "24h" in message
    message = usage_error(assay("report", db_url="mysql://u:hunter2@db.example/x"))
    assert "ASSAY_DATABASE_URL" in message and "postgresql://" in message
    assert "hunter2" not in message
    warehouse = assay("estimate", "support-bot", db_url=assay_env,
                      env={"ASSAY_WAREHOUSE_URL": "sqlite:///x.db"})  # fmt: skip
    assert "ASSAY_WAREHOUSE_URL" in usage_error(warehouse)


def test_version(assay_env: str) -> None:
    done = assay("--version", db_url=assay_env)
    assert done.returncode == 0 and done.stdout.startswith("assay ")
