"""Labels in Postgres: written beside scores (never changing them), relabels keeping history,
imports that reject bad rows with their reason and keep the rest."""

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ValidationError

from evaluators.errors import describe_validation_error
from evaluators.records import LogRecord
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


def _problem(conn: sa.Connection, row: LabelRow, known: dict[tuple[str, str], Any]) -> str | None:
    """Why a well-formed row still cannot be stored (unknown log, item or criterion)."""
    if row.deployment is not None:
        evaluators = known.get(("log", f"{row.deployment}/{row.log_id}"))
        if evaluators is None:
            return f"no scored log {row.log_id!r} in deployment {row.deployment!r}"
        if row.criterion != USER_FEEDBACK and row.criterion not in evaluators:
            return (
                f"unknown criterion {row.criterion!r} for this log (its evaluators: "
                f"{', '.join(sorted(evaluators))}, or user_feedback)"
            )
        return None
    if ("item", f"{row.dataset}/{row.item_id}") not in known:
        return f"no item {row.item_id!r} in dataset {row.dataset!r}"
    base = row.criterion.split(":", 1)[0]
    if row.criterion != USER_FEEDBACK and base not in all_evaluators():
        return f"unknown criterion {row.criterion!r} (an evaluator name, or user_feedback)"
    return None


def _known(conn: sa.Connection, rows: list[LabelRow]) -> dict[tuple[str, str], Any]:
    found: dict[tuple[str, str], Any] = {}
    by_deployment: dict[str, set[str]] = {}
    by_dataset: dict[str, set[str]] = {}
    for r in rows:
        if r.deployment is not None and r.log_id is not None:
            by_deployment.setdefault(r.deployment, set()).add(r.log_id)
        elif r.dataset is not None and r.item_id is not None:
            by_dataset.setdefault(r.dataset, set()).add(r.item_id)
    for deployment, ids in by_deployment.items():
        for hit in conn.execute(sa.text(query("labels", "known_logs")),
                                {"deployment": deployment, "log_ids": sorted(ids)}):  # fmt: skip
            found[("log", f"{deployment}/{hit.log_id}")] = set(hit.evaluators)
    for dataset, ids in by_dataset.items():
        for hit in conn.execute(sa.text(query("labels", "known_items")),
                                {"dataset": dataset, "item_ids": sorted(ids)}):  # fmt: skip
            found[("item", f"{dataset}/{hit.item_id}")] = True
    return found


def import_labels(engine: sa.Engine, path: Path) -> Imported:
    """Every good row of a JSONL or CSV file, in one transaction; each bad row rejected with its
    line and reason (a malformed row, an unknown log, item or criterion, a score outside 0..1)."""
    fmt = "csv" if path.suffix.lower() == ".csv" else "jsonl"
    result = Imported()
    parsed: list[tuple[int, LabelRow]] = []
    ignored: set[str] = set()
    for number, record in file_records(path, fmt):  # type: ignore[arg-type]
        if isinstance(record, str):
            result.rejected.append(Rejected(line=number, reason=record))
            continue
        ignored.update(unknown_fields(record))
        try:
            parsed.append((number, LabelRow.model_validate(record)))
        except ValidationError as exc:
            result.rejected.append(Rejected(line=number, reason=describe_validation_error(exc)))
    result.ignored_fields = sorted(ignored)
    with engine.begin() as conn:
        known = _known(conn, [row for _n, row in parsed])
        for number, row in parsed:
            problem = _problem(conn, row, known)
            if problem is not None:
                result.rejected.append(Rejected(line=number, reason=problem))
                continue
            save_label(conn, row, "import")
            result.imported += 1
    result.rejected.sort(key=lambda r: r.line)
    return result


def feedback_labels(conn: sa.Connection, deployment: str, records: list[LogRecord]) -> None:
    """The end users' thumbs of these logs, as `user_feedback` labels (once per user and log)."""
    given = [r for r in records if r.feedback is not None]
    if not given:
        return
    conn.execute(
        sa.text(query("labels", "feedback_labels")),
        {"deployment": deployment, "log_ids": [r.id for r in given],
         "feedback": [r.feedback for r in given],
         "annotators": [f"user:{r.user_id}" if r.user_id else "end-user" for r in given]},
    )  # fmt: skip
