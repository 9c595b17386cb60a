"""deployments/prefect.yaml: every deployment's parameters validate against its flow's
parameter model (the same check the Prefect server and UI apply)."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.backfill import backfill
from flows.evaluate import evaluate_recent
from tasks.config import EvalJob

PREFECT_YAML = Path(__file__).resolve().parents[2] / "deployments" / "prefect.yaml"
FLOWS: dict[str, Any] = {
    "flows/evaluate.py:evaluate_recent": evaluate_recent,
    "flows/backfill.py:backfill": backfill,
}
# A backfill's range is chosen per run (UI form or `assay backfill --submit`).
RUN_TIME = {"start": "2026-11-01T00:00:00Z", "end": "2026-11-03T00:00:00Z"}


def deployments() -> list[dict[str, Any]]:
    return yaml.safe_load(PREFECT_YAML.read_text())["deployments"]


@pytest.mark.parametrize("deployment", deployments(), ids=lambda d: d["name"])
def test_parameters_validate_against_the_flow(deployment: dict[str, Any]) -> None:
    flow = FLOWS[deployment["entrypoint"]]
    params = dict(deployment["parameters"])
    if flow is backfill:
        params.update(RUN_TIME)
    validated = flow.validate_parameters(params)
    assert isinstance(validated["job"], EvalJob)
    if flow is evaluate_recent:
        assert deployment["schedules"][0]["cron"]  # hourly deployments are scheduled


def test_every_job_has_an_hourly_and_a_backfill_deployment() -> None:
    by_job: dict[str, set[str]] = {}
    for d in deployments():
        by_job.setdefault(d["parameters"]["job"]["deployment"], set()).add(d["entrypoint"])
    assert len(by_job) >= 2
    assert all(entrypoints == set(FLOWS) for entrypoints in by_job.values())


def test_an_out_of_range_parameter_is_rejected_with_its_path() -> None:
    from prefect.exceptions import ParameterTypeError

    params = dict(deployments()[0]["parameters"])
    params["job"] = {**params["job"], "sampling": {"rate": 1.5}}
    with pytest.raises(ParameterTypeError, match="rate"):
        evaluate_recent.validate_parameters(params)
