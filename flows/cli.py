"""The `assay` command line.

Exit codes: 0 ok (a run that completed, breaches or not), 1 failure, 2 usage or config error.
"""

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
from rich.console import Console

from evaluators import offline as _offline  # noqa: F401
from tasks.errors import AssayError, ConfigError

app = typer.Typer(
    name="assay",
    help="Continuous, budget-safe evaluation of production LLM logs "
    "on Prefect, Postgres and Slack.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")

JOBS_DIR = Path("deployments/jobs")
DEMO_SIZES = {"support-bot": 5200, "search-rag": 900, "agent-otel": 600}


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


FormatOption = Annotated[OutputFormat, typer.Option("--format", help="Output format.")]
ConfigOption = Annotated[
    Path | None, typer.Option(help="Job config YAML (default deployments/jobs/NAME.yaml).")
]


def _guarded(action: Callable[[], T]) -> T:
    """Run `action`, turning Assay's errors into a clear message and the contract's exit code."""
    try:
        return action()
    except ConfigError as exc:
        err_console.print(f"[bold red]config error:[/] {exc}")
        raise typer.Exit(2) from None
    except AssayError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None


def _parse_ts(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"{value!r} is not an ISO 8601 timestamp (e.g. 2026-11-22T10:00Z)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _load(deployment: str, config: Path | None) -> Any:
    from tasks.config import load_job

    path = config or JOBS_DIR / f"{deployment}.yaml"
    if not path.exists():
        raise ConfigError(f"no job config for {deployment!r} at {path}; pass --config FILE")
    job = load_job(path)
    if job.deployment != deployment:
        raise ConfigError(f"{path} configures {job.deployment!r}, not {deployment!r}")
    return job


def _print_unsent(summary: Any) -> None:
    """Without Slack configured, show what would have been posted (the plain-text fallback)."""
    from rich.panel import Panel
    from rich.text import Text

    from tasks.notify import slack_configured
    from tasks.settings import get_settings

    if slack_configured(get_settings()) or not summary.notifications:
        return
    text = "\n\n".join(n["text"] for n in summary.notifications)
    console.print(
        Panel(Text(text), title="Slack is not configured; this run would have posted", expand=False)
    )


@app.command()
def migrate() -> None:
    """Apply database migrations and views (idempotent; safe to run concurrently)."""
    from tasks.db import migrate as apply
    from tasks.db import scores_engine

    applied = _guarded(lambda: apply(scores_engine()))
    console.print(
        f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else "")
    )


def _run_flow(job: Any, until: datetime | None, kind: Literal["manual", "scheduled"]) -> Any:
    from flows.evaluate import evaluate_recent

    with console.status(f"evaluating {job.deployment} …", spinner="dots"):
        return asyncio.run(evaluate_recent(job, until=until, kind=kind))


@app.command()
def run(
    deployment: Annotated[
        str, typer.Argument(help="Deployment name (deployments/jobs/NAME.yaml).")
    ],
    config: ConfigOption = None,
    until: Annotated[str | None, typer.Option(help="Read logs up to this time (ISO 8601).")] = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Run the hourly evaluation once, locally, and print its summary."""
    from flows.render import summary_renderable

    job = _guarded(lambda: _load(deployment, config))
    summary = _guarded(lambda: _run_flow(job, _parse_ts(until), "manual"))
    if output is OutputFormat.json:
        print(summary.model_dump_json(indent=2))
    else:
        console.print(summary_renderable(summary))
        _print_unsent(summary)


@app.command()
def quarantine(
    deployment: Annotated[
        str | None, typer.Argument(help="Deployment name (all deployments when omitted).")
    ] = None,
    run_id: Annotated[str | None, typer.Option("--run", help="Only rows from this run.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="Rows to list.")] = 50,
    replay: Annotated[
        bool,
        typer.Option(
            "--replay",
            help="Re-read the quarantined logs from the fixed source, re-check them, and score "
            "the ones that now pass (once).",
        ),
    ] = False,
    config: Annotated[Path | None, typer.Option(help="Job config YAML (for --replay).")] = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """List quarantined logs and why, or replay them after the source is fixed."""
    from tasks.db import scores_engine
    from tasks.quarantine import list_quarantine

    if run_id is not None:
        _guarded(lambda: _check_uuid(run_id))
    if replay:
        if deployment is None:
            err_console.print("[bold red]usage error:[/] --replay needs a DEPLOYMENT")
            raise typer.Exit(2)
        _replay(deployment, run_id, config, output)
        return
    rows = _guarded(lambda: list_quarantine(scores_engine(), deployment, run_id, limit))
    if output is OutputFormat.json:
        print(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
        return
    from flows.render import quarantine_table

    console.print(quarantine_table(rows))


def _check_uuid(value: str) -> None:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        raise ConfigError(f"--run {value!r} is not a run id (a UUID from eval_runs)") from None


def _replay(deployment: str, run_id: str | None, config: Path | None, output: OutputFormat) -> None:
    from flows.replay import replay_quarantine

    job = _guarded(lambda: _load(deployment, config))
    with console.status(f"replaying quarantined logs of {deployment} …", spinner="dots"):
        summary = _guarded(lambda: asyncio.run(replay_quarantine(job, run_id)))
    result = summary.details.get("replay", {})
    if output is OutputFormat.json:
        print(json.dumps(result, indent=2))
        return
    console.print(
        f"replayed {result.get('requested', 0):,} quarantined logs of {deployment}: "
        f"{result.get('readmitted', 0):,} now pass and were scored "
        f"({result.get('scores_written', 0):,} scores), "
        f"{result.get('still_invalid', 0):,} still invalid, "
        f"{result.get('missing_from_source', 0):,} no longer in the source"
    )


@app.command()
def estimate(
    deployment: Annotated[str, typer.Argument(help="Deployment name.")],
    start: Annotated[
        str | None, typer.Option(help="Window start (ISO 8601); default: the watermark.")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Window end (ISO 8601); default: now minus the lag.")
    ] = None,
    config: ConfigOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Logs in a window, the judge sample per evaluator and stratum, and its projected cost
    against the budgets. No judge is called."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from flows.render import estimate_renderable
    from tasks.db import scores_engine
    from tasks.estimate import estimate as project
    from tasks.runs import planned_window

    job = _guarded(lambda: _load(deployment, config))
    engine = _guarded(scores_engine)
    window_start, window_end = _guarded(
        lambda: planned_window(engine, job, _parse_ts(start), _parse_ts(end))
    )
    with Progress(
        TextColumn("reading logs"), BarColumn(), TextColumn("{task.completed:,} logs"),
        TimeElapsedColumn(), console=err_console, transient=True,
    ) as progress:  # fmt: skip
        bar = progress.add_task("read", total=None)
        result = _guarded(
            lambda: asyncio.run(
                project(job, engine, window_start, window_end, lambda n: progress.advance(bar, n))
            )
        )
    if output is OutputFormat.json:
        print(result.model_dump_json(indent=2))
    else:
        console.print(estimate_renderable(result))


@app.command()
def digest(
    deployment: Annotated[str, typer.Argument(help="Deployment name.")],
    hours: Annotated[int, typer.Option(min=1, max=24 * 31, help="Period to summarise.")] = 24,
    config: ConfigOption = None,
) -> None:
    """Post (or, without Slack, print) one summary of the deployment's last day."""
    from flows.digest import digest as digest_flow

    job = _guarded(lambda: _load(deployment, config))
    text = _guarded(lambda: asyncio.run(digest_flow(job, hours)))
    console.print(text or f"no runs of {deployment} in the last {hours} h", markup=False)


@app.command()
def evaluators(
    output: FormatOption = OutputFormat.table,
) -> None:
    """List registered evaluators with their versions and whether they cost money."""
    from rich.table import Table

    from evaluators.registry import all_evaluators

    rows = [
        {
            "name": name,
            "version": cls.version,
            "cost": cls.cost.value,
            "description": cls.describe(),
        }
        for name, cls in all_evaluators().items()
    ]
    if output is OutputFormat.json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="evaluators")
    for column in ("name", "version", "cost", "description"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row.values())
    console.print(table)


@app.command()
def demo(
    scale: Annotated[
        float, typer.Option(min=0.01, max=100, help="Multiply the demo's log counts.")
    ] = 1.0,
) -> None:
    """Seed a synthetic production warehouse and run every demo deployment once."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from flows.render import summary_renderable
    from tasks.db import migrate as apply
    from tasks.db import scores_engine
    from tasks.seed import seed_demo
    from tasks.settings import get_settings

    if get_settings().database_url is None:
        console.print(
            f"ASSAY_DATABASE_URL is not set: using an embedded Postgres in {get_settings().home}/"
        )
    engine = _guarded(scores_engine)
    _guarded(lambda: apply(engine))
    sizes = {name: max(10, int(n * scale)) for name, n in DEMO_SIZES.items()}
    with Progress(
        TextColumn("seeding warehouse"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console,
    ) as progress:  # fmt: skip
        bar = progress.add_task("seed", total=sum(sizes.values()))
        seeded = seed_demo(engine, datetime.now(UTC), sizes, lambda n: progress.advance(bar, n))
    console.print("seeded " + ", ".join(f"{n:,} rows in {table}" for table, n in seeded.items()))
    for deployment in DEMO_SIZES:
        job = _guarded(lambda d=deployment: _load(d, None))  # type: ignore[misc]
        summary = _guarded(lambda j=job: _run_flow(j, None, "manual"))  # type: ignore[misc]
        console.print(summary_renderable(summary))
        _print_unsent(summary)
    from flows.render import quarantine_table
    from tasks.quarantine import list_quarantine

    console.print(quarantine_table(_guarded(lambda: list_quarantine(engine, limit=8))))
    console.print(
        "Scores are in assay.scores; quarantined logs and reasons in assay.quarantine "
        "(`assay quarantine DEPLOYMENT`, and `--replay` once the source is fixed)."
    )
