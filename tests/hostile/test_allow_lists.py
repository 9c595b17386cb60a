"""What a config names comes from operator-owned allow-lists: Secret blocks, `url_env`, and the
hosts a named key may go to. Each attack is shown working once the operator allows it (so the
test can fail), then refused under the defaults, with no request reaching the host."""

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from prefect.blocks.system import Secret

from flows.evaluate import evaluate_recent
from tasks.config import parse_job
from tasks.errors import ConfigError
from tasks.experiments.prompts import load_prompt
from tasks.settings import get_settings
from tests.cli import assay
from tests.conftest import insert_logs, log
from tests.fakes.llm import FakeLLM, Reply, always, verdict

BASE = (datetime.now(UTC) - timedelta(hours=5)).replace(microsecond=0)
PRICES = {"prices": {"openai/judge": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 1}}}


def judged_by(fake_llm: FakeLLM, key: str) -> dict[str, object]:
    return {
        "deployment": "exfil",
        "source": {"initial_lookback": "1d"},
        "evaluators": [{"name": "toxicity", "model": "openai/judge",
                        "api_base": fake_llm.api_base, "api_key_env": key}],
        "budget": PRICES,
    }  # fmt: skip


@pytest.mark.usefixtures("prefect_api")
async def test_a_config_cannot_send_the_database_url_block_to_a_judge(
    engine: sa.Engine, assay_env: str, fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    await Secret(value=assay_env).save("assay-exfil-db", overwrite=True)  # type: ignore[misc]
    fake_llm.script("judge", always(Reply(content=verdict(0.9, True))))
    insert_logs(engine, [log(f"x{i}", BASE + timedelta(minutes=i)) for i in range(3)])

    # The capability, when an operator does list the block: the value reaches the host.
    monkeypatch.setenv("ASSAY_JUDGE_SECRET_BLOCKS", "assay-exfil-*")
    summary = await evaluate_recent(
        parse_job(judged_by(fake_llm, "secret://assay-exfil-db")),
        until=BASE + timedelta(hours=1),
    )
    assert summary.scored == 3
    assert any(assay_env in (seen.authorization or "") for seen in fake_llm.requests)

    # By default no block may be named: refused at load, naming the setting that allows it.
    fake_llm.reset()
    monkeypatch.delenv("ASSAY_JUDGE_SECRET_BLOCKS")
    with pytest.raises(ConfigError, match="ASSAY_JUDGE_SECRET_BLOCKS"):
        parse_job(judged_by(fake_llm, "secret://assay-exfil-db"))
    # Listed, but the host is not trusted: a named key never goes there.
    monkeypatch.setenv("ASSAY_JUDGE_SECRET_BLOCKS", "assay-exfil-db")
    monkeypatch.setenv("ASSAY_TRUSTED_API_HOSTS", "api.openai.com")
    with pytest.raises(ConfigError, match="ASSAY_TRUSTED_API_HOSTS"):
        parse_job(judged_by(fake_llm, "secret://assay-exfil-db"))
    assert fake_llm.requests == []


@pytest.mark.usefixtures("prefect_api")
async def test_a_named_key_loaded_elsewhere_is_not_sent_to_an_untrusted_host_at_run_time(
    engine: sa.Engine, assay_env: str, fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A config validated under wider settings (another process) meets the worker's own lists."""
    fake_llm.script("judge", always(Reply(content=verdict(0.9, True))))
    insert_logs(engine, [log(f"y{i}", BASE + timedelta(minutes=i)) for i in range(3)])
    monkeypatch.setenv("OPENAI_API_KEY", "sk-worker-" + "k" * 20)
    job = parse_job(judged_by(fake_llm, "OPENAI_API_KEY"))
    monkeypatch.setenv("ASSAY_TRUSTED_API_HOSTS", "api.openai.com")

    with pytest.raises(Exception, match="ASSAY_TRUSTED_API_HOSTS"):
        await evaluate_recent(job, until=BASE + timedelta(hours=1))

    assert fake_llm.requests == []
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM assay.scores")).scalar_one() == 0


def test_a_prompt_file_cannot_name_a_key_for_an_untrusted_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompt = tmp_path / "prompt.yaml"
    prompt.write_text(
        "model: openai/gpt-4o-mini\ntemplate: 'Q: {input}'\n"
        "api_base: https://collector.evil.example/v1\napi_key_env: OPENAI_API_KEY\n"
    )
    with pytest.raises(ConfigError, match="collector.evil.example"):
        load_prompt(f"prompt:{prompt}")
    prompt.write_text("model: openai/gpt-4o-mini\ntemplate: 'Q: {input}'\n"
                      "api_key_env: secret://assay-exfil-db\n")  # fmt: skip
    with pytest.raises(ConfigError, match="ASSAY_JUDGE_SECRET_BLOCKS"):
        load_prompt(f"prompt:{prompt}")
    monkeypatch.setenv("ASSAY_TRUSTED_API_HOSTS", "collector.evil.example")
    prompt.write_text(
        "model: openai/gpt-4o-mini\ntemplate: 'Q: {input}'\n"
        "api_base: https://collector.evil.example/v1\napi_key_env: OPENAI_API_KEY\n"
    )
    target, _ = load_prompt(f"prompt:{prompt}")  # trusted by the operator: accepted
    assert target.api_base == "https://collector.evil.example/v1"


@pytest.mark.parametrize("judge", ["toxicity", "conversation_resolved", "agent_goal_completed"])
def test_every_kind_of_judge_follows_the_one_rule(judge: str) -> None:
    config = {"deployment": "d", "evaluators": [{
        "name": judge, "model": "openai/j", "api_base": "https://evil.example/v1",
        "api_key_env": "OPENAI_API_KEY"}]}  # fmt: skip
    with pytest.raises(ConfigError, match="evil.example"):
        parse_job(config)
    fallback = {"deployment": "d", "evaluators": [{
        "name": "toxicity", "model": "openai/j",
        "fallbacks": [{"model": "openai/k", "api_base": "https://evil.example/v1",
                       "api_key_env": "ASSAY_JUDGE_KEY_TEAM"}]}]}  # fmt: skip
    with pytest.raises(ConfigError, match="evil.example"):
        parse_job(fallback)


async def test_url_env_names_only_what_the_operator_lists(
    engine: sa.Engine, assay_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job could read any database whose URL the worker holds; now only listed variables."""
    insert_logs(engine, [log("ssn", BASE, prompt="my SSN is 078-05-1120")])
    monkeypatch.setenv("OTHER_APP_DATABASE_URL", assay_env)
    job = {"deployment": "reach", "source": {"url_env": "OTHER_APP_DATABASE_URL",
                                             "initial_lookback": "1d"}}  # fmt: skip
    monkeypatch.setenv("ASSAY_SOURCE_URL_ENVS", "ASSAY_WAREHOUSE_URL,OTHER_APP_DATABASE_URL")
    assert parse_job(job).source.url_env == "OTHER_APP_DATABASE_URL"  # listed: allowed
    monkeypatch.delenv("ASSAY_SOURCE_URL_ENVS")
    with pytest.raises(ConfigError, match="ASSAY_SOURCE_URL_ENVS"):
        parse_job(job)
    monkeypatch.setenv("ASSAY_WAREHOUSE_URL", assay_env)
    get_settings.cache_clear()
    ok = {"deployment": "reach", "source": {"url_env": "ASSAY_WAREHOUSE_URL"}}
    assert parse_job(ok).source.url_env == "ASSAY_WAREHOUSE_URL"  # the default list
    get_settings.cache_clear()


def test_the_installed_cli_refuses_a_secret_block_with_exit_2(
    tmp_path: Path, assay_env: str
) -> None:
    config = tmp_path / "job.yaml"
    config.write_text(json.dumps({"deployment": "exfil", "evaluators": [{
        "name": "toxicity", "model": "openai/j", "api_key_env": "secret://assay-exfil-db"}]}))  # fmt: skip
    done: subprocess.CompletedProcess[str] = assay(
        "estimate", "exfil", "--config", str(config), db_url=assay_env
    )
    assert done.returncode == 2, done.stderr
    assert "ASSAY_JUDGE_SECRET_BLOCKS" in done.stderr and "Traceback" not in done.stderr
