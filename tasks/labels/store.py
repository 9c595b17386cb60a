"""Labels in Postgres: written beside scores (never changing them), relabels keeping history,
imports that reject bad rows with their reason and keep the rest."""

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ValidationError

from evaluators.errors import describe_validation_error
from evaluators.registry import all_evaluators
from tasks.datasets.items import Rejected, file_records
from tasks.labels.rows import USER_FEEDBACK, LabelRow, Source, unknown_fields
from tasks.store.sql import query


def save_label(
    conn: sa.Connection, row: LabelRow, source: Source, queue_id: int | None = None
) -> int:
    """Store one label; the annotator's own earlier label of the same thing is retired."""
    params: dict[str, Any] = {
        **row.model_dump(exclude={"created_at"}), "created_at": row.created_at,
        "source": source, "queue_id": queue_id,
    }  # fmt: skip
    conn.execute(sa.text(query("labels", "supersede_label")), params)
    return int(conn.execute(sa.text(query("labels", "insert_label")), params).scalar_one())


class Imported(BaseModel):
    imported: int = 0
    rejected: list[Rejected] = []
    ignored_fields: list[str] = []  # unknown columns: kept out, warned about


#: Rows validated, checked and written together: memory stays flat whatever the file's size.
IMPORT_BATCH = 5_000
_LABEL_COLUMNS = ("deployment", "log_id", "dataset", "item_id", "criterion", "passed", "score",
                  "label", "note", "annotator", "created_at")  # fmt: skip


def import_labels(engine: sa.Engine, path: Path) -> Imported:
    """Every good row of a JSONL or CSV file, streamed in batches inside one transaction (a
    failure imports nothing); each bad row rejected with its line and reason (a malformed row,
    an unknown log, item or criterion, a score outside 0..1)."""
    fmt = "csv" if path.suffix.lower() == ".csv" else "jsonl"
    result = Imported()
    ignored: set[str] = set()
    batch: list[tuple[int, LabelRow]] = []
    with engine.begin() as conn:
        for number, record in file_records(path, fmt):  # type: ignore[arg-type]
            if isinstance(record, str):
                result.rejected.append(Rejected(line=number, reason=record))
                continue
            ignored.update(unknown_fields(record))
            try:
                batch.append((number, LabelRow.model_validate(record)))
            except ValidationError as exc:
                result.rejected.append(Rejected(line=number, reason=describe_validation_error(exc)))
            if len(batch) >= IMPORT_BATCH:
                result.imported += _import_batch(conn, batch, result.rejected)
                batch = []
        result.imported += _import_batch(conn, batch, result.rejected)
    result.ignored_fields = sorted(ignored)
    result.rejected.sort(key=lambda r: r.line)
    return result


def _import_batch(
    conn: sa.Connection, batch: list[tuple[int, LabelRow]], rejected: list[Rejected]
) -> int:
    """COPY a batch into a staging table, reject what names an unknown log, item or criterion
    (one query against the scores and dataset items), then write it set-based: one statement
    retires the annotators' earlier labels, one inserts the new ones. A file that labels the
    same thing twice (same subject, criterion and annotator) is written in rounds, in file
    order, so the later row is the current label and the earlier one its history."""
    if not batch:
        return 0
    rows: list[list[Any]] = []
    seen: dict[tuple[Any, ...], int] = {}
    for number, row in batch:
        if row.dataset is not None and not _known_criterion(row.criterion):
            reason = f"unknown criterion {row.criterion!r} (an evaluator name, or user_feedback)"
            rejected.append(Rejected(line=number, reason=reason))
            continue
        key = (row.deployment, row.log_id, row.dataset, row.item_id, row.criterion, row.annotator)
        turn = seen[key] = seen.get(key, -1) + 1
        rows.append([number, turn, *(getattr(row, c) for c in _LABEL_COLUMNS)])
    conn.execute(sa.text(query("labels", "stage_labels")))
    driver = conn.connection.driver_connection
    assert driver is not None
    columns = ", ".join(("line", "round", *_LABEL_COLUMNS))
    with driver.cursor() as cur, cur.copy(f"COPY labels_incoming ({columns}) FROM STDIN") as copy:
        for values in rows:
            copy.write_row(values)
    unknown = conn.execute(sa.text(query("labels", "unknown_subjects"))).all()
    for problem in unknown:
        rejected.append(Rejected(line=problem.line, reason=_why_unknown(problem)))
    if unknown:
        conn.execute(sa.text(query("labels", "drop_staged_lines")),
                     {"lines": [p.line for p in unknown]})  # fmt: skip
    for turn in range(max(seen.values(), default=-1) + 1):
        conn.execute(sa.text(query("labels", "supersede_staged")), {"round": turn})
        conn.execute(sa.text(query("labels", "insert_staged")), {"round": turn, "source": "import"})
    return len(rows) - len(unknown)


def _known_criterion(criterion: str) -> bool:
    return criterion == USER_FEEDBACK or criterion.split(":", 1)[0] in all_evaluators()


def _why_unknown(problem: Any) -> str:
    if problem.dataset is not None:
        return f"no item {problem.item_id!r} in dataset {problem.dataset!r}"
    if problem.evaluators is None:
        return f"no scored log {problem.log_id!r} in deployment {problem.deployment!r}"
    return (
        f"unknown criterion {problem.criterion!r} for this log (its evaluators: "
        f"{', '.join(sorted(problem.evaluators))}, or user_feedback)"
    )
