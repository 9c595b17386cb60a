"""`assay estimate` warns before the data contract stops a run: it checks the window's first
logs against the real contract by default and says the run would stop, and why."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from tests.cli import assay
from tests.conftest import insert_logs, log

BASE = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)


def job_file(tmp_path: Path) -> Path:
    path = tmp_path / "est.yaml"
    path.write_text("deployment: est-app\nsource: {initial_lookback: 2d}\n"
                    "evaluators: [{name: pii}]\n")  # fmt: skip
    return path


def window() -> list[str]:
    return ["--start", (BASE - timedelta(hours=1)).isoformat(),
            "--end", (BASE + timedelta(hours=1)).isoformat()]  # fmt: skip


def test_estimate_says_the_contract_would_stop_the_run(
    engine: sa.Engine, assay_env: str, tmp_path: Path
) -> None:
    logs = [log(f"ok{i:03d}", BASE + timedelta(seconds=i)) for i in range(150)]
    logs += [log(f"bad{i:03d}", BASE + timedelta(seconds=i), status="thumbs-up") for i in range(50)]
    insert_logs(engine, logs)
    done = assay("estimate", "est-app", "--config", str(job_file(tmp_path)), *window(),
                 db_url=assay_env, columns=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())
    assert "the data contract would stop this run: 50 of the first 200 logs (25.0%) fail" in said
    assert "be_in_set(status)" in said and "fits the budget" not in said

    as_json = assay("estimate", "est-app", "--config", str(job_file(tmp_path)), *window(),
                    "--format", "json", db_url=assay_env)  # fmt: skip
    sample = json.loads(as_json.stdout)["contract_sample"]
    assert (sample["checked"], sample["invalid"]) == (200, 50)


def test_a_clean_window_fits(engine: sa.Engine, assay_env: str, tmp_path: Path) -> None:
    insert_logs(engine, [log(f"ok{i:03d}", BASE + timedelta(seconds=i)) for i in range(40)])
    done = assay("estimate", "est-app", "--config", str(job_file(tmp_path)), *window(),
                 db_url=assay_env, columns=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())
    assert "data contract on the first 40 logs: 0 (0.0%) would be quarantined" in said
    assert "fits the budget" in said
