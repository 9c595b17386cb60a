"""Training data from production (`assay export`): the logs whose scores meet every condition,
streamed page by page (constant memory), never a log that failed `pii` or `secrets` or was not
checked by `pii` at all, with a count of what each condition excluded."""

import re
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel

from evaluators.records import LogRecord
from tasks.errors import ConfigError
from tasks.store.sql import query

#: Whatever the filter says: a log that failed these (or was never checked by `pii`) stays home.
ALWAYS_EXCLUDED = ("pii", "secrets")
_CONDITION = re.compile(r"^\s*([A-Za-z0-9_:.-]+)\s+(passed|failed|positive|negative|neutral)\s*$")


class Condition(BaseModel):
    subject: str  # an evaluator, or "feedback"
    wanted: Literal["passed", "failed", "positive", "negative", "neutral"]

    def label(self) -> str:
        return f"{self.subject} {self.wanted}"


def parse_where(text: str, evaluators: set[str]) -> list[Condition]:
    """`faithfulness passed, pii passed, feedback positive` -> conditions (ConfigError names the
    part it cannot read)."""
    conditions = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _CONDITION.match(part)
        if not match:
            raise ConfigError(
                f"--where: {part!r} is not 'EVALUATOR passed|failed' or "
                "'feedback positive|negative|neutral'"
            )
        subject, wanted = match.groups()
        is_feedback = wanted in ("positive", "negative", "neutral")
        if is_feedback != (subject == "feedback"):
            raise ConfigError(f"--where: {part!r} mixes an evaluator and a feedback value")
        if not is_feedback and subject not in evaluators:
            import difflib

            close = difflib.get_close_matches(subject, sorted(evaluators), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"--where: no evaluator {subject!r} in this job{hint}")
        conditions.append(Condition(subject=subject, wanted=wanted))
    return conditions


class ExportCounts(BaseModel):
    candidates: int = 0
    exported: int = 0
    excluded: dict[str, int] = {}


def kept_ids(
    conn: sa.Connection,
    deployment: str,
    since: datetime,
    until: datetime,
    conditions: list[Condition],
    counts: ExportCounts,
    page: int = 1000,
) -> Iterator[list[str]]:
    """Pages of log ids whose judged scores meet every evaluator condition (feedback is read
    from the source later), streamed from Postgres with a server-side cursor."""
    excluded: Counter[str] = Counter()
    wanted = [c for c in conditions if c.subject != "feedback"]
    result = conn.execution_options(stream_results=True, yield_per=page).execute(
        sa.text(query("experiments", "export_candidates")),
        {"deployment": deployment, "since": since, "until": until},
    )
    batch: list[str] = []
    for row in result:
        counts.candidates += 1
        passed, failed = set(row.passed or []), set(row.failed or [])
        reasons = [f"failed {e}" for e in ALWAYS_EXCLUDED if e in failed]
        if "pii" not in passed | failed:
            reasons.append("not checked by pii")
        reasons += [
            c.label() for c in wanted
            if (c.wanted == "passed" and c.subject not in passed)
            or (c.wanted == "failed" and c.subject not in failed)
        ]  # fmt: skip
        if reasons:
            excluded.update(reasons)
            continue
        batch.append(row.log_id)
        if len(batch) == page:
            yield batch
            batch = []
    if batch:
        yield batch
    counts.excluded = {**counts.excluded, **dict(excluded)}


ExportFormat = Literal["openai-chat", "jsonl", "csv", "parquet"]


def training_row(record: LogRecord, fmt: ExportFormat) -> dict[str, Any]:
    if fmt == "openai-chat":  # OpenAI's chat fine-tuning format
        return {"messages": [{"role": "user", "content": record.prompt},
                             {"role": "assistant", "content": record.response or ""}]}  # fmt: skip
    return {
        "id": record.id, "ts": record.ts.isoformat(), "prompt": record.prompt,
        "context": record.context, "response": record.response, "model": record.model,
        "prompt_slug": record.prompt_slug, "feedback": record.feedback,
    }  # fmt: skip


def feedback_ok(record: LogRecord, conditions: list[Condition]) -> str | None:
    """The feedback condition this record misses, if any."""
    for c in conditions:
        if c.subject == "feedback" and record.feedback != c.wanted:
            return c.label()
    return None
