"""A backfill started the way users start one: in the Prefect UI, in a real (headless Debian)
chromium, through the deployment's custom-run form."""

import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.browser import CHROMIUM_ARGS, chromium_path
from tests.conftest import insert_logs, log
from tests.deploy.conftest import Workers
from tests.deploy.test_deployments import client_for, wait_for

pytestmark = pytest.mark.slow
ARTIFACTS = Path(os.environ.get("ASSAY_TEST_ARTIFACTS", "test-artifacts"))
DAY0 = (datetime.now(UTC) - timedelta(days=4)).replace(hour=0, minute=0, second=0, microsecond=0)


async def set_json(page: Any, parameter: str, value: object) -> None:
    """Switch one parameter of the form to JSON input and type the value."""
    name = re.compile(
        rf"^{parameter}( \(Optional\))?$"
    )  # ours come first; the job object (last) has an Evaluators too
    prop = page.locator(
        ".schema-form-property",
        has=page.locator(".schema-form-property__label").get_by_text(name),
    )
    await prop.first.locator(".schema-form-property-menu button").first.click()
    await page.get_by_text("Use JSON input").click()
    await prop.first.locator("textarea.p-code-input__textarea").fill(json.dumps(value))


async def test_a_backfill_started_from_the_ui_form_completes(
    worker: Workers, engine: sa.Engine
) -> None:
    from playwright.async_api import async_playwright

    insert_logs(
        engine,
        [
            log(f"ui-{day}-{i}", DAY0 + timedelta(days=day, hours=i), environment="production",
                response=f"Refunds take 14 days ({day}-{i}).")
            for day in range(2)
            for i in range(6)
        ],
    )  # fmt: skip
    server = worker.server
    errors: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(f"{server.ui_url}/deployments", wait_until="networkidle")
        await page.get_by_text("support-bot-backfill").first.click()
        await page.get_by_role("button", name="Run", exact=True).click()
        await page.get_by_text("Custom run").first.click()
        await page.wait_for_selector(".schema-form-property__label")
        await page.wait_for_timeout(500)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "prefect-ui-backfill-form.png"))
        labels = page.locator(".schema-form-property__label")
        shown = [(await labels.nth(i).inner_text()).strip() for i in range(await labels.count())]
        first_screen = [
            text for i, text in enumerate(shown)
            if (box := await labels.nth(i).bounding_box()) is not None and box["y"] < 1000
        ]  # fmt: skip
        assert any(t.startswith("Start") for t in first_screen), first_screen
        assert any(t.startswith("End") for t in first_screen), first_screen
        top = [t.removesuffix(" (Optional)") for t in shown[:6]]
        assert top == ["Start", "End", "Evaluators", "Budget (USD)", "Chunk", "Chunks at once"]
        assert not any("parent_run_id" in t for t in shown)  # internal, never in the form
        assert await page.get_by_text("Length of each child run's window").count() >= 1
        await set_json(page, "Start", DAY0.isoformat())
        await set_json(page, "End", (DAY0 + timedelta(days=2)).isoformat())
        await set_json(page, "Evaluators", ["toxicity"])
        submitted_at = datetime.now(UTC) - timedelta(seconds=1)
        await page.get_by_role("button", name="Submit").click()
        await page.wait_for_url("**/deployments/deployment/*?tab=Runs", timeout=30_000)
        async with client_for(server) as client:
            (deployment,) = [
                d for d in await client.read_deployments() if d.name == "support-bot-backfill"
            ]
            form = deployment.parameter_openapi_schema["properties"]["evaluators"]
            choices = form["anyOf"][0]["items"]["enum"]
            assert "toxicity" in choices and "rubric:empathy" in choices
            started = [
                r
                for r in await client.read_flow_runs()
                if r.deployment_id == deployment.id
                and r.parent_task_run_id is None
                and r.created is not None
                and r.created >= submitted_at
            ]
            assert len(started) == 1  # the form created exactly one backfill run
            run = await wait_for(client, started[0].id)
        await page.goto(f"{server.ui_url}/runs/flow-run/{run.id}", wait_until="networkidle")
        await page.get_by_text("Completed").first.wait_for(timeout=30_000)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "prefect-ui-backfill.png"), full_page=True)
        await browser.close()
    assert run.state.is_completed(), worker.log.read_text()[-3000:]
    assert run.parameters["evaluators"] == ["toxicity"]
    with engine.connect() as conn:
        scored = conn.execute(
            sa.text(
                "SELECT array_agg(DISTINCT evaluator), count(DISTINCT log_id) FROM assay.scores"
            )
        ).one()
        chunks = conn.execute(
            sa.text("SELECT count(*) FROM assay.eval_runs WHERE parent_run_id IS NOT NULL")
        ).scalar_one()
    assert scored[0] == ["toxicity"] and scored[1] > 0
    assert chunks == 2  # one child run per day, picked up by the worker
    assert not errors, errors
