"""The dashboard in headless chromium across deployments: it opens on the deployment with open
alerts, every deployment can be chosen without a script error, charts with nothing to draw say
so instead of drawing an empty axis, the time axis starts where the data does, and each
alert's examples come from its own segment."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from flows.evaluate import evaluate_recent
from tasks.config import parse_job
from tests.browser import browser_page
from tests.cli import assay
from tests.conftest import insert_logs, log

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]
HOUR = (datetime.now(UTC) - timedelta(hours=30)).replace(minute=0, second=0, microsecond=0)
REFUSED = "I am sorry, I cannot help with that."


def job(deployment: str, rules: list[dict[str, Any]]) -> Any:
    """Each deployment reads its own logs of the shared table (its `prompt_slug`)."""
    return parse_job({"deployment": deployment,
                      "source": {"initial_lookback": "3d", "filters": {"prompt_slug": deployment}},
                      "evaluators": [{"name": "refusal"}, {"name": "length", "params": {"min": 1}}],
                      "alerts": {"min_samples": 1, "rules": rules}})  # fmt: skip


async def test_switching_deployments_draws_every_one_without_errors(
    engine: sa.Engine, assay_env: str, tmp_path: Path
) -> None:
    # zeta-bot refuses a third of gpt-a's and gpt-b's answers: one open alert per model.
    insert_logs(engine, [
        log(f"z-{i}", HOUR + timedelta(minutes=10 * i), model=("gpt-a", "gpt-b", "gpt-c")[i % 3],
            prompt_slug="zeta-bot",
            response=REFUSED if i % 3 != 2 and i % 2 == 0 else "Your order ships today.")
        for i in range(60)
    ] + [
        log(f"a-{i}", HOUR + timedelta(minutes=10 * i), prompt_slug="alpha-bot", response="Fine.")
        for i in range(12)
    ])  # fmt: skip
    by_model = {"evaluator": "refusal", "metric": "pass_rate", "op": "<", "value": 0.9,
                "mode": "raw", "by": "model"}  # fmt: skip
    await evaluate_recent(job("zeta-bot", [by_model]), until=HOUR + timedelta(hours=11))
    await evaluate_recent(job("alpha-bot", []), until=HOUR + timedelta(hours=11))
    with engine.connect() as conn:
        segments = conn.execute(sa.text(
            "SELECT array_agg(segment ORDER BY segment) FROM assay.alerts WHERE status = 'open'"
        )).scalar_one()  # fmt: skip
    assert segments == ["model=gpt-a", "model=gpt-b"]

    out = tmp_path / "dashboard.html"
    made = assay("dashboard", "--since", "14d", "--out", str(out), db_url=assay_env, cwd=tmp_path)
    assert made.returncode == 0, made.stdout + made.stderr
    errors: list[str] = []
    async with browser_page(errors) as page:
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        await page.goto(out.as_uri())
        await page.wait_for_selector("#chart-requests .main-svg")
        opened_on = await page.input_value("#f-deployment")
        examples = await page.evaluate("""() => [...document.querySelectorAll('#alerts tr')].slice(1)
            .map(tr => [tr.children[2].textContent, [...tr.querySelectorAll('a')].map(a => a.title)])""")
        axis = await page.evaluate(
            "() => document.getElementById('chart-requests')._fullLayout.xaxis.range[0]"
        )
        # The kappa chart has no labels to draw: a sentence, not an axis of the year 2000.
        agreement = await page.inner_text("#chart-agreement")
        agreement_svg = await page.query_selector("#chart-agreement .main-svg")
        seen = []
        for name in await page.eval_on_selector_all(
            "#f-deployment option", "os => os.map(o => o.value)"
        ):
            await page.select_option("#f-deployment", name)
            await page.wait_for_timeout(300)  # plotly's deferred redraws run
            seen.append((name, await page.inner_text("#alerts")))
        await page.wait_for_timeout(500)
    assert not errors, errors
    assert opened_on == "zeta-bot"  # the one with open alerts, though it sorts last
    assert [name for name, _ in seen] == ["alpha-bot", "zeta-bot"]
    assert "No open alerts" in dict(seen)["alpha-bot"]
    assert "no human labels" in agreement and agreement_svg is None
    # Each alert links failing logs of its own model only.
    shown = {segment: ids for segment, ids in examples}
    model_of = {f"z-{i}": ("gpt-a", "gpt-b", "gpt-c")[i % 3] for i in range(60)}
    assert set(shown) == {"model=gpt-a", "model=gpt-b"}
    for segment, ids in shown.items():
        assert ids and all(f"model={model_of[i]}" == segment for i in ids), (segment, ids)
    # Daily buckets over 14 days: the axis starts half a day before the first day with data,
    # not 14 days back.
    start = datetime.fromisoformat(str(axis)).replace(tzinfo=UTC)
    first_day = HOUR.replace(hour=0)
    assert start == first_day - timedelta(hours=12)
