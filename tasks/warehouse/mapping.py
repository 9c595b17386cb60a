"""Propose a column mapping for a table Assay has never seen (`assay init`).

Pure: given the source's columns and their Postgres types, pick one column per canonical field
by name (exact, then known synonyms) and check the type fits; what it cannot place it reports.
"""

import re

from pydantic import BaseModel

from tasks.config import check_identifier

#: Canonical field -> source column names that usually mean it, best first.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "id": ("id", "request_id", "log_id", "call_id", "event_id", "event_uuid", "message_id",
           "uuid", "guid", "record_id"),
    "ts": ("ts", "timestamp", "created_at", "created", "logged_at", "event_time", "time",
           "requested_at", "inserted_at", "start_time", "datetime", "date"),
    "prompt": ("prompt", "user_input", "input", "question", "query", "user_message",
               "request_text", "message", "input_text", "user_prompt"),
    "response": ("response", "model_output", "output", "answer", "completion", "reply",
                 "assistant_message", "generation", "output_text", "response_text"),
    "context": ("context", "contexts", "retrieved_context", "retrieved", "passages",
                "retrieved_passages", "documents", "retrieved_documents", "retrieved_docs",
                "chunks", "sources"),
    "model": ("model", "llm_model", "model_name", "model_id", "engine"),
    "provider": ("provider", "llm_provider", "vendor", "model_provider"),
    "prompt_slug": ("prompt_slug", "prompt_name", "prompt_id", "prompt_template", "template",
                    "prompt_version", "feature"),
    "topic": ("topic", "intent", "category"),
    "customer_id": ("customer_id", "tenant", "tenant_id", "tenant_slug", "org_id", "org",
                    "org_slug", "organization", "organization_id", "organization_slug",
                    "account_id", "account", "workspace_id", "workspace", "customer",
                    "company_id"),
    "user_id": ("user_id", "end_user_id", "user"),
    "session_id": ("session_id", "conversation_id", "conversation", "thread_id", "thread",
                   "chat_id", "chat", "dialog_id", "session"),
    "trace_id": ("trace_id", "traceid", "run_id", "agent_run_id"),
    "span_id": ("span_id", "spanid", "step_id"),
    "parent_span_id": ("parent_span_id", "parent_id", "parent_step_id", "parentspanid"),
    "step_kind": ("step_kind", "span_kind", "step_type", "operation"),
    "environment": ("environment", "env", "stage"),
    "input_tokens": ("input_tokens", "prompt_tokens", "tokens_in", "n_input_tokens"),
    "output_tokens": ("output_tokens", "completion_tokens", "tokens_out", "n_output_tokens"),
    "latency_ms": ("latency_ms", "duration_ms", "response_time_ms", "elapsed_ms", "latency"),
    "cost_usd": ("cost_usd", "cost", "price_usd", "cost_dollars", "usd"),
    "status": ("status", "outcome", "state", "result_status"),
    "feedback": ("feedback", "user_feedback", "thumbs", "thumb", "rating", "vote",
                 "user_rating", "stars", "helpful", "liked"),
    "metadata": ("metadata", "meta", "extra", "attributes", "properties"),
}  # fmt: skip

#: What each canonical field means (the README's table and `assay init`'s output).
MEANINGS: dict[str, str] = {
    "id": "unique id of the LLM call (text, uuid or number)",
    "ts": "when the call happened (timestamp; the watermark orders by it)",
    "prompt": "what the user or app sent (text)",
    "response": "what the model answered (text)",
    "context": "retrieved passages, for RAG checks (text[], json array, or text)",
    "model": "model name, e.g. gpt-4o-mini (a report segment)",
    "provider": "provider, e.g. openai (a report segment)",
    "prompt_slug": "which prompt template or feature (a report segment)",
    "topic": "intent or category (a report segment)",
    "customer_id": "customer or tenant (a report segment)",
    "user_id": "end user",
    "session_id": "conversation or session",
    "trace_id": "agent run the step belongs to (its trace)",
    "span_id": "the step's own id in its trace (defaults to id)",
    "parent_span_id": "the step that called this one (empty for the root)",
    "step_kind": "llm / tool / retrieval / agent / other (empty: an LLM call)",
    "environment": "prod, staging, ... (a report segment)",
    "input_tokens": "prompt tokens (number)",
    "output_tokens": "completion tokens (number)",
    "latency_ms": "latency in milliseconds (number)",
    "cost_usd": "cost of the call in USD (number)",
    "status": "ok / error / timeout (errors are counted, not judged)",
    "feedback": "end-user feedback: positive / negative / neutral (source.feedback_values)",
    "metadata": "anything else (json), kept with the score",
}

REQUIRED = ("id", "ts", "prompt")

_TEXT = ("text", "character varying", "character", "varchar", "uuid", "citext", "name", "bpchar")
_NUMBER = ("integer", "bigint", "smallint", "numeric", "real", "double precision", "int2", "int4",
           "int8", "float4", "float8")  # fmt: skip
_TIME = ("timestamp with time zone", "timestamp without time zone", "date", "timestamptz",
         "timestamp")  # fmt: skip
_JSON = ("json", "jsonb")
FITS: dict[str, tuple[str, ...]] = {
    "id": (*_TEXT, "integer", "bigint", "smallint", "numeric", "int4", "int8"),
    "ts": _TIME,
    "context": (*_JSON, "text[]", "varchar[]", *_TEXT),
    "input_tokens": _NUMBER,
    "output_tokens": _NUMBER,
    "latency_ms": _NUMBER,
    "cost_usd": _NUMBER,
    "feedback": _TEXT + _NUMBER + ("boolean",),
    "metadata": _JSON,
}


class Proposal(BaseModel):
    """A proposed mapping, and what it could not place."""

    mapping: dict[str, str]  # canonical field -> source column
    # What the feedback column's values mean, guessed from its type and name (None: the column
    # already holds positive / negative / neutral, or there is none).
    feedback_values: dict[str, list[str | int | bool]] | None = None
    types: dict[str, str]  # source column -> type
    unmapped_columns: list[str]  # source columns no field took
    unusable_columns: dict[str, str]  # column -> why it cannot be mapped as it is
    missing_required: list[str]  # required fields nothing matched
    type_mismatches: dict[str, str]  # field -> "column (type)" that matched by name only


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def fits(field: str, type_name: str) -> bool:
    allowed = FITS.get(field, _TEXT)
    return type_name.lower() in allowed


def propose(columns: dict[str, str], named: dict[str, str] | None = None) -> Proposal:
    """`columns`: source column -> Postgres type; `named`: fields the user mapped themselves."""
    mapping = dict(named or {})
    usable: dict[str, str] = {}
    unusable: dict[str, str] = {}
    for column, type_name in columns.items():
        try:
            check_identifier(column, "column")
        except ValueError:
            unusable[column] = "not a plain identifier: rename it in a `query:` (AS name)"
            continue
        usable[column] = type_name
    by_key: dict[str, str] = {}
    for column in usable:
        by_key.setdefault(_key(column), column)
    mismatches: dict[str, str] = {}
    taken = set(mapping.values())
    for field, names in SYNONYMS.items():
        if field in mapping:
            continue
        for name in names:
            found = by_key.get(_key(name))
            if found is None or found in taken:
                continue
            column = found
            if not fits(field, usable[column]):
                mismatches.setdefault(field, f"{column} ({usable[column]})")
                continue
            mapping[field] = column
            taken.add(column)
            break
    if "ts" not in mapping:  # one timestamp column and no better idea: that is the log time
        times = [c for c, t in usable.items() if t.lower() in _TIME and c not in taken]
        if len(times) == 1:
            mapping["ts"] = times[0]
            taken.add(times[0])
    if "id" not in mapping:  # a uuid key under another name (event_uuid, row_guid, ...)
        keys = [c for c, t in usable.items() if t.lower() == "uuid" and c not in taken
                and re.search(r"(uuid|guid|_id)$", c.lower())]  # fmt: skip
        if len(keys) == 1:
            mapping["id"] = keys[0]
            taken.add(keys[0])
    ordered = {field: mapping[field] for field in SYNONYMS if field in mapping}
    feedback = ordered.get("feedback")
    return Proposal(
        mapping=ordered,
        feedback_values=feedback_meaning(feedback, usable[feedback]) if feedback else None,
        types=columns,
        unmapped_columns=[c for c in usable if c not in taken],
        unusable_columns=unusable,
        missing_required=[f for f in REQUIRED if f not in ordered],
        type_mismatches={f: m for f, m in mismatches.items() if f not in ordered},
    )


#: A rating on a 1-5 scale (stars), or a plain thumbs column, by its name.
_RATING = re.compile(r"rating|stars?|score", re.I)


def feedback_meaning(column: str, type_name: str) -> dict[str, list[str | int | bool]] | None:
    """What a feedback column's values most likely mean, by its type and name, written into the
    job for the user to check: thumbs as 1 / -1 (0 neutral), a 1-5 rating (4-5 good, 1-2 bad),
    a boolean (true is a thumbs-up), or common words."""
    kind = type_name.lower()
    if kind == "boolean":
        return {"positive": [True], "negative": [False]}
    if kind in _NUMBER:
        if _RATING.search(column):
            return {"positive": [4, 5], "negative": [1, 2], "neutral": [3]}
        return {"positive": [1], "negative": [-1], "neutral": [0]}
    return {
        "positive": ["up", "thumbs_up", "thumbsup", "like", "liked", "good", "yes", "+1", "1"],
        "negative": ["down", "thumbs_down", "thumbsdown", "dislike", "bad", "no", "-1"],
    }
