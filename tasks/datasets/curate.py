"""Production logs into a dataset (`assay dataset add-logs`): failing, flagged or thumbs-down
logs become items, with PII masked unless asked otherwise. The expected answer is left empty:
a person writes it (or the item is used for reference-free evaluators)."""

from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from evaluators.heuristics.pii import mask_pii
from evaluators.records import LogRecord
from tasks.config import EvalJob
from tasks.datasets.items import DatasetItem
from tasks.store.sql import query
from tasks.warehouse.connect import source_engine
from tasks.warehouse.normalize import normalize_rows
from tasks.warehouse.source import rows_by_id

Feedback = Literal["positive", "negative", "neutral"]


def candidate_ids(
    engine: sa.Engine,
    deployment: str,
    since: datetime,
    evaluator: str | None,
    failed: bool,
    limit: int,
) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(query("datasets", "curation_candidates")),
            {"deployment": deployment, "since": since, "evaluator": evaluator,
             "failed": failed, "limit": limit},
        )  # fmt: skip
        return [row.log_id for row in rows]


def labelled_ids(
    engine: sa.Engine,
    deployment: str,
    since: datetime,
    criterion: str,
    failed: bool,
    limit: int,
) -> dict[str, dict[str, Any]]:
    """log id -> the person's verdict, for logs people labelled (with `failed`: failed)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(query("datasets", "labelled_candidates")),
            {"deployment": deployment, "since": since, "criterion": criterion,
             "failed": failed, "limit": limit},
        )  # fmt: skip
        return {
            row.log_id: {"criterion": criterion, "passed": row.passed, "note": row.note,
                         "annotator": row.annotator}
            for row in rows
        }  # fmt: skip


def read_logs(job: EvalJob, log_ids: list[str]) -> list[LogRecord]:
    """The logs as the source holds them now (READ ONLY), normalized like a run reads them."""
    found: list[LogRecord] = []
    for start in range(0, len(log_ids), 1000):
        with source_engine(job.source).connect() as conn:
            rows = rows_by_id(conn, job.source, log_ids[start : start + 1000])
        found += normalize_rows(rows, job.source.format)[0]
    return found


def as_item(record: LogRecord, deployment: str, keep_pii: bool, tags: list[str]) -> DatasetItem:
    def clean(text: str) -> str:
        return text if keep_pii else mask_pii(text)

    metadata: dict[str, Any] = {
        k: v for k, v in {"model": record.model, "prompt_slug": record.prompt_slug,
                          "topic": record.topic, "feedback": record.feedback,
                          "production_response": clean(record.response or "")}.items()
        if v
    }  # fmt: skip
    return DatasetItem(
        id=f"{deployment}:{record.id}",
        input=clean(record.prompt),
        context=[clean(c) for c in record.context],
        tags=tags,
        metadata=metadata,
        source_deployment=deployment,
        source_log_id=record.id,
    )
