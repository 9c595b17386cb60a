"""`assay init`: point Assay at your own table in one step."""

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flows.cli.common import (
    JOBS_DIR,
    FormatOption,
    OutputFormat,
    _guarded,
    app,
    console,
    err_console,
    field_pairs,
    raise_usage,
)
from tasks.errors import ConfigError


@app.command()
def init(
    deployment: Annotated[str, typer.Argument(help="Name of the new deployment.")],
    table: Annotated[
        str | None, typer.Option(help="The log table: `table` or `schema.table`.")
    ] = None,
    query: Annotated[str | None, typer.Option(help="A SELECT to read instead of a table.")] = None,
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="FIELD=COLUMN, where the guess is wrong (repeat)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Where to write (default: NAME.yaml in deployments/jobs).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the mapping and the file; write nothing.")
    ] = False,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Inspect your log table's columns, propose a mapping to Assay's fields, and write a
    commented job file with the free evaluators on (exit 2 when required fields are missing)."""
    from tasks.config import SourceConfig, load_job
    from tasks.warehouse.connect import source_engine
    from tasks.warehouse.jobfile import job_yaml
    from tasks.warehouse.mapping import MEANINGS, propose
    from tasks.warehouse.source import source_columns

    if (table is None) == (query is None):
        raise_usage("give exactly one of --table SCHEMA.TABLE or --query 'SELECT ...'")
    _guarded(lambda: _check_name(deployment))
    path = out or JOBS_DIR / f"{deployment}.yaml"
    if path.exists() and not force and not dry_run:
        raise_usage(f"{path} exists; pass --force to overwrite it, or --out FILE")
    from tasks.warehouse.mapping import SYNONYMS

    named = field_pairs(map_ or [], list(SYNONYMS), "a canonical field", "prompt=user_input")

    def inspect() -> dict[str, str]:
        try:
            # Only the location matters here; the mapping is what init is about to propose.
            source = SourceConfig(table=table, query=query, columns={"prompt": "prompt"})
        except ValueError as exc:
            raise ConfigError(str(exc).splitlines()[-1]) from None
        with source_engine(source).connect() as conn:
            return source_columns(conn, source)

    columns = _guarded(inspect)
    where = table or "the query"
    if not columns:
        err_console.print(
            f"[bold red]config error:[/] {where} does not exist, or this role cannot read it "
            "(check the name and ASSAY_WAREHOUSE_URL)"
        )
        raise typer.Exit(2)
    unknown = [f"{f}={c}" for f, c in named.items() if c not in columns]
    if unknown:
        raise_usage(f"--map names columns {where} does not have: {', '.join(unknown)}")
    proposal = propose(columns, named)
    text = job_yaml(deployment, table, query, proposal)
    if output is OutputFormat.json:
        print(json.dumps({**proposal.model_dump(), "path": str(path), "written": False}))
    else:
        _show(proposal, MEANINGS, where)
    if proposal.missing_required:
        fields = ", ".join(proposal.missing_required)
        err_console.print(
            f"[bold red]cannot map required field(s):[/] {fields}. Name the columns with "
            + " ".join(f"--map {f}=COLUMN" for f in proposal.missing_required)
            + " (or read through --query with aliases); nothing written."
        )
        raise typer.Exit(2)
    if dry_run:
        console.print(text, markup=False, highlight=False)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    _guarded(lambda: load_job(path))  # what init writes must load as it is
    console.print(f"wrote {path}")
    console.print(
        f"next: `assay estimate {deployment}` (what a run would read and cost), then "
        f"`assay run {deployment}`"
    )


def _check_name(deployment: str) -> None:
    import re

    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", deployment):
        raise ConfigError(
            f"deployment name {deployment!r}: use lower-case letters, digits, - and _ "
            "(it names files, Prefect deployments and rows)"
        )


SHORT_TYPES = {
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp",
    "character varying": "varchar",
    "double precision": "float8",
}


def _show(proposal: object, meanings: dict[str, str], where: str) -> None:
    from tasks.warehouse.mapping import Proposal

    assert isinstance(proposal, Proposal)
    table = Table(title=f"{where}: proposed mapping", title_justify="left")
    table.add_column("field", no_wrap=True)
    table.add_column("column", overflow="fold")
    table.add_column("type", overflow="fold")
    table.add_column("meaning", overflow="fold")
    for field, meaning in meanings.items():
        column = proposal.mapping.get(field)
        if column is not None:
            table.add_row(
                field,
                column,
                SHORT_TYPES.get(proposal.types[column], proposal.types[column]),
                meaning,
            )
        elif field in proposal.missing_required:
            table.add_row(field, "[red]none (required)[/]", "", meaning)
    console.print(table)
    if proposal.unmapped_columns:
        console.print("unmapped columns (ignored): " + ", ".join(proposal.unmapped_columns))
    for field, why in proposal.type_mismatches.items():
        console.print(f"[yellow]not mapped:[/] {field}: {why} has the wrong type")
    for column, why in proposal.unusable_columns.items():
        console.print(f"[yellow]not mappable:[/] {column!r}: {why}")
    left_out = [f for f in meanings if f not in proposal.mapping]
    if left_out:
        console.print("left out (no column): " + ", ".join(left_out))
