"""`assay doctor` as users run it: the installed CLI, one line per dependency, exit 0 or 1."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.slack import FakeSlack

pytestmark = pytest.mark.slow
JOB = """deployment: doctor-check
source: {table: assay.llm_logs}
evaluators:
  - {name: refusal}
  - {name: toxicity, model: openai/judge, api_base: "http://127.0.0.1:9/v1"}
budget: {prices: {openai/judge: {input_usd_per_mtok: 1, output_usd_per_mtok: 2}}}
"""


def doctor(
    db_url: str, job: Path, slack: FakeSlack, token: str
) -> tuple[int, dict[str, dict[str, str]]]:
    env = {**os.environ, "ASSAY_DATABASE_URL": db_url, "ASSAY_SLACK_BOT_TOKEN": token,
           "ASSAY_SLACK_BASE_URL": slack.api_base}  # fmt: skip
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "assay"), "doctor", "--config", str(job), "--format", "json"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    checks = {c["name"]: c for c in json.loads(done.stdout)}
    return done.returncode, checks


def test_doctor_passes_a_healthy_setup_and_names_what_to_fix(
    assay_env: str, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    job = tmp_path / "doctor-check.yaml"
    job.write_text(JOB)
    fake_slack.valid_token = "xoxb-good"

    code, checks = doctor(assay_env, job, fake_slack, "xoxb-good")

    assert code == 0, checks
    assert checks["scores database"]["status"] == "ok"
    assert checks["installed stack"]["status"] == "ok"
    assert checks["warehouse (doctor-check)"]["status"] == "ok"
    assert checks["judge prices (doctor-check)"]["status"] == "ok"
    assert checks["slack"]["status"] == "ok" and "Acme" in checks["slack"]["detail"]
    # The tests connect as a superuser: doctor warns that the warehouse user could write.
    assert checks["warehouse role (doctor-check)"]["status"] == "warn"
    assert checks["prefect api"]["status"] == "warn"  # no server configured here

    job.write_text(JOB.replace("assay.llm_logs}", "assay.llm_logs, columns: {topic: subject}}"))
    code, checks = doctor(assay_env, job, fake_slack, "xoxb-revoked")

    assert code == 1
    assert checks["slack"]["status"] == "fail" and "invalid_auth" in checks["slack"]["detail"]
    warehouse = checks["warehouse (doctor-check)"]
    assert warehouse["status"] == "fail" and "subject" in warehouse["detail"]
    assert "xoxb-revoked" not in json.dumps(checks)

    # A table that is not there: said as such, with what to do (not "0 columns mapped").
    job.write_text(JOB.replace("assay.llm_logs}", "app.chat_logz}"))
    code, checks = doctor(assay_env, job, fake_slack, "xoxb-good")
    assert code == 1
    missing = checks["warehouse (doctor-check)"]
    assert missing["status"] == "fail" and "no table app.chat_logz" in missing["detail"]
    assert "create it, or fix source.table" in missing["fix"]
