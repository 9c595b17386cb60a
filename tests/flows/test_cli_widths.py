"""Every table the CLI prints is readable at 80 and 120 columns: names and headers whole, no
line wider than the terminal, costs that fit, ids shortened one way (full ids in JSON)."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.cli import assay
from tests.conftest import insert_logs, log

pytestmark = pytest.mark.slow
BASE = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
EVALUATORS = ["prompt_injection", "json_schema", "json_valid", "latency_slo", "context_relevance",
              "rubric:escalation_policy_adherence"]  # fmt: skip
CONFIG = """deployment: widths
source: {initial_lookback: 1d}
evaluators:
  - {name: prompt_injection}
  - {name: json_valid}
  - {name: json_schema, params: {schema: {type: object}}}
  - {name: latency_slo, params: {max_ms: 1000}}
  - {name: context_relevance, model: local/heuristic}
  - name: rubric
    model: local/heuristic
    params: {id: escalation_policy_adherence, template: "Is it polite? {response}"}
sampling: {rate: 1.0, seed: widths, stratify_by: [customer_id]}
"""


def lines_fit(text: str, width: int) -> None:
    too_wide = [line for line in text.splitlines() if len(line) > width]
    assert not too_wide, "\n".join(too_wide)


@pytest.fixture
def scored(engine: sa.Engine, assay_env: str, tmp_path: Path) -> Path:
    config = tmp_path / "widths.yaml"
    config.write_text(CONFIG)
    insert_logs(engine, [
        log(f"0b7c6d1e-{i:04d}-4c1a-9a8e-3f2d1c0b9a8{i % 10}", BASE + timedelta(minutes=i),
            response='{"ok": true}' if i % 3 else "not json", latency_ms=300 + 100 * i,
            customer_id=f"customer-with-a-long-name-{i % 3}", context=json.dumps(["passage"]))
        for i in range(12)
    ] + [log("broken-0001", BASE, prompt=None)])  # fmt: skip
    done = assay("run", "widths", "--config", str(config), db_url=assay_env,
                 columns=80, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    for name in EVALUATORS:  # the run summary itself, at 80 columns
        assert name in done.stdout
    for header in ("evaluator", "pass", "mean", "failed", "skipped", "errors", "cost"):
        assert header in done.stdout
    lines_fit(done.stdout.split("╭")[0], 80)
    return config


@pytest.mark.parametrize("width", [80, 120])
def test_report_estimate_and_quarantine_fit_the_terminal(
    scored: Path, assay_env: str, width: int
) -> None:
    report = assay("report", "widths", "--since", "1d", "--by", "customer_id",
                   db_url=assay_env, columns=width)  # fmt: skip
    assert report.returncode == 0, report.stderr
    lines_fit(report.stdout, width)
    for name in EVALUATORS:
        assert f" {name} " in f" {report.stdout} ".replace("\n", " ")
    for header in ("evaluator", "segment", "n", "(95% CI)", "vs prev", "skipped", "errors"):
        assert header in report.stdout
    if width >= 110:
        assert "mean (CI)" in report.stdout and "p5/p50/p95" in report.stdout

    estimate = assay("estimate", "widths", "--config", str(scored), "--start",
                     (BASE - timedelta(hours=1)).isoformat(), "--end",
                     (BASE + timedelta(hours=1)).isoformat(), db_url=assay_env, columns=width)  # fmt: skip
    assert estimate.returncode == 0, estimate.stderr
    lines_fit(estimate.stdout, width)
    for header in ("eligible", "priority", "calls", "tokens in", "$/call", "projected"):
        assert header in estimate.stdout
    assert "context_relevance" in estimate.stdout
    assert "rubric:escalation_policy_adherence" in estimate.stdout
    assert "$0 " in estimate.stdout + " " and "$0.0…" not in estimate.stdout

    listed = assay("quarantine", "widths", db_url=assay_env, columns=width)
    assert listed.returncode == 0
    lines_fit(listed.stdout, width)
    assert "broken-0…" in listed.stdout and "not_be_null(prompt)" in listed.stdout
    full = json.loads(assay("quarantine", "widths", "--format", "json", db_url=assay_env).stdout)
    assert full[0]["log_id"] == "broken-0001"
    digest = assay("digest", "widths", "--config", str(scored), db_url=assay_env, columns=width)
    assert digest.returncode == 0 and "Assay daily digest: widths" in digest.stdout
    # Commands that run no flow start no Prefect server (it costs seconds and prints logs).
    for done in (report, estimate, listed, digest):
        assert "temporary server" not in done.stderr, done.stderr


def test_money_is_formatted_to_fit() -> None:
    from flows.render import money, short_id

    assert money(0.0042) == "$0.0042" and money(0.00001) == "<$0.0001" and money(0) == "$0"
    assert money(12.5) == "$12.50" and money(None) == "unknown"
    assert short_id("9e2d87e5-1111-2222-3333-444455556666") == "9e2d87e5…"
    assert short_id("r1") == "r1"


def test_ids_shown_side_by_side_stay_apart() -> None:
    from flows.render import unique_short_ids

    ids = [f"support-refund-{n:02d}" for n in range(6)] + ["9e2d87e5-1111-2222", "r1"]
    shown = unique_short_ids(ids)
    assert len(set(shown.values())) == len(ids)  # six items no longer all read `support-…`
    assert shown["support-refund-03"] == "support-refund-03"
    assert shown["9e2d87e5-1111-2222"] == "9e2d87e5…" and shown["r1"] == "r1"


LONG_MODELS = ["model-alphabravo-charliedelta-echofoxtrot-2026",
               "gpt-4o-mini-hotelindia-julietkilo-2024-07-18"]  # fmt: skip


@pytest.mark.parametrize("width", [80, 120])
def test_report_breaks_long_segment_values_only_between_words(
    engine: sa.Engine, assay_env: str, tmp_path: Path, width: int
) -> None:
    """`report --by model` once printed `gpt-4o-min` / `i`: a value is broken only after a
    separator, every word of it whole."""
    config = tmp_path / "models.yaml"
    config.write_text("deployment: models\nsource: {initial_lookback: 1d}\n"
                      "evaluators: [{name: json_valid}, {name: prompt_injection}]\n")  # fmt: skip
    insert_logs(engine, [log(f"m-{i}", BASE + timedelta(minutes=i), model=LONG_MODELS[i % 2],
                             response='{"ok": true}') for i in range(8)])  # fmt: skip
    done = assay("run", "models", "--config", str(config), db_url=assay_env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    report = assay("report", "models", "--since", "1d", "--by", "model", db_url=assay_env,
                   columns=width)  # fmt: skip
    assert report.returncode == 0, report.stderr
    lines_fit(report.stdout, width)
    words = report.stdout.replace("-", " ").replace("…", " ").split()
    for model in LONG_MODELS:
        for word in model.split("-"):
            assert word in words, (word, report.stdout)
