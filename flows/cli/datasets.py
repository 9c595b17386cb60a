"""`assay dataset ...`: golden datasets in Postgres (create, import, list, show, export)."""

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.text import Text

from flows.cli.common import (
    FormatOption,
    OutputFormat,
    _guarded,
    app,
    console,
    err_console,
    field_pairs,
    raise_usage,
)

dataset_app = typer.Typer(
    help="Golden datasets: inputs with the answers a person expects.", no_args_is_help=True
)
app.add_typer(dataset_app, name="dataset")

NameArgument = Annotated[str, typer.Argument(help="Dataset name (letters, digits, . _ -).")]


def safe_cells(row: dict[str, Any]) -> dict[str, Any]:
    """Every cell of a CSV row that a spreadsheet would read as a formula, neutralised."""
    from tasks.datasets.items import escape_cell

    return {key: escape_cell(value) for key, value in row.items()}


def dataset_schema() -> Any:
    """One explicit Parquet schema for dataset exports: sparse columns are nullable."""
    import pyarrow as pa

    return pa.schema([
        ("id", pa.string()), ("input", pa.string()), ("context", pa.list_(pa.string())),
        ("expected", pa.string()), ("tags", pa.list_(pa.string())), ("metadata", pa.string()),
    ])  # fmt: skip


def training_schema() -> Any:
    """One explicit schema for every row group of a training export (never inferred per batch,
    so a first thousand rows without `feedback` cannot fix its type as null)."""
    import pyarrow as pa

    return pa.schema([
        ("id", pa.string()), ("ts", pa.string()), ("prompt", pa.string()),
        ("context", pa.string()), ("response", pa.string()), ("model", pa.string()),
        ("prompt_slug", pa.string()), ("feedback", pa.string()),
    ])  # fmt: skip


@dataset_app.command("create")
def create(
    name: NameArgument,
    description: Annotated[str, typer.Option(help="What the dataset is for.")] = "",
) -> None:
    """Create an empty dataset (nothing happens if it exists)."""
    import re

    from tasks.datasets.store import create_dataset
    from tasks.store.db import scores_engine

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", name):
        raise_usage(f"dataset name {name!r}: use letters, digits, '.', '_' and '-'")
    made = _guarded(lambda: create_dataset(scores_engine(), name, description))
    console.print(f"created dataset {name}" if made else f"dataset {name} already exists")


class ImportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


@dataset_app.command("import")
def import_(
    name: NameArgument,
    file: Annotated[Path, typer.Argument(help="JSONL or CSV file of items.", exists=True)],
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="FIELD=COLUMN when your file names a field differently."),
    ] = None,
    file_format: Annotated[
        ImportFormat | None, typer.Option("--file-format", help="Default: from the extension.")
    ] = None,
    create: Annotated[
        bool, typer.Option("--create", help="Create the dataset if missing.")
    ] = False,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Add items from a file: new ids are added, changed items get a new revision (the old one
    is retired), identical ones are left alone. Bad lines are listed with their line number
    and reason and the rest is still imported (exit 1 when any line was rejected)."""
    from tasks.datasets.items import ITEM_FIELDS, read_items
    from tasks.datasets.store import add_items, create_dataset, dataset_info
    from tasks.store.db import scores_engine

    mapping = field_pairs(map_ or [], ITEM_FIELDS, "an item field", "input=question")
    engine = _guarded(scores_engine)
    if create:
        _guarded(lambda: create_dataset(engine, name))
    _guarded(lambda: dataset_info(engine, name))
    items, rejected = read_items(file, mapping, file_format.value if file_format else None)
    added = _guarded(lambda: add_items(engine, name, items))
    if output is OutputFormat.json:
        print(json.dumps({**added.model_dump(), "rejected": [r.model_dump() for r in rejected]}))
    else:
        console.print(
            f"{name}: {added.added:,} added, {added.revised:,} revised, "
            f"{added.unchanged:,} unchanged, {len(rejected):,} rejected"
        )
        for reject in rejected[:50]:
            err_console.print(Text(f"line {reject.line}: {reject.reason}"))
        if len(rejected) > 50:
            err_console.print(f"… and {len(rejected) - 50:,} more (--format json lists all)")
    if rejected:
        raise typer.Exit(1)


@dataset_app.command("list")
def list_(output: FormatOption = OutputFormat.table) -> None:
    """Datasets with their item counts and content digests."""
    from flows.render import columns, compact, keep_whole
    from tasks.datasets.store import list_datasets
    from tasks.store.db import scores_engine

    found = _guarded(lambda: list_datasets(scores_engine()))
    if output is OutputFormat.json:
        print(json.dumps([d.model_dump(mode="json") for d in found], indent=2))
        return
    table = columns(compact(f"datasets ({len(found)})"), "name", "items", "expected",
                    "digest", "changed", "description", text=("description",))  # fmt: skip
    for d in found:
        changed = f"{d.changed_at:%Y-%m-%d %H:%M}" if d.changed_at else "–"
        table.add_row(d.name, f"{d.items:,}", f"{d.with_expected:,}", d.digest, changed,
                      Text(d.description))  # fmt: skip
    console.print(keep_whole(table))


@dataset_app.command("show")
def show(
    name: NameArgument,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="Items to show.")] = 20,
    output: FormatOption = OutputFormat.table,
) -> None:
    """The dataset's current items."""
    from flows.render import columns, compact, keep_whole, unique_short_ids
    from tasks.datasets.store import current_items, dataset_info
    from tasks.store.db import scores_engine

    engine = _guarded(scores_engine)
    info = _guarded(lambda: dataset_info(engine, name))

    def read() -> list[Any]:
        with engine.connect() as conn:
            return current_items(conn, name)

    items = _guarded(read)[:limit]
    if output is OutputFormat.json:
        print(json.dumps([i.model_dump(mode="json") for i in items], indent=2))
        return
    console.print(
        f"[bold]{info.name}[/] · {info.items:,} items ({info.with_expected:,} with an expected "
        f"answer) · digest {info.digest}" + (f"\n{info.description}" if info.description else "")
    )
    table = columns(compact(), "item", "rev", "input", "expected", text=("input", "expected"))
    ids = unique_short_ids([stored.item.id for stored in items])
    for stored in items:
        item = stored.item
        table.add_row(ids[item.id], str(stored.revision), Text(item.input[:200]),
                      Text((item.expected or "–")[:200]))  # fmt: skip
    console.print(keep_whole(table))


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"
    parquet = "parquet"


@dataset_app.command("export")
def export(
    name: NameArgument,
    file_format: Annotated[ExportFormat, typer.Option("--format", help="File format.")] = (
        ExportFormat.jsonl
    ),
    out: Annotated[Path | None, typer.Option(help="File to write (default: stdout).")] = None,
) -> None:
    """Write the current items as JSONL, CSV (context and tags as JSON arrays) or Parquet; an
    export imports back unchanged."""
    from tasks.datasets.store import current_items, dataset_info, export_rows
    from tasks.store.db import scores_engine

    if file_format is ExportFormat.parquet and out is None:
        raise_usage("--format parquet needs --out FILE")
    engine = _guarded(scores_engine)
    _guarded(lambda: dataset_info(engine, name))
    with engine.connect() as conn:
        rows = export_rows(current_items(conn, name))
    if file_format is ExportFormat.parquet:
        import pyarrow as pa
        import pyarrow.parquet as pq

        assert out is not None
        flat = [{**r, "metadata": json.dumps(r.get("metadata", {}))} for r in rows]
        pq.write_table(pa.Table.from_pylist(flat, schema=dataset_schema()), out)
    else:
        handle = out.open("w", encoding="utf-8", newline="") if out else sys.stdout
        try:
            _write_text(rows, file_format, handle)
        finally:
            if out:
                handle.close()
    if out:
        console.print(f"wrote {len(rows):,} items of {name} to {out}")


def _write_text(rows: list[dict[str, Any]], file_format: ExportFormat, handle: TextIO) -> None:
    import csv

    if file_format is ExportFormat.jsonl:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    writer = csv.DictWriter(
        handle,
        fieldnames=["id", "input", "context", "expected", "tags", "metadata"],
        extrasaction="ignore",
    )
    writer.writeheader()
    for row in rows:
        writer.writerow(safe_cells({
            **row,
            "context": json.dumps(row.get("context", [])),
            "tags": json.dumps(row.get("tags", [])),
            "metadata": json.dumps(row.get("metadata", {})),
        }))  # fmt: skip


@dataset_app.command("add-logs")
def add_logs(
    name: NameArgument,
    deployment: Annotated[str, typer.Option(help="Where the logs come from (its job file).")],
    since: Annotated[str, typer.Option(help="A duration back from now (7d) or ISO time.")] = "7d",
    evaluator: Annotated[
        str | None, typer.Option(help="Only logs this evaluator scored (with --failed: failed).")
    ] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Only logs the evaluator failed.")
    ] = False,
    feedback: Annotated[
        str | None, typer.Option(help="Only logs with this end-user feedback (e.g. negative).")
    ] = None,
    labelled: Annotated[
        str | None,
        typer.Option(
            help="Only logs people labelled for this criterion (with --failed: that people "
            "failed); their verdict is kept in the item's metadata."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="Items to add at most.")] = 100,
    keep_pii: Annotated[
        bool, typer.Option("--keep-pii", help="Keep personal data (default: masked).")
    ] = False,
    config: Annotated[Path | None, typer.Option(help="Job config of the deployment.")] = None,
    create: Annotated[
        bool, typer.Option("--create", help="Create the dataset if missing.")
    ] = False,
) -> None:
    """Curate production logs into a dataset: failing, flagged or thumbs-down ones become items
    (id DEPLOYMENT:LOG_ID, the prompt as input, PII masked, no expected answer yet)."""
    from datetime import UTC, datetime

    from flows.cli.common import _load, _since, check_names
    from tasks.datasets.curate import as_item, candidate_ids, labelled_ids, read_logs
    from tasks.datasets.store import add_items, create_dataset, dataset_info
    from tasks.store.db import scores_engine
    from tasks.warehouse.connect import fitted_job

    if failed and evaluator is None and labelled is None:
        raise_usage("--failed needs --evaluator NAME or --labelled NAME (who failed them)")
    if labelled is not None and evaluator is not None:
        raise_usage("--labelled and --evaluator pick logs differently: give one of them")
    if feedback is not None and feedback not in ("positive", "negative", "neutral"):
        raise_usage(f"--feedback {feedback!r}: use positive, negative or neutral")
    check_names(deployment, [evaluator] if evaluator else ())
    job = _guarded(lambda: fitted_job(_load(deployment, config)))
    start = _guarded(lambda: _since(since, datetime.now(UTC)))
    engine = _guarded(scores_engine)
    if create:
        _guarded(lambda: create_dataset(engine, name))
    _guarded(lambda: dataset_info(engine, name))
    # A feedback filter is applied to what the source holds, so look at more candidates.
    wanted = limit if feedback is None else min(100_000, limit * 20)
    people: dict[str, dict[str, Any]] = {}
    if labelled is not None:
        people = _guarded(lambda: labelled_ids(engine, deployment, start, labelled, failed, wanted))
        ids = list(people)
    else:
        ids = _guarded(lambda: candidate_ids(engine, deployment, start, evaluator, failed, wanted))
    records = _guarded(lambda: read_logs(job, ids))
    if feedback is not None:
        records = [r for r in records if r.feedback == feedback]
    tags = ["from-production"] + ([f"failed:{evaluator}"] if failed and evaluator else [])
    tags += [f"feedback:{feedback}"] if feedback else []
    tags += [f"labelled:{labelled}"] if labelled else []
    tags += [f"people-failed:{labelled}"] if labelled and failed else []
    items = [as_item(r, deployment, keep_pii, tags) for r in records[:limit]]
    if people:  # what the person decided travels with the item
        items = [i.model_copy(update={"metadata": {**i.metadata, "human_label":
                 people[i.source_log_id or ""]}}) for i in items]  # fmt: skip
    added = _guarded(lambda: add_items(engine, name, items))
    console.print(
        f"{name}: {added.added:,} logs of {deployment} added, {added.revised:,} revised, "
        f"{added.unchanged:,} already there ({len(ids):,} candidates"
        + (f", {len(records):,} with feedback {feedback}" if feedback else "")
        + (")" if keep_pii else "; PII masked)")
    )


class TrainingFormat(StrEnum):
    openai_chat = "openai-chat"
    jsonl = "jsonl"
    csv = "csv"
    parquet = "parquet"


@app.command("export")
def export_training(
    deployment: Annotated[str, typer.Argument(help="The production deployment.")],
    out: Annotated[Path, typer.Option(help="File to write.")],
    since: Annotated[str, typer.Option(help="A duration back from now (30d) or ISO time.")] = (
        "30d"
    ),
    where: Annotated[
        str,
        typer.Option(
            help='Conditions, all required: "faithfulness passed, feedback positive". Logs '
            "that failed pii or secrets (or were not checked by pii) are never exported."
        ),
    ] = "",
    file_format: Annotated[
        TrainingFormat, typer.Option("--format", help="openai-chat is the fine-tuning JSONL.")
    ] = TrainingFormat.openai_chat,
    config: Annotated[Path | None, typer.Option(help="Job config of the deployment.")] = None,
) -> None:
    """Export production logs whose scores meet every condition as training data, streamed
    (constant memory), with what each condition excluded."""
    from datetime import UTC, datetime, timedelta

    from flows.cli.common import _load, _since, check_names
    from tasks.datasets.curate import read_logs
    from tasks.datasets.training import (
        ExportCounts,
        feedback_ok,
        kept_ids,
        parse_where,
        training_row,
    )
    from tasks.store.db import scores_engine
    from tasks.warehouse.connect import fitted_job

    check_names(deployment)
    job = _guarded(lambda: fitted_job(_load(deployment, config)))
    conditions = _guarded(lambda: parse_where(where, set(job.score_names())))
    now = datetime.now(UTC)
    start = _guarded(lambda: _since(since, now))
    counts = ExportCounts()
    writer = _TrainingWriter(out, file_format)

    def run() -> None:
        from collections import Counter

        feedback_missed: Counter[str] = Counter()
        with scores_engine().connect() as conn:
            for ids in kept_ids(conn, deployment, start, now + timedelta(seconds=1),
                                conditions, counts):  # fmt: skip
                for record in read_logs(job, ids):
                    if missed := feedback_ok(record, conditions):
                        feedback_missed[missed] += 1
                        continue
                    writer.write(training_row(record, file_format.value))
                    counts.exported += 1
        counts.excluded.update(feedback_missed)

    try:
        _guarded(run)
    finally:
        writer.close()
    console.print(f"exported {counts.exported:,} of {counts.candidates:,} scored logs of "
                  f"{deployment} to {out} ({file_format.value})")  # fmt: skip
    for reason, n in sorted(counts.excluded.items(), key=lambda kv: -kv[1]):
        console.print(f"  excluded {n:,}: {reason}")


class _TrainingWriter:
    """One row at a time to JSONL or CSV; Parquet in row groups of 1,000 (constant memory)."""

    def __init__(self, path: Path, fmt: "TrainingFormat") -> None:
        import csv

        self.fmt, self.path = fmt, path
        self.rows: list[dict[str, Any]] = []
        self.parquet: Any = None
        self.handle = None if fmt is TrainingFormat.parquet else path.open("w", encoding="utf-8")
        self.csv = (
            csv.DictWriter(self.handle, fieldnames=["id", "ts", "prompt", "context", "response",
                                                    "model", "prompt_slug", "feedback"])
            if fmt is TrainingFormat.csv and self.handle
            else None
        )  # fmt: skip
        if self.csv:
            self.csv.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        if self.csv is not None:
            self.csv.writerow(safe_cells({**row, "context": json.dumps(row.get("context", []))}))
        elif self.handle is not None:
            self.handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            self.rows.append({**row, "context": json.dumps(row.get("context", []))})
            if len(self.rows) >= 1000:
                self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(self.rows, schema=training_schema())
        if self.parquet is None:
            self.parquet = pq.ParquetWriter(self.path, table.schema)
        self.parquet.write_table(table)
        self.rows = []

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
        if self.fmt is TrainingFormat.parquet:
            if self.rows:
                self._flush()
            if self.parquet is not None:
                self.parquet.close()
