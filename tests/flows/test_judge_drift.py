"""Judge drift: an alert rule on agreement with human labels opens when people and the judge
stop agreeing, says so (never "quality dropped"), and recovers, through the fake Slack."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from flows.evaluate import evaluate_recent
from tasks.config import EvalJob, parse_job
from tests.cli import assay
from tests.conftest import insert_logs, log
from tests.fakes.llm import FakeLLM, Reply, verdict
from tests.fakes.slack import FakeSlack

pytestmark = pytest.mark.usefixtures("prefect_api")
START = (datetime.now(UTC) - timedelta(hours=6)).replace(microsecond=0)


def drift_job(fake: FakeLLM) -> EvalJob:
    return parse_job({
        "deployment": "rag",
        "source": {"initial_lookback": "1d"},
        "evaluators": [{"name": "faithfulness", "model": "openai/judge",
                        "api_base": fake.api_base}],
        "sampling": {"rate": 1.0},
        "budget": {"prices": {"openai/judge": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 2}}},
        "alerts": {"min_samples": 20, "summary": "never", "cooldown": "1h", "rules": [
            {"evaluator": "faithfulness", "metric": "kappa", "op": "<", "value": 0.6},
        ]},
    })  # fmt: skip


def labels(path: Path, agree: bool) -> Path:
    """One person's verdicts on the 40 logs: with the judge, or against it on 16 of them."""
    rows = []
    for i in range(40):
        judge_passed = i % 2 == 0
        disagrees = not agree and i < 16
        rows.append({"deployment": "rag", "log_id": f"r{i:02d}", "criterion": "faithfulness",
                     "passed": judge_passed != disagrees, "annotator": "pat"})  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


async def test_drift_opens_says_the_judge_disagrees_with_people_and_recovers(
    engine: sa.Engine, fake_slack: FakeSlack, fake_llm: FakeLLM, assay_env: str, tmp_path: Path
) -> None:
    def judge(_n: int, body: dict[str, Any]) -> Reply:
        even = "zqx-even" in json.dumps(body["messages"])
        return Reply(content=verdict(0.9 if even else 0.1, even, "checked"))

    fake_llm.script("judge", judge)
    insert_logs(engine, [
        log(f"r{i:02d}", START + timedelta(minutes=i), context=json.dumps(["Refunds: 14 days."]),
            response=f"Answer {'zqx-even' if i % 2 == 0 else 'zqx-odd'} {i}.")
        for i in range(40)
    ])  # fmt: skip
    job = drift_job(fake_llm)
    await evaluate_recent(job, until=START + timedelta(hours=1))
    assert fake_slack.posted == []  # no labels yet: no verdict about the judge

    imported = assay("labels", "import", str(labels(tmp_path / "l.jsonl", agree=False)),
                     db_url=assay_env)  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    await evaluate_recent(job, until=START + timedelta(hours=2))
    [opened] = [p.payload for p in fake_slack.posted]
    assert opened["text"].startswith("Judge drift: rag: faithfulness kappa")
    assert "the judge disagrees with people" in opened["text"]
    assert "Quality" not in opened["text"] and "Quality" not in json.dumps(opened["blocks"])
    assert "n=40" in opened["text"]

    assay("labels", "import", str(labels(tmp_path / "l.jsonl", agree=True)), db_url=assay_env)
    await evaluate_recent(job, until=START + timedelta(hours=3))
    texts = [p.payload["text"] for p in fake_slack.posted]
    assert len(texts) == 2 and texts[1].startswith("Recovered after")
    with engine.connect() as conn:
        status = conn.execute(sa.text(
            "SELECT status FROM assay.alerts WHERE metric = 'kappa'")).scalar_one()  # fmt: skip
    assert status == "resolved"
    # The run's artifacts carry the agreement beside the judges' numbers.
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async with get_client() as client:  # every version of the key, however many artifacts exist
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["rag-scheduled-agreement"]))
        )
    tables = [json.loads(a.data) if isinstance(a.data, str) else a.data for a in artifacts]
    assert all(t[0]["evaluator"] == "faithfulness" and t[0]["labels"] == 40 for t in tables)
    # 12 + 12 agreements and 8 + 8 disagreements: kappa 0.2; then full agreement.
    assert sorted(t[0]["kappa"] for t in tables) == ["0.200", "1.000"]
