"""The product's first promise: an hourly deployment's schedule fires on a real server.

The server's own scheduler must create the run (nobody calls `run_deployment`), and a real worker
must complete it with the scheduled window. Checked on both server backends, because prefect
3.8.8's scheduler failed silently with SQLAlchemy 2.1 (every minute, only in the server log).
"""

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.client.schemas.objects import FlowRun

from tests.conftest import insert_logs, log
from tests.deploy.conftest import POOL, PROJECT, PrefectServer, Workers, running_server
from tests.deploy.test_deployments import client_for

pytestmark = pytest.mark.slow


def every_minute_deployment(path: Path) -> Path:
    """A prefect.yaml with one evaluation deployment due at the next minute boundary (cron is
    what users write; hourly differs only in the minute field)."""
    job = {
        "deployment": "scheduler-smoke",
        "source": {"table": "assay.llm_logs", "lag": "5m", "initial_lookback": "2h"},
        "evaluators": [
            {"name": "pii"},
            {"name": "refusal"},
            {"name": "length"},
            {"name": "turn_count"},
        ],
        "sessions": {"idle": "10m"},
        "alerts": {"summary": "never"},
    }
    spec = {
        "name": "assay-scheduler-test",
        "prefect-version": "3.8.8",
        "deployments": [
            {
                "name": "scheduler-smoke",
                "entrypoint": "flows/evaluate.py:evaluate_recent",
                "schedules": [{"cron": "* * * * *", "timezone": "UTC", "active": True}],
                "concurrency_limit": 1,
                "work_pool": {"name": POOL, "work_queue_name": "default"},
                "pull": [
                    {"prefect.deployments.steps.set_working_directory": {"directory": str(PROJECT)}}
                ],
                "parameters": {"job": job, "kind": "scheduled"},
            }
        ],
    }
    path.write_text(yaml.safe_dump(spec))
    return path


async def first_finished_run(server: PrefectServer, timeout: float) -> FlowRun:
    deadline = asyncio.get_running_loop().time() + timeout
    async with client_for(server) as client:
        (deployment,) = await client.read_deployments(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["scheduler-smoke"]))
        )
        while True:
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(
                    name=DeploymentFilterName(any_=[deployment.name])
                )
            )
            done = [r for r in runs if r.state is not None and r.state.is_final()]
            if done:
                return done[0]
            if asyncio.get_running_loop().time() > deadline:
                states = [(r.name, r.state_name) for r in runs]
                raise AssertionError(f"no scheduled run finished within {timeout:.0f}s: {states}")
            await asyncio.sleep(2)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_the_servers_scheduler_creates_the_run_and_a_worker_completes_it(
    backend: str, admin_url: str, engine: sa.Engine, assay_env: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    insert_logs(
        engine,
        [
            log(
                f"s-{i:02d}",
                now - timedelta(minutes=90 - i * 2),
                session_id=f"chat-{i % 3}",
                customer_id="c1",
            )
            for i in range(30)
        ],
    )
    home = tmp_path / "home"
    home.mkdir()
    with running_server(admin_url, home, backend=backend, scheduler=True) as server:
        prefect_file = every_minute_deployment(tmp_path / "prefect.yaml")
        deployed = subprocess.run(
            [sys.executable, "-m", "flows.cli", "deploy", "--prefect-file", str(prefect_file)],
            cwd=PROJECT, env=server.env(), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        workers = Workers(server, assay_env, tmp_path)
        workers.start()
        try:
            run = await first_finished_run(server, timeout=240)
        finally:
            workers.stop_all()
        server_log = (server.home / "server.log").read_text()
    assert "Can't evaluate bulk DML" not in server_log
    # Created by the server's scheduler, not by hand: auto-scheduled, with its idempotency key.
    assert run.auto_scheduled, run
    assert (run.idempotency_key or "").startswith("scheduled "), run.idempotency_key
    assert run.state is not None and run.state.is_completed(), workers.log.read_text()[-3000:]
    with engine.connect() as conn:
        record = conn.execute(
            sa.text(
                "SELECT status, window_end, pulled FROM assay.eval_runs WHERE flow_run_id = :id"
            ),
            {"id": run.id},
        ).one()
    assert record.status == "completed"
    assert run.expected_start_time is not None
    assert record.window_end == run.expected_start_time - timedelta(minutes=5)
    assert record.pulled >= 1
    with engine.connect() as conn:
        # Three conversations, idle for over 10 minutes: scored as units by the scheduled run.
        sessions = conn.execute(sa.text(
            "SELECT count(*) FROM assay.unit_evaluations WHERE deployment = 'scheduler-smoke' "
            "AND status = 'evaluated'")).scalar_one()  # fmt: skip
    assert sessions == 3
