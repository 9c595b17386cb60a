"""Proposing a mapping for a table Assay has never seen: by name, then by type."""

from tasks.warehouse.mapping import propose


def test_a_typical_app_table_maps_by_synonym() -> None:
    proposal = propose(
        {"request_id": "uuid", "created_at": "timestamp with time zone", "user_input": "text",
         "model_output": "text", "llm_model": "character varying", "tenant": "text",
         "prompt_tokens": "integer", "duration_ms": "bigint", "extra": "jsonb"}
    )  # fmt: skip
    assert proposal.mapping == {
        "id": "request_id", "ts": "created_at", "prompt": "user_input",
        "response": "model_output", "model": "llm_model", "customer_id": "tenant",
        "input_tokens": "prompt_tokens", "latency_ms": "duration_ms", "metadata": "extra",
    }  # fmt: skip
    assert proposal.missing_required == [] and proposal.unmapped_columns == []


def test_a_name_match_with_the_wrong_type_is_reported_not_mapped() -> None:
    proposal = propose({"id": "text", "ts": "text", "prompt": "text", "logged": "timestamptz"})
    # `ts` is text, so the one real timestamp column is the log time instead.
    assert proposal.mapping["ts"] == "logged"
    assert proposal.type_mismatches == {}
    proposal = propose({"id": "text", "ts": "text", "prompt": "text", "latency_ms": "text"})
    assert "ts" in proposal.missing_required and "ts" in proposal.type_mismatches
    assert "latency_ms" not in proposal.mapping and "latency_ms" in proposal.type_mismatches


def test_names_the_user_gave_win_and_odd_columns_are_explained() -> None:
    proposal = propose(
        {"Request ID": "text", "When": "timestamptz", "q": "text", "id": "bigint"},
        named={"prompt": "q"},
    )
    assert proposal.mapping == {"id": "id", "ts": "When", "prompt": "q"}
    assert "Request ID" in proposal.unusable_columns


def test_nothing_recognisable_leaves_every_required_field_missing() -> None:
    proposal = propose({"a": "integer", "b": "text", "c": "jsonb"})
    assert proposal.missing_required == ["id", "ts", "prompt"]
    assert proposal.unmapped_columns == ["a", "b", "c"]
