"""Secrets the Prefect way: `secret://BLOCK` in settings or a job is resolved on the worker at
run time; the value reaches the judge, never a parameter, a table or a log line."""

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from prefect.blocks.system import Secret

from flows.evaluate import evaluate_recent
from tasks.config import parse_job
from tasks.settings import get_settings
from tests.conftest import insert_logs, log
from tests.fakes.llm import FakeLLM, Reply, always, verdict
from tests.hostile.test_secrets_and_slack import everything_stored

pytestmark = pytest.mark.usefixtures("prefect_api")
BASE = (datetime.now(UTC) - timedelta(hours=5)).replace(microsecond=0)
FROM_BLOCK = "sk-from-a-block-" + "Zq9" * 10


async def test_database_url_and_judge_key_come_from_secret_blocks(
    engine: sa.Engine,
    assay_env: str,
    fake_llm: FakeLLM,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await Secret(value=FROM_BLOCK).save("assay-judge-key", overwrite=True)  # type: ignore[misc]
    await Secret(value=assay_env).save("assay-scores-db", overwrite=True)  # type: ignore[misc]
    monkeypatch.setenv("ASSAY_DATABASE_URL", "secret://assay-scores-db")
    monkeypatch.setenv("ASSAY_JUDGE_SECRET_BLOCKS", "assay-judge-key")  # the operator's list
    get_settings.cache_clear()
    fake_llm.script("judge", always(Reply(content=verdict(0.9, True, "fine"))))
    insert_logs(engine, [log(f"s{i}", BASE + timedelta(minutes=i)) for i in range(5)])
    job = parse_job(
        {
            "deployment": "blocks",
            "source": {"initial_lookback": "1d"},
            "evaluators": [{"name": "toxicity", "model": "openai/judge",
                            "api_base": fake_llm.api_base, "api_key_env": "secret://assay-judge-key"}],
            "budget": {"prices": {"openai/judge": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 1}}},
        }
    )  # fmt: skip
    caplog.set_level(logging.DEBUG)

    summary = await evaluate_recent(job, until=BASE + timedelta(hours=1))

    assert summary.status == "completed" and summary.scored == 5
    assert all(FROM_BLOCK in (seen.authorization or "") for seen in fake_llm.requests)
    assert "secret://assay-judge-key" in json.dumps(job.model_dump(mode="json"))
    assert FROM_BLOCK not in json.dumps(job.model_dump(mode="json"))  # parameters keep the name
    assert FROM_BLOCK not in everything_stored(engine)
    assert FROM_BLOCK not in caplog.text
    get_settings.cache_clear()


def test_a_missing_block_is_a_config_error_naming_it() -> None:
    from tasks.errors import ConfigError
    from tasks.secrets import resolve

    with pytest.raises(ConfigError, match="no Prefect Secret block named 'assay-nope'"):
        resolve("secret://assay-nope")
    with pytest.raises(ConfigError, match="not a Secret block reference"):
        resolve("secret://Bad Name")
