"""Deployments on a real `prefect server` with real process workers: schedules, UI-editable
parameters validated by the server, scheduled windows, and backfills fanned out to workers."""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.deployments.flow_runs import arun_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from tests.conftest import insert_logs, log
from tests.deploy.conftest import PrefectServer, Workers
from tests.fakes.llm import FakeLLM, Reply, always, verdict

pytestmark = pytest.mark.slow
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
DAY0 = NOW - timedelta(days=6)


@asynccontextmanager
async def client_for(server: PrefectServer) -> AsyncIterator[PrefectClient]:
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        async with get_client() as client:
            yield client


async def deployment_params(client: PrefectClient, name: str) -> dict[str, Any]:
    (deployment,) = await client.read_deployments(
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name]))
    )
    return dict(deployment.parameters)


async def wait_for(client: PrefectClient, flow_run_id: UUID, timeout: float = 300) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        run = await client.read_flow_run(flow_run_id)
        if run.state is not None and run.state.is_final():
            return run
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"flow run {run.name} still {run.state_name} after {timeout}s")
        await asyncio.sleep(1)


def scalar(engine: sa.Engine, sql: str, **params: object) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()


async def test_deployments_register_with_schedules_and_validated_parameters(
    deployed: PrefectServer,
) -> None:
    async with client_for(deployed) as client:
        deployments = {d.name: d for d in await client.read_deployments()}
        assert {"support-bot", "support-bot-backfill", "search-rag", "search-rag-backfill"} <= set(
            deployments
        )
        hourly = deployments["support-bot"]
        assert [s.schedule.cron for s in hourly.schedules] == ["7 * * * *"]  # type: ignore[union-attr]
        assert hourly.work_pool_name == "assay-process"
        assert deployments["support-bot-backfill"].schedules == []
        schema = deployments["support-bot-backfill"].parameter_openapi_schema or {}
        assert {"start", "end"} <= set(schema["required"])
        assert {"evaluators", "budget_usd", "chunk", "max_parallel"} <= set(schema["properties"])
        assert "EvalJob" in schema["definitions"]  # the job renders as a form

        job = dict(hourly.parameters["job"])
        job["sampling"] = {**job["sampling"], "rate": 5}  # out of bounds: 0 < rate <= 1
        with pytest.raises(Exception, match="(?i)validation|invalid|rate"):
            await client.create_flow_run_from_deployment(hourly.id, parameters={"job": job})


async def test_a_custom_scheduled_run_uses_its_parameters_and_its_scheduled_window(
    worker: Workers, engine: sa.Engine
) -> None:
    scheduled = NOW - timedelta(hours=2)
    inside = [
        log(f"in-{i:02d}", scheduled - timedelta(minutes=60 - i), environment="production",
            prompt_slug="faq", response=f"Our refund window is 14 days ({i}).")
        for i in range(30)
    ]  # fmt: skip
    after = [
        log(f"late-{i}", scheduled + timedelta(minutes=10 + i), environment="production",
            response="This arrived after the scheduled window.")
        for i in range(5)
    ]  # fmt: skip
    insert_logs(engine, inside + after)
    async with client_for(worker.server) as client:
        job = (await deployment_params(client, "support-bot"))["job"]
        job["sampling"] = {"rate": 1.0, "seed": "custom"}  # edited, as in the UI's custom run
        run = await arun_deployment(
            "evaluate_recent/support-bot",
            parameters={"job": job},
            scheduled_time=scheduled,
            timeout=0,
            as_subflow=False,
        )
        run = await wait_for(client, run.id)
        assert run.state.is_completed(), worker.log.read_text()[-3000:]
        artifacts = await client.read_artifacts()
    record = scalar(
        engine, "SELECT row_to_json(r) FROM assay.eval_runs r WHERE flow_run_id = :id", id=run.id
    )
    assert datetime.fromisoformat(record["window_end"]) == scheduled - timedelta(minutes=5)
    assert record["details"]["sampling"]["rule"]["rate"] == 1.0
    judged = scalar(
        engine, "SELECT count(DISTINCT log_id) FROM assay.scores WHERE evaluator = 'toxicity'"
    )
    assert judged == 30  # every log in the window, none after it
    assert scalar(engine, "SELECT count(*) FROM assay.scores WHERE log_id LIKE 'late-%'") == 0
    mine = {a.key: a for a in artifacts if a.flow_run_id == run.id}
    assert {"support-bot-scheduled-evaluators", "support-bot-scheduled-summary"} <= set(mine)
    table = mine["support-bot-scheduled-evaluators"].data
    rows = json.loads(table) if isinstance(table, str) else table
    toxicity = next(r for r in rows if r["evaluator"] == "toxicity")
    assert toxicity["n"] == 30 and toxicity["pass_rate"].endswith("%")
    summary = str(mine["support-bot-scheduled-summary"].data)
    assert "**Window:**" in summary and "## Open breaches" in summary


def backfill_job(base: dict[str, Any], fake: FakeLLM) -> dict[str, Any]:
    return {
        **base,
        "evaluators": [
            {"name": "pii"},
            {"name": "faithfulness", "model": "openai/judge", "api_base": fake.api_base},
        ],
        "sampling": {"rate": 1.0, "seed": "backfill"},
        "budget": {"prices": {"openai/judge": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 2}}},
        "limits": {"default": {"concurrency": 2, "retries": 1, "timeout_s": 10}},
        "alerts": {"rules": []},
        "quality": {"expect_traffic": False},
    }


def past_logs(per_day: int) -> list[dict[str, object]]:
    return [
        log(f"b{day}-{i:02d}", DAY0 + timedelta(days=day, minutes=20 * i),
            environment="production", prompt=f"question {day}-{i}",
            context=json.dumps(["Refunds take 14 days."]), response=f"Refunds take 14 days ({i}).")
        for day in range(3)
        for i in range(per_day)
    ]  # fmt: skip


async def start_backfill(client: PrefectClient, job: dict[str, Any]) -> UUID:
    """Start a backfill of `job` as if it were the deployed job file: its evaluators are the
    form's choices (what `assay deploy` sets), then the parent fans out chunks."""
    from prefect.client.schemas.actions import DeploymentUpdate

    from flows.backfill import form_schema
    from tasks.config import parse_job

    (deployment,) = await client.read_deployments(
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["support-bot-backfill"]))
    )
    # The shared server's other tests still start backfills of the deployed job's evaluators.
    deployed = dict(deployment.parameters)["job"]["evaluators"]
    both = {e["name"]: e for e in [*deployed, *job["evaluators"]]}
    schema = form_schema(
        deployment.parameter_openapi_schema or {},
        parse_job({**job, "evaluators": list(both.values())}),
    )
    await client.update_deployment(deployment.id, DeploymentUpdate(parameter_openapi_schema=schema))
    run = await arun_deployment(
        "backfill/support-bot-backfill",
        parameters={
            "job": job,
            "start": DAY0.isoformat(),
            "end": (DAY0 + timedelta(days=3)).isoformat(),
            "evaluators": ["faithfulness"],
            "chunk": "1d",
            "max_parallel": 2,
        },
        timeout=0,
        as_subflow=False,
    )
    return run.id


async def test_backfill_runs_one_child_per_chunk_and_a_second_adds_nothing(
    worker: Workers, engine: sa.Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.script("judge", always(Reply(content=verdict(0.9, True))))
    insert_logs(engine, past_logs(per_day=8))
    async with client_for(worker.server) as client:
        job = backfill_job(
            (await deployment_params(client, "support-bot-backfill"))["job"], fake_llm
        )
        parent = await wait_for(client, await start_backfill(client, job))
        assert parent.state.is_completed(), worker.log.read_text()[-3000:]
        children = [
            r for r in await client.read_flow_runs() if r.parent_task_run_id is not None
            and r.deployment_id == parent.deployment_id
        ]  # fmt: skip
        assert len(children) == 3 and all(c.state.is_completed() for c in children)
        scores = scalar(engine, "SELECT count(*) FROM assay.scores")
        evaluators = scalar(engine, "SELECT array_agg(DISTINCT evaluator) FROM assay.scores")
        assert (scores, evaluators) == (24, ["faithfulness"])
        assert scalar(engine, "SELECT count(*) FROM assay.watermarks") == 0
        calls = len(fake_llm.requests)

        again = await wait_for(client, await start_backfill(client, job))
        assert again.state.is_completed()
    assert scalar(engine, "SELECT count(*) FROM assay.scores") == 24
    assert len(fake_llm.requests) == calls


async def test_killing_the_worker_mid_backfill_then_rerunning_completes_without_duplicates(
    worker: Workers, engine: sa.Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.script("judge", always(Reply(content=verdict(0.9, True), delay=0.4)))
    insert_logs(engine, past_logs(per_day=24))
    async with client_for(worker.server) as client:
        job = backfill_job(
            (await deployment_params(client, "support-bot-backfill"))["job"], fake_llm
        )
        await start_backfill(client, job)
        for _ in range(240):
            if scalar(engine, "SELECT count(*) FROM assay.scores") >= 8:
                break
            await asyncio.sleep(0.5)
        worker.kill(worker.running[0])  # the worker and its flow-run processes, mid-chunk
        partial = scalar(engine, "SELECT count(*) FROM assay.scores")
        assert 8 <= partial < 72
        worker.start()
        rerun = await wait_for(client, await start_backfill(client, job))
        assert rerun.state.is_completed(), worker.log.read_text()[-3000:]
    total, distinct = (
        scalar(engine, "SELECT count(*) FROM assay.scores"),
        scalar(engine, "SELECT count(DISTINCT log_id) FROM assay.scores"),
    )
    assert (total, distinct) == (72, 72)
    abandoned = scalar(
        engine,
        "SELECT count(*) FROM assay.eval_runs WHERE kind = 'backfill' AND error LIKE 'abandoned%'",
    )
    assert abandoned >= 1  # the killed runs are marked, not left 'running'


async def test_a_deployed_nightly_check_runs_on_a_worker_and_fails_when_its_gate_does(
    worker: Workers, engine: sa.Engine
) -> None:
    from tasks.datasets.store import add_items, create_dataset
    from tasks.demo.golden import hand_written

    create_dataset(engine, "support-golden")
    add_items(engine, "support-golden", hand_written())
    async with client_for(worker.server) as client:
        params = (await deployment_params(client, "support-golden-nightly"))["request"]
        assert params["target_prompt"] == "prompt:deployments/prompts/support-grounded.yaml"
        assert params["fail_on_gate"] is True
        run = await arun_deployment(
            "evaluate_dataset/support-golden-nightly", timeout=0, as_subflow=False
        )
        run = await wait_for(client, run.id)
        assert run.state.is_completed(), worker.log.read_text()[-3000:]
        # The same check against a prompt without the passages: its gate fails, so does the run.
        strict = {**params, "target_prompt": "prompt:deployments/prompts/support-bare.yaml"}
        failed = await arun_deployment(
            "evaluate_dataset/support-golden-nightly", parameters={"request": strict}, timeout=0,
            as_subflow=False,
        )  # fmt: skip
        failed = await wait_for(client, failed.id)
        assert failed.state.is_failed()
        assert "gate failed (contains_expected pass_rate < 0.8" in (failed.state.message or "")
        artifacts = {a.key for a in await client.read_artifacts() if a.flow_run_id == run.id}
    experiments = scalar(engine, "SELECT json_agg(e ORDER BY created_at) FROM assay.experiments e")
    assert [e["gate_passed"] for e in experiments] == [True, False]
    assert experiments[0]["name"] == "support-golden-nightly (scheduled)"
    assert f"experiment-{experiments[0]['experiment_id']}" in artifacts


async def test_deploy_check_reports_ui_edits_field_by_field_and_run_from_server_uses_them(
    deployed: PrefectServer, engine: sa.Engine, assay_env: str
) -> None:
    import subprocess
    import sys

    from prefect.client.schemas.actions import DeploymentUpdate

    from tests.deploy.conftest import PROJECT

    def assay(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flows.cli", *args], cwd=PROJECT, capture_output=True,
            text=True, timeout=300, env=deployed.env(ASSAY_DATABASE_URL=assay_env),
        )  # fmt: skip

    clean = assay("deploy", "--check")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    async with client_for(deployed) as client:
        (hourly,) = [d for d in await client.read_deployments() if d.name == "support-bot"]
        original = dict(hourly.parameters)
        edited_job = {**original["job"], "sampling": {**original["job"]["sampling"], "rate": 1.0}}
        # An edit made in the UI: the deployment's parameters change on the server only.
        await client.update_deployment(
            hourly.id, DeploymentUpdate(parameters={**original, "job": edited_job})
        )
        try:
            drifted = assay("deploy", "--check", "--format", "json")
            assert drifted.returncode == 3, drifted.stdout + drifted.stderr
            drift = json.loads(drifted.stdout)["drift"]
            assert {
                (d["deployment"], d["field"], d["in_files"], d["on_server"]) for d in drift
            } == {("support-bot", "sampling.rate", 0.2, 1.0)}
            insert_logs(engine, [log(f"fs-{i}", NOW - timedelta(hours=2, minutes=i),
                                     environment="production") for i in range(10)])  # fmt: skip
            ran = assay("run", "support-bot", "--from-server", "--format", "json")
            assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
            assert json.loads(ran.stdout)["details"]["sampling"]["rule"]["rate"] == 1.0
        finally:
            await client.update_deployment(hourly.id, DeploymentUpdate(parameters=original))
