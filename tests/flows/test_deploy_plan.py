"""The deployments `assay deploy` generates from deployments/jobs/ and deployments/deploy.yaml:
one job file is one hourly and one backfill deployment, with the job file's exact config, and
every deployment's parameters validate against its flow (the check the server and UI apply)."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.backfill import backfill
from flows.check import evaluate_dataset
from flows.deploy import (
    CHECK_ENTRYPOINT,
    JOBS_DIR,
    PROJECT_DIR,
    generated_prefect_yaml,
    prefect_spec,
    read_deploy_file,
)
from flows.evaluate import evaluate_recent
from tasks.config import EvalJob, load_job
from tasks.errors import ConfigError

FLOWS: dict[str, Any] = {
    "flows/evaluate.py:evaluate_recent": evaluate_recent,
    "flows/backfill.py:backfill": backfill,
    CHECK_ENTRYPOINT: evaluate_dataset,
}
JOB_FLOWS = {"flows/evaluate.py:evaluate_recent", "flows/backfill.py:backfill"}
# A backfill's range is chosen per run (UI form or `assay backfill --submit`).
RUN_TIME = {"start": "2026-11-01T00:00:00Z", "end": "2026-11-03T00:00:00Z"}


def deployments() -> list[dict[str, Any]]:
    return yaml.safe_load(generated_prefect_yaml())["deployments"]


@pytest.mark.parametrize("deployment", deployments(), ids=lambda d: d["name"])
def test_parameters_validate_against_the_flow(deployment: dict[str, Any]) -> None:
    flow = FLOWS[deployment["entrypoint"]]
    params = dict(deployment["parameters"])
    if flow is backfill:
        params.update(RUN_TIME)
    validated = flow.validate_parameters(params)
    # A check's one parameter is its request (the job inside it); the others take the job.
    job = validated["request"].job if flow is evaluate_dataset else validated["job"]
    assert isinstance(job, EvalJob)
    if flow in (evaluate_recent, evaluate_dataset):
        assert deployment["schedules"][0]["cron"]  # hourly and nightly deployments are scheduled


def test_every_job_file_has_an_hourly_and_a_backfill_deployment() -> None:
    by_job: dict[str, set[str]] = {}
    for d in deployments():
        if d["entrypoint"] in JOB_FLOWS:
            by_job.setdefault(d["parameters"]["job"]["deployment"], set()).add(d["entrypoint"])
    files = {path.stem for path in JOBS_DIR.glob("*.yaml")}
    assert set(by_job) == files and len(files) >= 3  # agent-otel included
    assert all(entrypoints == JOB_FLOWS for entrypoints in by_job.values())


def test_the_scheduled_job_is_the_job_file_exactly() -> None:
    checks = read_deploy_file().checks
    for d in deployments():
        if d["entrypoint"] == CHECK_ENTRYPOINT:  # a scheduled check runs its check config
            in_file = load_job(PROJECT_DIR / checks[d["name"]].config)
            deployed = EvalJob.model_validate(d["parameters"]["request"]["job"])
        else:
            in_file = load_job(JOBS_DIR / f"{d['parameters']['job']['deployment']}.yaml")
            deployed = EvalJob.model_validate(d["parameters"]["job"])
        assert deployed == in_file, d["name"]  # what `assay estimate NAME` sees is what runs


def test_deploy_settings_for_a_job_that_does_not_exist_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "deploy.yaml"
    bad.write_text("deployments:\n  suport-bot: {}\n")
    jobs = [load_job(path) for path in sorted(JOBS_DIR.glob("*.yaml"))]
    with pytest.raises(ConfigError, match="suport-bot"):
        prefect_spec(jobs, read_deploy_file(bad))


def test_an_out_of_range_parameter_is_rejected_with_its_path() -> None:
    from prefect.exceptions import ParameterTypeError

    params = dict(deployments()[0]["parameters"])
    params["job"] = {**params["job"], "sampling": {"rate": 1.5}}
    with pytest.raises(ParameterTypeError, match="rate"):
        evaluate_recent.validate_parameters(params)


def test_only_keeps_the_named_jobs_and_checks_and_refuses_an_unknown_name() -> None:
    from flows.deploy import only_these

    spec = yaml.safe_load(generated_prefect_yaml())
    kept = only_these(spec, ["search-rag", "support-golden-nightly"])
    assert sorted(d["name"] for d in kept["deployments"]) == [
        "search-rag", "search-rag-backfill", "support-golden-nightly",
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="did you mean 'search-rag'"):
        only_these(spec, ["serch-rag"])


def test_deploy_only_an_unknown_name_is_a_usage_error_before_any_server_is_asked(
    tmp_path: Path,
) -> None:
    from tests.cli import assay

    done = assay("deploy", "--only", "serch-rag", db_url="postgresql://127.0.0.1:1/none",
                 env={"PREFECT_API_URL": "http://127.0.0.1:1/api"})  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "did you mean 'search-rag'" in done.stderr and "Traceback" not in done.stderr


def test_a_job_whose_source_table_is_missing_is_refused_before_anything_is_registered(
    assay_env: str,
) -> None:
    """search-rag reads demo_raw.openai_chat_logs, which this database does not have (the demo
    creates it): refused with the reason, exit 2, and the Prefect API never asked."""
    from tests.cli import assay

    done = assay("deploy", "--only", "search-rag", db_url=assay_env,
                 env={"PREFECT_API_URL": "http://127.0.0.1:1/api"})  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    said = " ".join(done.stderr.split())
    assert "search-rag: no table demo_raw.openai_chat_logs" in said
    assert "create it, or fix source.table" in said and "nothing was deployed" in said
    assert "Traceback" not in done.stderr
