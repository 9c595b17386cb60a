"""From production to datasets and training data, through the installed CLI: failing and
thumbs-down logs curated into a dataset with PII masked, and fine-tuning data that never holds
a log that failed `pii`."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.cli import assay
from tests.conftest import insert_logs, log

pytestmark = pytest.mark.slow
BASE = (datetime.now(UTC) - timedelta(hours=5)).replace(microsecond=0)
JOB = """deployment: shop-bot
source: {initial_lookback: 1d}
evaluators: [{name: pii}, {name: secrets}, {name: refusal}]
"""


@pytest.fixture
def production(engine: sa.Engine, assay_env: str, tmp_path: Path) -> Path:
    rows = []
    for i in range(60):
        refuses, leaks = i % 5 == 0, i % 7 == 0
        response = "I cannot help with that." if refuses else f"Your order {i} ships soon."
        response += " Mail me at jane.doe@example.com." if leaks else ""
        rows.append(log(f"p{i:02d}", BASE + timedelta(minutes=i),
                        prompt=f"Where is order {i}? I am bob{i}@example.org", response=response,
                        feedback="negative" if refuses else ("positive" if i % 2 else None)))  # fmt: skip
    insert_logs(engine, rows)
    config = tmp_path / "shop-bot.yaml"
    config.write_text(JOB)
    done = assay("run", "shop-bot", "--config", str(config), db_url=assay_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return config


def test_failing_and_thumbs_down_logs_become_items_with_pii_masked(
    production: Path, assay_env: str, tmp_path: Path
) -> None:
    added = assay("dataset", "add-logs", "hard-cases", "--deployment", "shop-bot", "--config",
                  str(production), "--evaluator", "refusal", "--failed", "--create",
                  db_url=assay_env, cwd=tmp_path)  # fmt: skip
    assert added.returncode == 0, added.stdout + added.stderr
    assert "12 logs of shop-bot added" in added.stdout
    items = json.loads(assay("dataset", "show", "hard-cases", "--format", "json", "--limit",
                             "100", db_url=assay_env).stdout)  # fmt: skip
    assert len(items) == 12 and all(i["item"]["id"].startswith("shop-bot:p") for i in items)
    assert all("example.org" not in i["item"]["input"] for i in items)  # masked by default
    assert all(i["item"]["source_deployment"] == "shop-bot" for i in items)
    assert all("failed:refusal" in i["item"]["tags"] for i in items)

    negative = assay("dataset", "add-logs", "unhappy", "--deployment", "shop-bot", "--config",
                     str(production), "--feedback", "negative", "--keep-pii", "--create",
                     db_url=assay_env, cwd=tmp_path)  # fmt: skip
    assert negative.returncode == 0 and "12 logs of shop-bot added" in negative.stdout
    kept = json.loads(assay("dataset", "show", "unhappy", "--format", "json",
                            db_url=assay_env).stdout)  # fmt: skip
    assert any("example.org" in i["item"]["input"] for i in kept)  # --keep-pii keeps it


def test_training_export_is_chat_jsonl_and_never_holds_a_log_that_failed_pii(
    production: Path, assay_env: str, tmp_path: Path
) -> None:
    out = tmp_path / "train.jsonl"
    done = assay("export", "shop-bot", "--config", str(production), "--out", str(out),
                 "--where", "refusal passed, feedback positive", "--format", "openai-chat",
                 db_url=assay_env, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    for line in lines:  # OpenAI's chat fine-tuning schema
        assert set(line) == {"messages"}
        assert [m["role"] for m in line["messages"]] == ["user", "assistant"]
        assert all(isinstance(m["content"], str) and m["content"] for m in line["messages"])
    text = out.read_text()
    assert "jane.doe@example.com" not in text  # the pii evaluator failed those: never exported
    expected = [i for i in range(60) if i % 5 and i % 7 and i % 2]
    assert len(lines) == len(expected)
    assert "excluded" in done.stdout and "failed pii" in done.stdout
    assert "refusal passed" in done.stdout and "feedback positive" in done.stdout

    bad = assay("export", "shop-bot", "--config", str(production), "--out", str(out),
                "--where", "refusl passed", db_url=assay_env, cwd=tmp_path)  # fmt: skip
    assert bad.returncode == 2 and "did you mean 'refusal'" in " ".join(bad.stderr.split())
    parquet = tmp_path / "train.parquet"
    pq_done = assay("export", "shop-bot", "--config", str(production), "--out", str(parquet),
                    "--format", "parquet", db_url=assay_env, cwd=tmp_path)  # fmt: skip
    assert pq_done.returncode == 0, pq_done.stderr
    import pyarrow.parquet as pq

    assert pq.read_table(parquet).num_rows == len([i for i in range(60) if i % 7])
