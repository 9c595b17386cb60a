"""What Postgres, JSON and the encoder can store: per-row reasons and bounded, valid copies."""

import json
from datetime import UTC, datetime
from decimal import Decimal

from tasks.store.sanitize import (
    MAX_ID_CHARS,
    UnreadableJson,
    row_problems,
    storable,
    storable_text,
    storage_key,
    tolerant_json_loads,
)


def test_ordinary_rows_have_no_problems() -> None:
    fields = {"id": "a1", "ts": datetime(2026, 1, 1, tzinfo=UTC), "prompt": "héllo wörld",
              "context": ["one", "two"], "cost_usd": 0.01, "metadata": {"a": [1, {"b": "c"}]}}  # fmt: skip
    assert row_problems(fields) == []


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def test_each_unstorable_value_is_named_with_its_field() -> None:
    problems = row_problems(
        {
            "cost_usd": float("nan"),
            "input_tokens": Decimal("Infinity"),
            "model": "gpt\x00x",
            "prompt": "lone \ud800",
            "context": ["fine", "nul\x00"],
            "metadata": {"k": nested(40)},
            "id": "x" * (MAX_ID_CHARS + 1),
        }
    )
    text = " | ".join(problems)
    for expected in ("cost_usd: is nan", "input_tokens: is Infinity", "model: contains a NUL",
                     "prompt: contains an unpaired surrogate", "context: contains a NUL",
                     "metadata: is nested deeper", "id: 201 characters"):  # fmt: skip
        assert expected in text, expected


def test_json_too_deep_for_python_becomes_a_marker_not_an_exception() -> None:
    value = tolerant_json_loads("[" * 5000 + "]" * 5000)
    assert isinstance(value, UnreadableJson) and "nested" in value.reason
    assert tolerant_json_loads('{"a": 1}') == {"a": 1}


def test_storable_copies_are_valid_json_and_bounded() -> None:
    copy = storable({"nan": float("nan"), "nul": "a\x00b", "sur": "\ud800", "big": "x" * 5000,
                     "deep": [[[[[[[[[[1]]]]]]]]]], "n": Decimal("12")})  # fmt: skip
    text = json.dumps(copy, allow_nan=False)
    text.encode("utf-8")
    assert copy["n"] == 12 and len(copy["big"]) < 2100 and "\x00" not in text
    assert storable_text("ok") == "ok"


def test_oversize_ids_are_keyed_by_a_digest() -> None:
    key = storage_key("y" * 3000)
    assert len(key) <= MAX_ID_CHARS and "sha256:" in key
    assert storage_key("y" * 3000) == key and storage_key("short") == "short"
