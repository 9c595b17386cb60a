"""Human labels through the installed CLI: end-user thumbs become labels once, an import keeps
its good rows and names its bad ones, relabelling keeps history, agreement matches the hand-
computed table, and annotation queues are drawn with their weights."""

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.cli import assay
from tests.conftest import insert_logs, log
from tests.fakes.llm import FakeLLM, Reply, verdict

pytestmark = pytest.mark.slow
BASE = (datetime.now(UTC) - timedelta(hours=5)).replace(microsecond=0)


def judge_by_content(_n: int, body: dict[str, Any]) -> Reply:
    """The judge passes grounded answers (score 0.9) and fails the rest (0.2)."""
    text = json.dumps(body["messages"])
    if "zqx-verified" in text:
        return Reply(content=verdict(0.9, True, "supported by the context"))
    return Reply(content=verdict(0.2, False, "not in the context"))


def job_text(fake: FakeLLM) -> str:
    return json.dumps({
        "deployment": "help-bot",
        "source": {"initial_lookback": "1d"},
        "evaluators": [
            {"name": "refusal"},
            {"name": "faithfulness", "model": "openai/judge", "api_base": fake.api_base},
        ],
        "budget": {"prices": {"openai/judge": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 2}}},
        "limits": {"default": {"retries": 0}},
    })  # fmt: skip


@pytest.fixture
def judged(engine: sa.Engine, assay_env: str, tmp_path: Path, fake_llm: FakeLLM) -> Path:
    """24 logs: the judge passes l00-l11 and fails l12-l23; l00-l05 carry end-user thumbs."""
    fake_llm.script("judge", judge_by_content)
    rows = []
    for i in range(24):
        answer = f"The zqx-verified answer {i}." if i < 12 else f"A made-up answer {i}."
        thumbs = {0: "positive", 1: "positive", 2: "negative", 3: "neutral", 4: "negative"}
        rows.append(log(f"l{i:02d}", BASE + timedelta(minutes=i), response=answer,
                        context=json.dumps(["Refunds take 14 days."]), user_id=f"u{i}",
                        feedback=thumbs.get(i)))  # fmt: skip
    insert_logs(engine, rows)
    (tmp_path / "deployments/jobs").mkdir(parents=True)
    config = tmp_path / "deployments/jobs/help-bot.yaml"
    config.write_text(job_text(fake_llm))
    done = assay("run", "help-bot", db_url=assay_env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    return config


def scalar(engine: sa.Engine, sql: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql)).scalar_one()


def test_end_user_thumbs_become_labels_once(
    judged: Path, engine: sa.Engine, assay_env: str, tmp_path: Path
) -> None:
    feedback = "SELECT count(*) FROM assay.labels WHERE criterion = 'user_feedback'"
    assert scalar(engine, feedback) == 5
    assert scalar(engine, "SELECT count(*) FROM assay.labels WHERE criterion = 'user_feedback' "
                          "AND passed AND annotator = 'user:u0'") == 1  # fmt: skip
    again = assay("backfill", "help-bot", "--start", (BASE - timedelta(hours=1)).isoformat(),
                  "--end", (BASE + timedelta(hours=1)).isoformat(), db_url=assay_env,
                  cwd=tmp_path)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert scalar(engine, feedback) == 5  # the backfill read the same thumbs: nothing doubled


def labels_file(path: Path, rows: list[dict[str, Any]], extra_lines: list[str] = ()) -> Path:  # type: ignore[assignment]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "".join(extra_lines))
    return path


def human(i: int, passed: bool, annotator: str = "ann") -> dict[str, Any]:
    return {"deployment": "help-bot", "log_id": f"l{i:02d}", "criterion": "faithfulness",
            "passed": passed, "annotator": annotator}  # fmt: skip


def test_import_agreement_and_relabelling(
    judged: Path, engine: sa.Engine, assay_env: str, tmp_path: Path
) -> None:
    # People agree with the judge on 9 of its 12 passes and 9 of its 12 failures:
    # a = 9, b = 3, c = 3, d = 9: accuracy 0.75, chance 0.5, kappa 0.5.
    good = [human(i, i < 12) for i in range(24)]
    for i in (0, 1, 2):
        good[i]["passed"] = False
    for i in (12, 13, 14):
        good[i]["passed"] = True
    good[5]["reviewer_team"] = "support"  # an unknown field: ignored with a warning
    bad = [
        {**human(0, True), "log_id": "nope"},
        {**human(1, True), "criterion": "toxicity"},
        {**human(2, True), "score": 1.5},
        {**human(3, True), "annotator": ""},
        {"deployment": "help-bot", "log_id": "l04", "criterion": "faithfulness", "annotator": "x"},
    ]
    path = labels_file(tmp_path / "labels.jsonl", good + bad, ["{not json\n"])
    imported = assay("labels", "import", str(path), db_url=assay_env)
    assert imported.returncode == 1, imported.stdout + imported.stderr
    assert "24 label(s) imported, 6 rejected" in imported.stdout
    errors = " ".join(imported.stderr.split())
    assert "line 25: no scored log 'nope' in deployment 'help-bot'" in errors
    assert "line 26: unknown criterion 'toxicity'" in errors
    assert "line 27: score" in errors and "line 28: annotator" in errors
    assert re.search(r"line 29: [^;]*give at least one of passed, score, label", errors)
    assert "line 30: not JSON" in errors and "ignored unknown field(s): reviewer_team" in errors

    result = json.loads(assay("agreement", "help-bot", "--evaluator", "faithfulness",
                              "--format", "json", "--no-weekly", db_url=assay_env).stdout)  # fmt: skip
    [overall] = result["agreement"]
    assert overall["n"] == 24 and overall["enough"]
    assert overall["kappa"]["value"] == pytest.approx(0.5)
    assert overall["accuracy"]["value"] == pytest.approx(0.75)
    assert overall["recall_on_failures"]["value"] == pytest.approx(9 / 12)
    assert overall["kappa"]["low"] < 0.5 < overall["kappa"]["high"]

    few = assay("agreement", "help-bot", "--min-labels", "30", db_url=assay_env, columns=120)
    assert few.returncode == 0 and "not enough labels (24 of 30)" in few.stdout

    # A second person labels six logs the same way as the first: people agree perfectly.
    labels_file(path, [human(i, good[i]["passed"], "bea") for i in range(10, 16)])
    assert assay("labels", "import", str(path), db_url=assay_env).returncode == 0
    # The first annotator changes their mind on l00: their label is replaced, history kept.
    labels_file(path, [human(0, True)])
    assert assay("labels", "import", str(path), db_url=assay_env).returncode == 0
    assert scalar(engine, "SELECT count(*) FROM assay.labels WHERE log_id = 'l00' "
                          "AND annotator = 'ann'") == 2  # fmt: skip
    assert scalar(engine, "SELECT count(*) FROM assay.labels WHERE log_id = 'l00' "
                          "AND annotator = 'ann' AND superseded_at IS NULL AND passed") == 1  # fmt: skip
    # One file that labels l01 twice: the later row is current, the earlier one its history.
    labels_file(path, [human(1, True), human(1, False)])
    assert assay("labels", "import", str(path), db_url=assay_env).returncode == 0
    assert scalar(engine, "SELECT count(*) FROM assay.labels WHERE log_id = 'l01' "
                          "AND annotator = 'ann'") == 3  # fmt: skip
    assert scalar(engine, "SELECT count(*) FROM assay.labels WHERE log_id = 'l01' "
                          "AND annotator = 'ann' AND superseded_at IS NULL AND NOT passed") == 1  # fmt: skip
    # The report corrects the judge's pass rate by the labels: people now pass 13 of the 24
    # logs the judge passed 12 of, so the judge's measured bias is -1/24.
    report = json.loads(assay("report", "help-bot", "--since", "1d", "--format", "json",
                              db_url=assay_env).stdout)  # fmt: skip
    [row] = [e for e in report["evaluators"]
             if e["evaluator"] == "faithfulness" and e["segment"] == "all"]  # fmt: skip
    assert row["human_labels"] == 24
    assert row["corrected_pass_rate"] == pytest.approx(row["pass_rate"] + 1 / 24)
    assert row["corrected_low"] < row["corrected_pass_rate"] < row["corrected_high"]
    printed = assay("report", "help-bot", "--since", "1d", db_url=assay_env, columns=120)
    assert "corrected by 24 human label(s) (prediction-powered)" in " ".join(printed.stdout.split())
    shown = assay("agreement", "help-bot", "--suggest-threshold", db_url=assay_env, columns=120)
    assert shown.returncode == 0, shown.stderr
    assert "people agree with each other at kappa 1.00 on 6 logs labelled twice" in " ".join(
        shown.stdout.split())  # fmt: skip
    assert "pass_threshold 0.7 gives kappa" in shown.stdout
    table = assay("agreement", "help-bot", "--format", "csv", db_url=assay_env).stdout
    assert table.startswith("deployment,evaluator,evaluator_version,period,n,enough,kappa,")
    with engine.connect() as conn:
        weekly = conn.execute(sa.text(
            "SELECT labels, kappa FROM assay_analytics.judge_agreement WHERE evaluator = "
            "'faithfulness'")).all()  # fmt: skip
    assert sum(w.labels for w in weekly) == 24

    # Logs people failed become dataset items, with what the person decided.
    curated = assay("dataset", "add-logs", "hard", "--deployment", "help-bot", "--labelled",
                    "faithfulness", "--failed", "--create", db_url=assay_env, cwd=tmp_path)  # fmt: skip
    assert curated.returncode == 0, curated.stdout + curated.stderr
    items = json.loads(assay("dataset", "show", "hard", "--format", "json", "--limit", "100",
                             db_url=assay_env).stdout)  # fmt: skip
    # l01, l02 (the judge passed them) and l15-l23: the latest current label of each says fail.
    assert sorted(i["item"]["source_log_id"] for i in items) == ["l01", "l02", *(
        f"l{i}" for i in range(15, 24))]  # fmt: skip
    assert all(i["item"]["metadata"]["human_label"]["passed"] is False for i in items)
    assert all("people-failed:faithfulness" in i["item"]["tags"] for i in items)

    # The dashboard charts agreement per week and judge version.
    out = tmp_path / "dashboard.html"
    made = assay("dashboard", "--deployment", "help-bot", "--since", "2d", "--out", str(out),
                 db_url=assay_env, cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    trace = asyncio.run(agreement_trace(out))
    assert trace["name"].startswith("faithfulness · ")
    # Now: a = 10, b = 2, c = 3, d = 9 (l00 relabelled as a pass): kappa 7/12.
    assert trace["y"] == [pytest.approx(7 / 12)]


async def agreement_trace(page_file: Path) -> Any:
    from playwright.async_api import async_playwright

    from tests.browser import CHROMIUM_ARGS, chromium_path

    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        page = await browser.new_page()
        await page.route("http*://**", lambda route: route.abort())
        await page.goto(page_file.as_uri())
        await page.wait_for_selector("#chart-agreement .main-svg", timeout=15_000)
        [trace] = await page.evaluate(
            "() => document.getElementById('chart-agreement').data.map(t => ({name: t.name, y: t.y}))"
        )
        await browser.close()
    return trace


def test_a_queue_is_a_weighted_stratified_sample(
    judged: Path, engine: sa.Engine, assay_env: str, tmp_path: Path
) -> None:
    made = assay("annotate", "queue", "help-bot", "--evaluator", "faithfulness", "--size", "8",
                 "--since", "1d", "--name", "q1", "--format", "json", db_url=assay_env,
                 cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    queue = json.loads(made.stdout)
    assert queue["size"] == 8
    assert queue["design"] == {"fail": {"population": 12, "sample": 4},
                               "pass": {"population": 12, "sample": 4}}  # fmt: skip
    with engine.connect() as conn:
        items = conn.execute(sa.text(
            "SELECT stratum, inclusion_probability, shown FROM assay.queue_items")).all()  # fmt: skip
    assert {(i.stratum, i.inclusion_probability) for i in items} == {("pass", 1 / 3),
                                                                     ("fail", 1 / 3)}  # fmt: skip
    assert all("answer" in i.shown["response"] for i in items)  # the text, read from the source
    again = assay("annotate", "queue", "help-bot", "--evaluator", "faithfulness", "--name", "q1",
                  db_url=assay_env, cwd=tmp_path)  # fmt: skip
    assert again.returncode == 2 and "exists already" in again.stderr
    typo = assay("annotate", "queue", "help-bot", "--evaluator", "faithfulnes",
                 db_url=assay_env, cwd=tmp_path)  # fmt: skip
    assert typo.returncode == 2 and "did you mean 'faithfulness'" in typo.stderr
    # A real evaluator the deployment does not run: said as such, not "run the deployment".
    absent = assay("annotate", "queue", "help-bot", "--evaluator", "hallucination",
                   db_url=assay_env, cwd=tmp_path)  # fmt: skip
    assert absent.returncode == 2
    assert "help-bot has no hallucination evaluator" in " ".join(absent.stderr.split())


def test_labels_on_dataset_items(engine: sa.Engine, assay_env: str, tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text('{"id": "q1", "input": "How long do refunds take?", "expected": "14 days"}\n')
    assert assay("dataset", "import", "golden", str(items), "--create",
                 db_url=assay_env).returncode == 0  # fmt: skip
    rows = [
        {"dataset": "golden", "item_id": "q1", "criterion": "correctness", "score": 0.8,
         "label": "mostly right", "annotator": "ana", "note": "tone\x00 ok <b>"},
        {"dataset": "golden", "item_id": "q9", "criterion": "correctness", "passed": True,
         "annotator": "ana"},
        {"dataset": "golden", "item_id": "q1", "criterion": "vibes", "passed": True,
         "annotator": "ana"},
        {"dataset": "golden", "item_id": "q1", "deployment": "help-bot", "log_id": "l1",
         "criterion": "correctness", "passed": True, "annotator": "ana"},
    ]  # fmt: skip
    done = assay("labels", "import", str(labels_file(tmp_path / "l.jsonl", rows)),
                 "--format", "json", db_url=assay_env)  # fmt: skip
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["imported"] == 1
    reasons = {r["line"]: r["reason"] for r in result["rejected"]}
    assert reasons[2] == "no item 'q9' in dataset 'golden'"
    assert reasons[3].startswith("unknown criterion 'vibes'")
    assert "deployment and log_id, or dataset and item_id" in reasons[4]
    stored = scalar(engine, "SELECT row_to_json(l) FROM assay.labels l")
    assert (stored["item_id"], stored["score"], stored["label"]) == ("q1", 0.8, "mostly right")
    assert stored["note"] == "tone ok <b>"  # control characters gone; markup is escaped on output
