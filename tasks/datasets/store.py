"""Datasets in Postgres: create, add items (new revisions for edits), list, read back."""

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from tasks.datasets.items import DatasetItem, digest
from tasks.errors import ConfigError
from tasks.store.sql import query


class DatasetInfo(BaseModel):
    name: str
    description: str
    created_at: datetime
    items: int
    with_expected: int
    changed_at: datetime | None
    digest: str


class StoredItem(BaseModel):
    item: DatasetItem
    revision: int
    content_hash: str
    created_at: datetime


class Added(BaseModel):
    added: int = 0
    revised: int = 0
    unchanged: int = 0


def create_dataset(engine: sa.Engine, name: str, description: str = "") -> bool:
    """True when created, False when it already existed."""
    with engine.begin() as conn:
        made = conn.execute(
            sa.text(query("datasets", "create_dataset")),
            {"name": name, "description": description},
        ).first()
    return made is not None


def add_items(engine: sa.Engine, dataset: str, items: list[DatasetItem]) -> Added:
    """Write items in one transaction: a new id is revision 1; a changed item retires its
    current revision and becomes the next; an identical one is left alone."""
    result = Added()
    with engine.begin() as conn:
        rows = conn.execute(sa.text(query("datasets", "current_hashes")), {"dataset": dataset})
        current = {row.item_id: (row.revision, row.content_hash) for row in rows}
        for item in items:
            content = item.content_hash()
            revision, known = current.get(item.id, (0, None))
            if known == content:
                result.unchanged += 1
                continue
            if revision:
                conn.execute(
                    sa.text(query("datasets", "retire_item")),
                    {"dataset": dataset, "item_id": item.id},
                )
                result.revised += 1
            else:
                result.added += 1
            conn.execute(
                sa.text(query("datasets", "insert_item")),
                {
                    "dataset": dataset,
                    "item_id": item.id,
                    "revision": revision + 1,
                    "input": item.input,
                    "context": json.dumps(item.context),
                    "expected": item.expected,
                    "tags": item.tags,
                    "metadata": json.dumps(item.metadata, default=str),
                    "source_deployment": item.source_deployment,
                    "source_log_id": item.source_log_id,
                    "content_hash": content,
                },
            )
            current[item.id] = (revision + 1, content)
    return result


def current_items(conn: sa.Connection, dataset: str) -> list[StoredItem]:
    rows = conn.execute(sa.text(query("datasets", "current_items")), {"dataset": dataset})
    return [
        StoredItem(
            item=DatasetItem(
                id=row.item_id,
                input=row.input,
                context=row.context,
                expected=row.expected,
                tags=list(row.tags),
                metadata=row.metadata,
                source_deployment=row.source_deployment,
                source_log_id=row.source_log_id,
            ),
            revision=row.revision,
            content_hash=row.content_hash,
            created_at=row.created_at,
        )
        for row in rows
    ]


def list_datasets(engine: sa.Engine) -> list[DatasetInfo]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(query("datasets", "list_datasets"))).all()
        found = []
        for row in rows:
            hashes = conn.execute(
                sa.text(query("datasets", "current_hashes")), {"dataset": row.name}
            ).all()
            found.append(
                DatasetInfo(
                    **row._asdict(), digest=digest((h.item_id, h.content_hash) for h in hashes)
                )
            )
    return found


def dataset_info(engine: sa.Engine, name: str) -> DatasetInfo:
    """The dataset, or a ConfigError naming the ones that exist (with "did you mean")."""
    import difflib

    known = list_datasets(engine)
    for info in known:
        if info.name == name:
            return info
    names = [d.name for d in known]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else (
        f" (datasets: {', '.join(names)})" if names else " (none yet: `assay dataset create`)"
    )  # fmt: skip
    raise ConfigError(f"no dataset {name!r}{hint}")


def export_rows(items: list[StoredItem]) -> list[dict[str, Any]]:
    """Items as the import format writes them (so an export imports back unchanged)."""
    rows = []
    for stored in items:
        row = stored.item.model_dump(exclude_none=True)
        for empty in ("context", "tags", "metadata"):
            if not row.get(empty):
                row.pop(empty, None)
        rows.append(row)
    return rows
