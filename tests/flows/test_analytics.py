"""Analytics: views checked against raw rows, rollups behind `assay report`, and the dashboard
rendered in headless chromium."""

import csv
import io
import json
import math
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from flows.cli import app
from flows.evaluate import evaluate_recent
from tasks.analytics.report import ScoreStats, build_report
from tasks.config import parse_job
from tests.browser import CHROMIUM_ARGS, chromium_path
from tests.conftest import insert_logs, log
from tests.fakes.llm import FakeLLM, Reply, verdict

pytestmark = pytest.mark.usefixtures("prefect_api")


def midweek_morning() -> datetime:
    """A Wednesday 10:00 UTC at least two days ago: three hours from it stay in one day and
    one week, so the per-week view row holds every score."""
    day = (datetime.now(UTC) - timedelta(days=2)).replace(
        hour=10, minute=0, second=0, microsecond=0
    )
    return day - timedelta(days=(day.weekday() - 2) % 7)


BASE = midweek_morning()
UNTIL = BASE + timedelta(hours=3)
ARTIFACTS = Path(os.environ.get("ASSAY_TEST_ARTIFACTS", "test-artifacts")).resolve()


def grade_by_content(_n: int, body: dict[str, Any]) -> Reply:
    """The judge fails the small topic's answers and passes the big one's, with spread scores."""
    text = json.dumps(body)
    digit = int(text[text.index("case ") + 5]) if "case " in text else 0
    if "weak answer" in text:
        return Reply(content=verdict(0.1 + digit / 100, False, "unsupported"))
    return Reply(content=verdict(0.8 + digit / 50, True, "grounded"))


def seeded_logs() -> list[dict[str, object]]:
    rows = []
    for i in range(1000):
        small = i % 10 == 0  # 100 logs in topic "billing", 900 in "shipping"
        rows.append(
            log(
                f"a-{i:04d}",
                BASE + timedelta(seconds=9 * i),
                topic="billing" if small else "shipping",
                model="gpt-a" if i % 2 else "gpt-b",
                prompt=f"question {i} case {i % 10}",
                response=("a weak answer" if small else "a strong answer") + f" {i}",
                context=json.dumps(["Refunds take 14 days."]),
                latency_ms=50 + (i * 37) % 3000,
                input_tokens=100 + i % 50,
                output_tokens=20 + i % 7,
                status="error" if i % 50 == 0 else "ok",
                feedback="positive" if i % 3 == 0 else ("negative" if i % 3 == 1 else None),
                user_id=f"u{i % 40}",
            )
        )
    return rows


def analytics_job(fake: FakeLLM) -> Any:
    return parse_job(
        {
            "deployment": "rag-app",
            "source": {"initial_lookback": "2d", "page_size": 2000},
            "evaluators": [
                {"name": "refusal"},
                {"name": "pii"},
                {"name": "faithfulness", "model": "openai/judge", "api_base": fake.api_base},
            ],
            "sampling": {"rate": 0.1, "stratify_by": ["topic"], "min_per_stratum": 50},
            "limits": {"default": {"retries": 1, "backoff_s": 0.05, "concurrency": 8}},
            "budget": {
                "prices": {"openai/judge": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 2}}
            },
        }
    )


def weighted_quantile(pairs: list[tuple[float, float]], p: float) -> float:
    """Smallest score whose cumulative weight reaches p of the total (independent of SQL)."""
    pairs = sorted(pairs)
    total = sum(w for _, w in pairs)
    running = 0.0
    for score, weight in pairs:
        running += weight
        if running >= p * total * (1 - 1e-12):
            return score
    return pairs[-1][0]


@pytest.fixture
async def scored(engine: sa.Engine, fake_llm: FakeLLM) -> sa.Engine:
    fake_llm.script("judge", grade_by_content)
    insert_logs(engine, seeded_logs())
    await evaluate_recent(analytics_job(fake_llm), until=UNTIL)
    return engine


def raw_scores(engine: sa.Engine, evaluator: str) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT status, score, passed, weight, topic, log_ts, cost_usd "
                    "FROM assay.scores WHERE evaluator = :e"
                ),
                {"e": evaluator},
            )
        )


def view(engine: sa.Engine, sql: str, **params: object) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params))


async def test_views_match_raw_scores_and_weights_correct_a_stratified_sample(
    scored: sa.Engine,
) -> None:
    rows = raw_scores(scored, "faithfulness")
    ok = [r for r in rows if r.status == "ok"]
    pairs = [(r.score, r.weight) for r in ok]
    weighted_pass = sum(r.weight for r in ok if r.passed) / sum(r.weight for r in ok)
    unweighted_pass = sum(1 for r in ok if r.passed) / len(ok)
    weighted_mean = sum(s * w for s, w in pairs) / sum(w for _, w in pairs)
    # 900 shipping logs pass, 100 billing logs fail: the population pass rate is 0.9. The
    # sample over-represents billing (50 of 100 vs 90 of 900), so the raw rate is far lower.
    # (A few sampled billing logs are provider errors, which the judge skips.)
    assert 130 <= len(ok) <= 140
    assert weighted_pass == pytest.approx(0.9, abs=0.015)
    assert unweighted_pass < 0.7

    day = view(
        scored,
        "SELECT sum(n) AS n, sum(ok) AS ok FROM assay_analytics.score_distribution_hourly "
        "WHERE evaluator = 'faithfulness' AND dim = 'all'",
    )[0]
    assert (day.n, day.ok) == (len(rows), len(ok))
    whole = view(
        scored,
        "SELECT * FROM assay_analytics.score_distribution WHERE granularity = 'week' "
        "AND evaluator = 'faithfulness' AND dim = 'all'",
    )
    (v,) = whole
    assert v.pass_rate == pytest.approx(weighted_pass)
    assert v.unweighted_pass_rate == pytest.approx(unweighted_pass)
    assert v.weighted_mean == pytest.approx(weighted_mean)
    for name, p in (("p5", 0.05), ("p25", 0.25), ("p50", 0.5), ("p75", 0.75), ("p95", 0.95)):
        assert getattr(v, name) == pytest.approx(weighted_quantile(pairs, p)), name
    assert v.population_estimate == pytest.approx(1000, rel=0.02)

    by_topic = {
        r.value: r
        for r in view(
            scored,
            "SELECT value, pass_rate, n FROM assay_analytics.score_distribution "
            "WHERE granularity = 'hour' AND evaluator = 'faithfulness' AND dim = 'topic' "
            "AND period = :hour",
            hour=BASE,
        )
    }
    assert by_topic["billing"].pass_rate == 0 and by_topic["shipping"].pass_rate == 1

    spend = view(
        scored,
        "SELECT sum(cost_usd) AS cost FROM assay_analytics.eval_spend_daily "
        "WHERE evaluator = 'faithfulness'",
    )[0]
    assert spend.cost == pytest.approx(sum(r.cost_usd for r in rows))

    # The report reads rollups, and agrees with the views and the raw rows.
    report = build_report(scored, "rag-app", BASE, UNTIL, evaluators=["faithfulness"])
    (stats,) = report.evaluators
    assert stats.n == len(rows) and stats.ok == len(ok)
    assert stats.pass_rate == pytest.approx(weighted_pass)
    assert stats.pass_rate_low < weighted_pass < stats.pass_rate_high
    assert stats.mean == pytest.approx(weighted_mean)
    for name, p in (("p5", 0.05), ("p50", 0.5), ("p95", 0.95)):
        exact = weighted_quantile(pairs, p)
        assert exact - 0.01 - 1e-9 <= getattr(stats, name) <= exact + 1e-9, name
    assert stats.cost_usd == pytest.approx(sum(r.cost_usd for r in rows))


async def test_usage_covers_every_log(scored: sa.Engine) -> None:
    logs = seeded_logs()
    (usage,) = view(
        scored,
        "SELECT * FROM assay_analytics.usage WHERE granularity = 'week' AND dim = 'all'",
    )
    report = build_report(scored, "rag-app", BASE, UNTIL)
    (u,) = report.usage
    assert u.requests == 1000
    assert u.error_rate == pytest.approx(sum(r["status"] == "error" for r in logs) / 1000)
    tokens = [int(r["input_tokens"]) + int(r["output_tokens"]) for r in logs]  # type: ignore[call-overload]
    assert u.tokens_per_query == pytest.approx(sum(tokens) / 1000)
    rated = [r for r in logs if r["feedback"] is not None]
    positive = sum(r["feedback"] == "positive" for r in rated) / len(rated)
    assert u.feedback_positive_rate == pytest.approx(positive)
    latencies = sorted(int(r["latency_ms"]) for r in logs)  # type: ignore[call-overload]
    exact_p95 = latencies[math.ceil(0.95 * len(latencies)) - 1]
    assert u.latency_p95_ms == pytest.approx(exact_p95, rel=0.075)
    # A user asking the same prompt again counts as a repeat; these prompts are all distinct.
    assert u.repeat_query_rate == 0
    assert usage.requests == 1000 and usage.error_rate == pytest.approx(u.error_rate)
    assert usage.latency_p95_ms == pytest.approx(u.latency_p95_ms)  # view and report agree


REPORT_FIELDS = list(ScoreStats.model_fields)


async def test_report_json_and_csv_have_stable_fields(scored: sa.Engine) -> None:
    runner = CliRunner()
    since, until = BASE.isoformat(), UNTIL.isoformat()
    result = runner.invoke(
        app, ["report", "rag-app", "--since", since, "--until", until, "--by", "topic",
              "--format", "json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {
        "deployment", "since", "until", "by", "confidence", "evaluators", "usage", "spend", "warnings",
    }  # fmt: skip
    row = next(r for r in data["evaluators"] if r["evaluator"] == "faithfulness")
    assert list(row) == [
        "deployment", "evaluator", "segment", "bucket", "versions", "n", "ok", "errors",
        "skipped", "judged", "failed", "population", "pass_rate", "pass_rate_low",
        "pass_rate_high", "mean", "mean_low", "mean_high", "p5", "p25", "p50", "p75", "p95",
        "error_rate", "cost_usd", "unknown_cost", "previous_pass_rate", "pass_rate_change",
        "pass_rate_change_low", "pass_rate_change_high", "corrected_pass_rate", "corrected_low",
        "corrected_high", "human_labels",
    ]  # fmt: skip
    assert {r["segment"] for r in data["evaluators"]} == {"billing", "shipping"}
    csv_out = runner.invoke(
        app, ["report", "rag-app", "--since", since, "--until", until, "--format", "csv"]
    )
    assert csv_out.exit_code == 0, csv_out.output
    table = list(csv.DictReader(io.StringIO(csv_out.stdout)))
    assert list(table[0]) == REPORT_FIELDS
    assert {r["evaluator"] for r in table} == {"refusal", "pii", "faithfulness"}
    table_out = runner.invoke(
        app, ["report", "rag-app", "--since", since, "--until", until, "--by", "model"]
    )
    assert table_out.exit_code == 0, table_out.output
    assert "faithfulness" in table_out.output and "gpt-a" in table_out.output
    bad = runner.invoke(app, ["report", "--by", "colour"])
    assert bad.exit_code == 2 and "is not one of" in bad.output


XSS = 'I cannot help with that. <script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


async def test_dashboard_renders_offline_in_headless_chromium(
    scored: sa.Engine, fake_llm: FakeLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default view: one deployment, one small chart per evaluator (each plot at least
    250 px tall, no two series sharing a colour), and a drill-down from an alert and from a
    failing example to the log, whose hostile text stays text."""
    from playwright.async_api import async_playwright

    job = analytics_job(fake_llm)
    alerting = job.model_copy(update={"alerts": job.alerts.model_copy(update={
        "min_samples": 1,
        "rules": [parse_job({"deployment": "x", "alerts": {"rules": [
            {"evaluator": "refusal", "metric": "pass_rate", "op": "<", "value": 0.99,
             "mode": "raw"}]}}).alerts.rules[0]],
    })})  # fmt: skip
    insert_logs(scored, [log("xss-1", UNTIL + timedelta(minutes=1), response=XSS, topic="billing")])
    await evaluate_recent(alerting, until=UNTIL + timedelta(minutes=10))
    monkeypatch.chdir(tmp_path)  # the drill-down reads log text through the job file
    (tmp_path / "deployments/jobs").mkdir(parents=True)
    (tmp_path / "deployments/jobs/rag-app.yaml").write_text(job.model_dump_json())
    out = tmp_path / "dashboard.html"
    result = CliRunner().invoke(
        app, ["dashboard", "--out", str(out), "--since", (BASE - timedelta(hours=1)).isoformat()]
    )
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "<script src=" not in html  # nothing to fetch: plotly.js is inlined
    assert "<script>window.__pwned" not in html  # the log's markup is data, escaped in JSON
    errors: list[str] = []
    outside: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))

        async def no_network(route: Any) -> None:
            outside.append(route.request.url)
            await route.abort()

        await page.route("http*://**", no_network)
        await page.goto(out.as_uri())
        for chart in ("requests", "cost", "latency", "safety", "segments"):
            await page.wait_for_selector(f"#chart-{chart} .main-svg", timeout=15_000)
        # The job has no budget cap, so the ledger holds no spend: said, not an empty axis.
        spend_note = await page.inner_text("#chart-spend p.no-data")
        await page.wait_for_selector("#chart-quality-0 .main-svg", timeout=15_000)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "dashboard.png"))  # the first screen
        charts = await page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')]
            .map(gd => ({id: gd.id, title: (gd.layout.title || {}).text, height: gd._fullLayout._size.h,
                         colors: gd._fullData.filter(t => t.visible === true && t.showlegend !== false
                                                      && (!t.fill || t.fill === 'none'))
                           .flatMap(t => Array.isArray(t.marker && t.marker.color) ? t.marker.color
                                         : [(t.line && t.line.color) || (t.marker && t.marker.color)]),
                         xtitle: ((gd._fullLayout.xaxis || {}).title || {}).text,
                         ytitle: ((gd._fullLayout.yaxis || {}).title || {}).text}))""")
        subtitle = await page.inner_text("#subtitle")
        await page.click("#alerts a")
        await page.wait_for_selector("#log-detail h3")
        alert_log = await page.inner_text("#log-detail")
        await page.goto(out.as_uri())
        await page.wait_for_selector("#failing a")
        await page.get_by_role("link", name="xss-1").last.click()
        await page.wait_for_selector("#log-detail h3")
        detail = await page.inner_text("#log-detail")
        pwned = await page.evaluate("() => window.__pwned === undefined")
        await page.screenshot(path=str(ARTIFACTS / "dashboard-log-detail.png"), full_page=True)
        await browser.close()
    assert not errors, errors
    assert not outside, outside
    assert "budget cap" in spend_note
    quality = [c for c in charts if c["id"].startswith("chart-quality-")]
    assert sorted(c["title"] for c in quality) == ["faithfulness", "pii", "refusal"]
    for chart in charts:
        assert chart["height"] >= 250, chart
        assert len(chart["colors"]) == len(set(chart["colors"])), chart
        assert chart["xtitle"] and chart["ytitle"], chart  # every axis says what it measures
    assert "daily buckets" in subtitle or "hourly buckets" in subtitle
    assert "<script>window.__pwned = 1</script>" in detail  # shown as text ...
    assert pwned  # ... and never run
    assert "Every score of this log" in detail and "refusal" in detail
    assert "Every score of this log" in alert_log


async def test_day_over_day_change_and_repeat_queries(engine: sa.Engine) -> None:
    """Day 1 leaks no PII; day 2 leaks it in 1 of 4 responses. Half of day 2's prompts repeat
    a prompt the same user sent earlier that day."""
    day1, day2 = BASE - timedelta(days=1), BASE
    rows = [
        log(f"d1-{i}", day1 + timedelta(minutes=i), user_id=f"u{i}", prompt=f"question {i}",
            response="Your order ships tomorrow.")
        for i in range(40)
    ] + [
        log(f"d2-{i}", day2 + timedelta(minutes=i), user_id=f"v{i % 20}",
            prompt=f"question {i % 20}",
            response="Write to jane.doe@example.com" if i % 4 == 0 else "Your order ships.")
        for i in range(40)
    ]  # fmt: skip
    insert_logs(engine, rows)
    job = parse_job(
        {
            "deployment": "shop",
            "source": {"initial_lookback": "3d"},
            "evaluators": [{"name": "pii"}],
        }
    )
    await evaluate_recent(job, until=day2 + timedelta(hours=1))
    (change,) = view(
        engine,
        "SELECT pass_rate, previous_pass_rate, pass_rate_change FROM assay_analytics.score_changes "
        "WHERE granularity = 'day' AND evaluator = 'pii' AND dim = 'all' AND period = :day",
        day=day2.replace(hour=0),
    )
    assert change.previous_pass_rate == 1.0
    assert change.pass_rate == pytest.approx(0.75)
    assert change.pass_rate_change == pytest.approx(-0.25)
    report = build_report(
        engine, "shop", day2.replace(hour=0), day2.replace(hour=0) + timedelta(days=1)
    )
    (pii,) = report.evaluators
    assert pii.previous_pass_rate == 1.0 and pii.pass_rate_change == pytest.approx(-0.25)
    (usage,) = report.usage
    assert usage.requests == 40 and usage.repeat_query_rate == pytest.approx(0.5)
