"""Nothing secret in any output, nothing malformed in CI files: doctor, errors and tracebacks go
through `redact`; JUnit XML stays well-formed whatever an item id holds; a hostile name is a
usage error (exit 2) shown as text, never as terminal markup."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from tasks.config import ThresholdRule
from tasks.experiments.ci_reports import junit_xml
from tasks.experiments.gate import GateResult
from tasks.experiments.result import CheckResult
from tests.cli import assay

PASSWORD = "pr3fect-s3cret-pa55"


@pytest.mark.slow
def test_doctor_does_not_print_the_prefect_api_password(
    assay_env: str, prefect_api: str, tmp_path: Path
) -> None:
    url = urlsplit(prefect_api)
    with_password = url._replace(netloc=f"ops:{PASSWORD}@{url.netloc}").geturl()
    job = tmp_path / "d.yaml"
    job.write_text("deployment: d\nevaluators: [{name: refusal}]\n")
    done = assay("doctor", "--config", str(job), db_url=assay_env,
                 env={"PREFECT_API_URL": with_password})  # fmt: skip
    assert "prefect api" in done.stdout  # the check ran against the server
    assert PASSWORD not in done.stdout + done.stderr


@pytest.mark.parametrize("debug", [False, True])
def test_an_unexpected_error_is_one_redacted_line_or_a_redacted_traceback(debug: bool) -> None:
    secret_url = f"postgresql://writer:{PASSWORD}@db.internal/scores"
    program = (
        "from flows.cli.common import app\n"
        "@app.command()\n"
        "def boom() -> None:\n"
        f"    raise RuntimeError('cannot reach {secret_url}')\n"
        "app()\n"
    )
    env = {**os.environ, "ASSAY_DATABASE_URL": secret_url}
    args = [sys.executable, "-c", program, *(["--debug"] if debug else []), "boom"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1
    assert PASSWORD not in done.stderr and "RuntimeError" in done.stderr
    assert ("Traceback" in done.stderr) is debug
    if not debug:
        assert len(done.stderr.strip().splitlines()) == 1 and "--debug" in done.stderr


def test_junit_stays_well_formed_with_control_characters_in_ids_and_reasons() -> None:
    rule = ThresholdRule(evaluator="exact\x0bmatch", metric="pass_rate", op="<", value=0.9)
    result = CheckResult(
        experiment_id="e1", name="n", dataset="d\x1b[31m", dataset_digest="x", target="t",
        tier="all", items=2, evaluators=[], passed=False, cost_usd=0.0, run_id="r",
        gate=[GateResult(rule=rule, state="failed", n=2, value=0.5)],
        worst={"exact\x0bmatch": [("item\x0b1", 0.0, "reason with \x1b[2J and \x00")]},
    )  # fmt: skip
    root = ET.fromstring(junit_xml(result).encode())  # raises if not well-formed
    failure = root.find("testcase/failure")
    assert failure is not None and "\\x0b" in (failure.text or "")


def test_a_hostile_dataset_name_is_exit_2_shown_as_text(assay_env: str) -> None:
    done = assay("dataset", "create", "[bold]x\x1b[2J", db_url=assay_env)
    assert done.returncode == 2
    assert "[bold]x" in done.stderr and "\x1b[2J" not in done.stderr
    assert "use letters, digits" in done.stderr


def test_a_failed_run_is_one_line_with_its_run_id_and_no_prefect_lines(
    engine: sa.Engine, assay_env: str, tmp_path: Path
) -> None:
    """Prefect's and GX's log lines stay in the Prefect UI unless --verbose; the console gets
    one error line naming the run that failed."""
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE public.broken_logs (LIKE assay.llm_logs)"))
        conn.execute(sa.text(
            "INSERT INTO public.broken_logs (id, ts, prompt, response, status) SELECT 'b' || g,"
            " now() - interval '2 hours' + g * interval '1 second', 'hi', 'hello', 'weird'"
            " FROM generate_series(1, 30) g"
        ))  # fmt: skip
    job = tmp_path / "broken.yaml"
    job.write_text("deployment: broken\nsource: {table: public.broken_logs, initial_lookback: 1d}"
                   "\nevaluators: [{name: pii}]\n")  # fmt: skip
    done = assay("run", "broken", "--config", str(job), db_url=assay_env)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: data contract broken for broken")
    with engine.connect() as conn:
        run_id = conn.execute(sa.text("SELECT run_id::text FROM assay.eval_runs")).scalar_one()
    assert f"(run {run_id})" in lines[0]

    verbose = assay("--verbose", "run", "broken", "--config", str(job), db_url=assay_env)
    assert verbose.returncode == 1
    assert "Flow run" in verbose.stderr  # Prefect's own lines, when asked for
