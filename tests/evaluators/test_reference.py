"""Reference-based evaluators: the response against a dataset item's expected answer."""

import asyncio
from datetime import UTC, datetime

import pytest

from evaluators.base import EvalContext, Score
from evaluators.records import LogRecord
from evaluators.registry import build_evaluator

CTX = EvalContext(deployment="d", run_id="r")


def score(name: str, response: str | None, expected: object, **params: object) -> Score:
    metadata = {} if expected is None else {"reference": expected}
    record = LogRecord(id="1", ts=datetime.now(UTC), prompt="q", response=response,
                       metadata=metadata)  # fmt: skip
    return asyncio.run(build_evaluator(name, params).evaluate(record, CTX))


def test_exact_match_normalizes_case_space_and_punctuation_unless_asked() -> None:
    assert score("exact_match", "  Paris. ", "paris").passed is True
    assert score("exact_match", "Paris", "paris", case_sensitive=True).passed is False
    assert score("exact_match", "Paris!", "Paris", punctuation=True).passed is False
    assert score("exact_match", "Lyon", "Paris").passed is False


def test_contains_expected() -> None:
    assert score("contains_expected", "The capital is Paris, France.", "paris").passed is True
    assert score("contains_expected", "The capital is Lyon.", "Paris").passed is False


def test_json_equal_ignores_key_order_and_number_form() -> None:
    assert score("json_equal", '{"b": 1, "a": [1, 2]}', '{"a": [1, 2.0], "b": 1}').passed is True
    assert score("json_equal", '{"a": 1}', '{"a": 2}').passed is False
    broken = score("json_equal", "not json", '{"a": 1}')
    assert broken.passed is False and "not JSON" in (broken.reason or "")
    assert score("json_equal", "{}", "also not json").status == "error"
    assert score("json_equal", '{"a": 1}', {"a": 1}).passed is True  # structured expected


def test_numeric_close_reads_the_number_in_the_answer() -> None:
    assert score("numeric_close", "It costs $1,234.50 in total.", "1234.5").passed is True
    assert score("numeric_close", "about 99", "100", rel_tol=0.02).passed is True
    assert score("numeric_close", "about 90", "100", rel_tol=0.02).passed is False
    assert score("numeric_close", "no idea", "100").passed is False
    assert score("numeric_close", "42", "unknown").status == "error"


@pytest.mark.parametrize(
    "name", ["exact_match", "contains_expected", "json_equal", "numeric_close"]
)
def test_without_an_expected_answer_the_item_is_skipped_not_failed(name: str) -> None:
    result = score(name, "anything", None)
    assert result.status == "skipped" and result.passed is None
