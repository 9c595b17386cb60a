"""The dashboard's sessions and traces section in headless chromium: units evaluated by the
hourly flow, what each cost the app and its judging, and each unit evaluator's pass rate;
session text never runs as markup."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from flows.evaluate import evaluate_recent
from tasks.config import parse_job
from tests.browser import browser_page
from tests.cli import assay
from tests.conftest import insert_logs, log

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]
HOUR = (datetime.now(UTC) - timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)
XSS = "<img src=x onerror='window.__pwned = 1'>"


async def test_the_dashboard_shows_cost_per_session_and_session_quality(
    engine: sa.Engine, assay_env: str, tmp_path: Path
) -> None:
    insert_logs(engine, [
        log(f"{s}-{t}", HOUR + timedelta(minutes=s * 3 + t), session_id=f"s{s}",
            customer_id="c1", cost_usd=0.01 * (t + 1), prompt=XSS if s == 3 else "Where is it?")
        for s in range(4) for t in range(s + 1)  # sessions of 1, 2, 3 and 4 turns
    ])  # fmt: skip
    job = parse_job({"deployment": "chat", "source": {"initial_lookback": "1d"},
                     "evaluators": [{"name": "refusal"},
                                    {"name": "turn_count", "params": {"max_turns": 2}}]})  # fmt: skip
    await evaluate_recent(job, until=HOUR + timedelta(hours=2))
    # The job file tells the dashboard where the sessions' text is (their source).
    jobs = tmp_path / "deployments" / "jobs"
    jobs.mkdir(parents=True)
    (jobs / "chat.yaml").write_text(json.dumps(job.model_dump(mode="json", by_alias=True)))
    out = tmp_path / "dashboard.html"
    made = assay("dashboard", "--deployment", "chat", "--since", "1d", "--out", str(out),
                 db_url=assay_env, cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr

    errors: list[str] = []
    async with browser_page(errors) as page:
        await page.goto(out.as_uri())
        await page.wait_for_selector("#units table", timeout=15_000)
        rows = await page.eval_on_selector_all(
            "#units table tr", "rows => rows.map(r => [...r.cells].map(c => c.innerText))"
        )
        failing = await page.eval_on_selector_all(
            "details.failing-unit", "boxes => boxes.map(b => b.dataset.unit)"
        )
        await page.click("details.failing-unit[data-unit='s3'] summary")
        transcript = await page.inner_text("details.failing-unit[data-unit='s3'] pre")
        pwned = await page.evaluate("() => window.__pwned === undefined")
    assert not errors, errors
    # 4 sessions of 1-4 turns, turn t costing $0.01 * (t + 1): $0.01, $0.03, $0.06, $0.10.
    assert rows[1][:4] == ["session", "4", "2.5", "$0.0500"]
    assert ["session", "turn_count", "4", "50.0%"] in rows
    assert sorted(failing) == ["s2", "s3"]  # 3 and 4 turns, over the limit of 2
    assert f"[turn 1] user: {XSS}" in transcript  # the conversation, its markup as text
    assert pwned
