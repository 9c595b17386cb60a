"""Commands that read results: evaluators, report, dashboard."""

import json
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, cast

import typer

from evaluators import offline as _offline  # noqa: F401
from flows.cli.common import (
    FormatOption,
    OutputFormat,
    _guarded,
    _parse_ts,
    _since,
    app,
    check_choice,
    check_names,
    console,
    err_console,
    raise_usage,
)


@app.command()
def evaluators(
    output: FormatOption = OutputFormat.table,
) -> None:
    """List registered evaluators with their versions and whether they cost money."""
    from evaluators.heuristics.unit_checks import unit_evaluators
    from evaluators.registry import all_evaluators
    from flows.render import columns, compact, keep_whole

    rows = [
        {
            "name": name,
            "unit": "log",
            "version": cls.version,
            "cost": cls.cost.value,
            "description": cls.describe(),
        }
        for name, cls in all_evaluators().items()
    ] + [
        {
            "name": name,
            "unit": unit_cls.unit,
            "version": unit_cls.version,
            "cost": unit_cls.cost.value,
            "description": unit_cls.describe(),
        }
        for name, unit_cls in sorted(unit_evaluators().items())
    ]
    if output is OutputFormat.json:
        print(json.dumps(rows, indent=2))
        return
    table = columns(compact("evaluators"), "name", "unit", "version", "cost", "description",
                    text=("description",))  # fmt: skip
    for row in rows:
        table.add_row(*row.values())
    console.print(keep_whole(table))


class ReportFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


SEGMENTS = ("all", "model", "provider", "prompt_slug", "topic", "customer_id", "environment")


#: Why `report --unit session|trace` can be empty, and what makes it fill.
UNIT_HINTS = {
    "session": "list session evaluators in the job (turn_count, repeated_question, "
    "conversation_resolved, user_frustration, session_rubric) and map session_id; a session "
    "is evaluated once complete (no new turn for sessions.idle, or an end marker)",
    "trace": "list trace evaluators in the job (tool_loop, tool_error_rate, step_limit, "
    "agent_goal_completed, tool_use_correct) and map trace_id; a trace is evaluated once "
    "complete (no new step for sessions.idle)",
}


def _unit_of(evaluator: str) -> str:
    from evaluators.heuristics.unit_checks import unit_evaluators

    found = unit_evaluators().get(evaluator.split(":", 1)[0])  # session_rubric:<id>
    return "log" if found is None else found.unit


@app.command()
def report(
    deployment: Annotated[
        str | None, typer.Argument(help="Deployment name (all deployments when omitted).")
    ] = None,
    since: Annotated[
        str, typer.Option(help="Start: ISO 8601 time or a duration back from now (7d, 24h).")
    ] = "7d",
    until: Annotated[
        str | None, typer.Option(help="End (ISO 8601); default: the end of this hour.")
    ] = None,
    by: Annotated[str, typer.Option(help=f"Slice by one segment: {', '.join(SEGMENTS)}.")] = "all",
    evaluator: Annotated[
        list[str] | None, typer.Option(help="Only this evaluator (repeat for more).")
    ] = None,
    confidence: Annotated[
        float, typer.Option(min=0.5, max=0.999, help="Confidence level of the intervals.")
    ] = 0.95,
    unit: Annotated[
        str, typer.Option(help="Only evaluators of this unit: all, log, session or trace.")
    ] = "all",
    output: Annotated[
        ReportFormat, typer.Option("--format", help="table, json, or csv (evaluator rows).")
    ] = ReportFormat.table,
) -> None:
    """Quality per evaluator (pass rates and means with intervals, p5-p95, change against the
    previous window of the same length), usage and eval spend, from the hourly rollups.
    Session and trace evaluators score whole units (`--unit session`)."""
    import csv
    import sys

    from flows.render import report_renderable
    from tasks.analytics.report import By, ScoreStats, build_report
    from tasks.store.db import scores_engine
    from tasks.store.rollups import hour_ceil

    check_choice("--by", by, SEGMENTS)
    check_choice("--unit", unit, ("all", "log", "session", "trace"))
    now = datetime.now(UTC)
    end = _guarded(lambda: _parse_ts(until)) or hour_ceil(now + timedelta(microseconds=1))
    start = _guarded(lambda: _since(since, now))
    if start >= end:
        raise_usage(f"--since {start:%Y-%m-%d %H:%M} is not before {end:%Y-%m-%d %H:%M}")
    check_names(deployment, evaluator or ())
    result = _guarded(
        lambda: build_report(
            scores_engine(),
            deployment,
            start,
            end,
            cast(By, by),
            evaluator or None,
            confidence,
        )
    )
    if unit != "all":
        result.evaluators = [e for e in result.evaluators if _unit_of(e.evaluator) == unit]
        if not result.evaluators and unit in UNIT_HINTS:
            err_console.print(f"no {unit} scores in this window: {UNIT_HINTS[unit]}")
    if output is ReportFormat.json:
        print(result.model_dump_json(indent=2))
    elif output is ReportFormat.csv:
        from tasks.datasets.items import escape_cell

        writer = csv.DictWriter(sys.stdout, fieldnames=list(ScoreStats.model_fields))
        writer.writeheader()
        for row in result.evaluators:
            fields = row.model_dump(mode="json")
            fields["versions"] = ";".join(row.versions)
            writer.writerow({k: escape_cell(v) for k, v in fields.items()})
    else:
        console.print(report_renderable(result, console.width))


@app.command()
def dashboard(
    out: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path(
        "assay-dashboard.html"
    ),
    deployment: Annotated[
        str | None, typer.Option(help="Only this deployment (default: all).")
    ] = None,
    since: Annotated[
        str, typer.Option(help="Start: ISO 8601 time or a duration back from now.")
    ] = "14d",
) -> None:
    """Write one self-contained HTML dashboard (charts and filters; opens with no network)."""
    from flows.dashboard import write_dashboard
    from tasks.store.db import scores_engine

    now = datetime.now(UTC)
    start = _guarded(lambda: _since(since, now))
    check_names(deployment)
    with console.status("reading rollups …", spinner="dots"):
        size = _guarded(lambda: write_dashboard(scores_engine(), out, deployment, start, now))
    console.print(f"wrote {out} ({size / 1e6:.1f} MB); open it in any browser, offline")
