"""Job config: identifiers are validated, evaluators and params checked at load, clear errors."""

from datetime import timedelta
from pathlib import Path

import pytest

from tasks.config import EvalJob, load_job, parse_job
from tasks.errors import ConfigError


@pytest.mark.parametrize(
    "source",
    [
        {"table": "logs; DROP TABLE assay.scores"},
        {"table": 'logs" OR 1=1 --'},
        {"table": "a.b.c"},
        {"columns": {"prompt": "prompt) FROM pg_shadow --"}},
        {"filters": {"environment = 'x' OR true; --": "prod"}},
    ],
)
def test_hostile_identifiers_are_rejected_with_a_clear_error(source: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="not a plain SQL identifier|must be `table`"):
        parse_job({"deployment": "d", "source": source})


def test_filter_values_are_data_not_sql() -> None:
    job = parse_job({"deployment": "d", "source": {"filters": {"environment": "x' OR '1'='1"}}})
    assert job.source.filters["environment"] == "x' OR '1'='1"  # bound as a parameter later


def test_unknown_evaluator_and_bad_params_name_the_problem() -> None:
    with pytest.raises(ConfigError, match="unknown evaluator 'nope'"):
        parse_job({"deployment": "d", "evaluators": [{"name": "nope"}]})
    with pytest.raises(ConfigError, match="latency_slo.*max_ms"):
        parse_job(
            {"deployment": "d", "evaluators": [{"name": "latency_slo", "params": {"max_ms": 0}}]}
        )
    with pytest.raises(ConfigError, match="listed twice: pii"):
        parse_job({"deployment": "d", "evaluators": [{"name": "pii"}, {"name": "pii"}]})


def test_payload_formats_need_their_slots_and_know_their_fields() -> None:
    with pytest.raises(ConfigError, match="'attributes' must map"):
        parse_job(
            {"deployment": "d", "source": {"format": "otel_genai", "columns": {"attributes": None}}}
        )
    with pytest.raises(ConfigError, match="'payload' is not a canonical field"):
        parse_job({"deployment": "d", "source": {"columns": {"payload": "x"}}})
    job = parse_job(
        {"deployment": "d", "source": {"format": "otel_genai", "columns": {"id": "span_id"}}}
    )
    assert job.source.column_mapping() == {"id": "span_id", "ts": "ts", "attributes": "attributes"}


def test_durations_accept_short_forms() -> None:
    job = parse_job({"deployment": "d", "source": {"lag": "90s", "initial_lookback": "3d"}})
    assert job.source.lag == timedelta(seconds=90)
    assert job.source.initial_lookback == timedelta(days=3)
    assert parse_job({"deployment": "d", "source": {"lag": "PT10M"}}).source.lag == timedelta(
        minutes=10
    )


def test_deployment_names_are_safe_slugs() -> None:
    with pytest.raises(ConfigError, match="deployment"):
        parse_job({"deployment": "Support Bot!"})


def test_example_job_configs_load() -> None:
    for path in sorted(Path("deployments/jobs").glob("*.yaml")):
        job = load_job(path)
        assert isinstance(job, EvalJob) and path.stem == job.deployment


def test_unreadable_or_malformed_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_job(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("deployment: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_job(bad)


def test_session_and_trace_evaluators_are_accepted_and_their_rubric_reads_only_the_transcript() -> (
    None
):
    from tasks.config import parse_job

    job = parse_job({"deployment": "chat", "evaluators": [
        {"name": "turn_count", "params": {"max_turns": 4}},
        {"name": "conversation_resolved", "model": "local/heuristic"},
        {"name": "tool_loop"}, {"name": "agent_goal_completed", "model": "local/heuristic"},
        {"name": "session_rubric", "model": "local/heuristic", "params": {
            "id": "polite", "template": 'Polite throughout? Answer like {"polite": true}. {transcript}'}},
    ]})  # fmt: skip
    assert job.score_names() == ["turn_count", "conversation_resolved", "tool_loop",
                                 "agent_goal_completed", "session_rubric:polite"]  # fmt: skip
    # A rubric's template is data: no placeholder but the transcript.
    with pytest.raises(ConfigError, match="may only use"):
        parse_job({"deployment": "chat", "evaluators": [{"name": "session_rubric", "params": {
            "id": "x", "template": "{transcript} and {transcript.__class__}"}}]})  # fmt: skip
    with pytest.raises(ConfigError, match="only apply to LLM judges"):
        parse_job({"deployment": "chat", "evaluators": [{"name": "turn_count", "model": "x/y"}]})
