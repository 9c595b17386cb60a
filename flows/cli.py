"""The `assay` command line.

Exit codes: 0 ok (a run that completed, breaches or not), 1 failure, 2 usage or config error.
"""

import asyncio
import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, cast

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
    import sqlalchemy as sa

    try:
        return action()
    except sa.exc.ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) != "42P01":  # undefined table
            raise
        err_console.print(
            "[bold red]database error:[/] Assay's tables are missing or out of date in this "
            "database; run `assay migrate` (check ASSAY_DATABASE_URL points where you expect)"
        )
        raise typer.Exit(2) from None
    except sa.exc.OperationalError as exc:
        # The driver's first line names host and port, never the password.
        first_line = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
        err_console.print(f"[bold red]database unreachable:[/] {first_line}")
        raise typer.Exit(1) from None
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
def doctor(
    output: FormatOption = OutputFormat.table,
    config: Annotated[
        list[Path] | None,
        typer.Option(help="Job configs to check (default every deployments/jobs/*.yaml)."),
    ] = None,
) -> None:
    """Check everything a deployment needs: databases, warehouse columns and role, Prefect
    (API, scheduler, work pool and workers), judge prices, Slack, chromium. Exit 1 on failure."""
    from rich.table import Table

    from flows.doctor import run_checks
    from tasks.config import load_job

    paths = config or sorted(JOBS_DIR.glob("*.yaml"))
    jobs = [_guarded(partial(load_job, path)) for path in paths]
    checks = run_checks(jobs)
    if output is OutputFormat.json:
        print(json.dumps([c.model_dump() for c in checks], indent=2))
    else:
        marks = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[red]✗[/]"}
        table = Table(show_header=False, box=None, pad_edge=False)
        for check in checks:
            line = check.detail + (f"\n  [dim]fix:[/] {check.fix}" if check.fix else "")
            table.add_row(marks[check.status], check.name, line)
        console.print(table)
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(1)


@app.command()
def migrate() -> None:
    """Apply database migrations and views (idempotent; safe to run concurrently)."""
    from tasks.db import migrate as apply
    from tasks.db import scores_engine

    applied = _guarded(lambda: apply(scores_engine()))
    console.print(
        f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else "")
    )


#: After SIGTERM, how long a run may take to record its failure before the process exits anyway
#: (its temporary Prefect server may be gone, and Prefect's client would keep retrying it).
STOP_GRACE_S = 10.0


class RunStopped(AssayError):
    pass


async def stoppable(work: Any, deployment: str) -> Any:
    """Await `work`; SIGTERM or SIGINT cancels it (the run records itself as failed on the way
    out). A watchdog thread (the event loop may be blocked by a client retrying a server that
    is already gone) ends the process after STOP_GRACE_S, recording the run as stopped first."""
    import os
    import signal
    import threading

    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()

    def last_resort() -> None:
        from tasks.db import scores_engine
        from tasks.runs import mark_stopped

        with contextlib.suppress(Exception):
            mark_stopped(scores_engine(), deployment)
        os._exit(1)

    def stop(name: str) -> None:
        err_console.print(f"[bold red]{name}:[/] stopping the run (it is recorded as failed)")
        task.cancel()
        watchdog = threading.Timer(STOP_GRACE_S, last_resort)
        watchdog.daemon = True  # a run that ends in time exits without waiting for it
        watchdog.start()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig.name)
    try:
        return await task
    except asyncio.CancelledError:
        raise RunStopped("the run was stopped by a signal and is recorded as failed") from None


def _run_flow(job: Any, until: datetime | None, kind: Literal["manual", "scheduled"]) -> Any:
    from flows.evaluate import evaluate_recent

    with console.status(f"evaluating {job.deployment} …", spinner="dots"):
        return asyncio.run(stoppable(evaluate_recent(job, until=until, kind=kind), job.deployment))


@app.command()
def run(
    deployment: Annotated[
        str, typer.Argument(help="Deployment name (deployments/jobs/NAME.yaml).")
    ],
    config: ConfigOption = None,
    until: Annotated[str | None, typer.Option(help="Read logs up to this time (ISO 8601).")] = None,
    output: FormatOption = OutputFormat.table,
    fail_on_breach: Annotated[
        bool,
        typer.Option("--fail-on-breach", help="Exit 3 when the run leaves an alert rule breached."),
    ] = False,
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
    if fail_on_breach:
        breached = _guarded(lambda: _open_breaches(job.deployment))
        if breached:
            err_console.print(
                f"[bold red]gate:[/] {len(breached)} open breach(es): {', '.join(breached)}"
            )
            raise typer.Exit(3)


def _open_breaches(deployment: str) -> list[str]:
    from tasks.alerting import open_alerts
    from tasks.db import scores_engine

    with scores_engine().connect() as conn:
        rows = open_alerts(conn, deployment)
    return [f"{r.evaluator} {r.metric}" + (f" [{r.segment}]" if r.segment else "") for r in rows]


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
    console.print(
        "Next: `assay report support-bot --by model` for quality with intervals, usage and "
        "spend, or `assay dashboard --out assay.html` for charts you can open offline."
    )


def _duration(value: str) -> timedelta:
    """A duration the way job configs write them (`1h`, `7d`, ISO 8601)."""
    from pydantic import TypeAdapter, ValidationError

    from tasks.config import Duration

    try:
        return TypeAdapter(Duration).validate_python(value)
    except ValidationError:
        raise ConfigError(f"{value!r} is not a duration (e.g. 1h, 1d, PT6H)") from None


def _since(value: str, now: datetime) -> datetime:
    """An ISO timestamp, or a duration back from now (`7d`, `24h`)."""
    try:
        return now - _duration(value)
    except ConfigError:
        parsed = _parse_ts(value)
        assert parsed is not None
        return parsed


class ReportFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


SEGMENTS = ("all", "model", "provider", "prompt_slug", "topic", "customer_id", "environment")


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
    output: Annotated[
        ReportFormat, typer.Option("--format", help="table, json, or csv (evaluator rows).")
    ] = ReportFormat.table,
) -> None:
    """Quality per evaluator (pass rates and means with intervals, p5-p95, change against the
    previous window of the same length), usage and eval spend, from the hourly rollups."""
    import csv
    import sys

    from flows.render import report_renderable
    from tasks.db import scores_engine
    from tasks.report import By, ScoreStats, build_report
    from tasks.rollups import hour_ceil

    if by not in SEGMENTS:
        err_console.print(f"[bold red]usage error:[/] --by must be one of {', '.join(SEGMENTS)}")
        raise typer.Exit(2)
    now = datetime.now(UTC)
    end = _guarded(lambda: _parse_ts(until)) or hour_ceil(now + timedelta(microseconds=1))
    start = _guarded(lambda: _since(since, now))
    if start >= end:
        err_console.print(f"[bold red]usage error:[/] --since {start} is not before {end}")
        raise typer.Exit(2)
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
    if output is ReportFormat.json:
        print(result.model_dump_json(indent=2))
    elif output is ReportFormat.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(ScoreStats.model_fields))
        writer.writeheader()
        for row in result.evaluators:
            fields = row.model_dump(mode="json")
            fields["versions"] = ";".join(row.versions)
            writer.writerow(fields)
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
    from tasks.db import scores_engine

    now = datetime.now(UTC)
    start = _guarded(lambda: _since(since, now))
    with console.status("reading rollups …", spinner="dots"):
        size = _guarded(lambda: write_dashboard(scores_engine(), out, deployment, start, now))
    console.print(f"wrote {out} ({size / 1e6:.1f} MB); open it in any browser, offline")


@app.command()
def backfill(
    deployment: Annotated[str, typer.Argument(help="Deployment name.")],
    start: Annotated[str, typer.Option(help="First log time to evaluate (ISO 8601).")],
    end: Annotated[str, typer.Option(help="Evaluate logs before this time (ISO 8601).")],
    evaluator: Annotated[
        list[str] | None, typer.Option(help="Only this evaluator (repeat for more).")
    ] = None,
    budget_usd: Annotated[
        float | None, typer.Option(min=0, help="Judge spend cap for the whole backfill.")
    ] = None,
    chunk: Annotated[str, typer.Option(help="Chunk length (1h, 1d, ...).")] = "1d",
    max_parallel: Annotated[int, typer.Option(min=1, max=64, help="Chunks at once.")] = 2,
    submit: Annotated[
        bool,
        typer.Option(
            "--submit",
            help="Start it on the Prefect server (deployment NAME-backfill) for workers.",
        ),
    ] = False,
    config: ConfigOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Evaluate a past range (skipping logs already scored); the watermark is not moved."""
    job = _guarded(lambda: _load(deployment, config))
    window = (_guarded(lambda: _parse_ts(start)), _guarded(lambda: _parse_ts(end)))
    step = _guarded(lambda: _duration(chunk))
    params: dict[str, Any] = {
        "start": window[0],
        "end": window[1],
        "evaluators": evaluator or None,
        "budget_usd": budget_usd,
        "chunk": step,
        "max_parallel": max_parallel,
    }
    if submit:
        _submit_backfill(job, params, output)
        return
    from flows.backfill import backfill as backfill_flow
    from flows.render import summary_renderable

    with console.status(f"backfilling {deployment} …", spinner="dots"):
        summary = _guarded(lambda: asyncio.run(backfill_flow(job, **params)))
    if output is OutputFormat.json:
        print(summary.model_dump_json(indent=2))
    else:
        console.print(summary_renderable(summary))


def _submit_backfill(job: Any, params: dict[str, Any], output: OutputFormat) -> None:
    from prefect.deployments.flow_runs import arun_deployment

    from flows.backfill import deployment_parameters
    from flows.evaluate import flow_run_link_for

    name = f"backfill/{job.deployment}-backfill"
    parameters = deployment_parameters(
        job,
        (params["start"], params["end"]),
        params["evaluators"],
        params["budget_usd"],
        params["chunk"],
        params["max_parallel"],
    )
    try:
        run = asyncio.run(arun_deployment(name, parameters=parameters, timeout=0, as_subflow=False))
    except Exception as exc:
        err_console.print(
            f"[bold red]error:[/] could not start {name} on the Prefect server "
            f"({type(exc).__name__}: {exc}); is it registered (`assay deploy`)?"
        )
        raise typer.Exit(1) from None
    link = flow_run_link_for(str(run.id))
    if output is OutputFormat.json:
        print(json.dumps({"flow_run_id": str(run.id), "name": run.name, "url": link}))
    else:
        console.print(f"submitted {name}: flow run {run.name} ({run.id})")
        if link:
            console.print(link)


@app.command()
def deploy(
    prefect_file: Annotated[
        Path | None,
        typer.Option(help="Deploy this prefect.yaml instead of the one generated from the jobs."),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Compare the server's parameters with the job files, field by field; exit 3 "
            "on drift, 2 when a job has no deployment or the server's no longer validate.",
        ),
    ] = False,
    show: Annotated[
        bool, typer.Option("--print", help="Print the generated prefect.yaml and exit.")
    ] = False,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Register every job of deployments/jobs/ (hourly, and NAME-backfill) with the Prefect
    server, scheduled and pooled as deployments/deploy.yaml says (creating the process work
    pool if missing)."""
    from flows import deploy as deployer

    if show:
        print(_guarded(deployer.generated_prefect_yaml), end="")
        return
    if check:
        _check_deployments(output)
        return
    names = _guarded(lambda: deployer.deploy_all(prefect_file))
    console.print(f"registered {len(names)} deployment(s): {', '.join(names)}")
    console.print("start a worker: prefect worker start --pool assay-process")


def _check_deployments(output: OutputFormat) -> None:
    from rich.table import Table

    from flows import deploy as deployer

    result = _guarded(lambda: deployer.check_drift(deployer.read_jobs()))
    if output is OutputFormat.json:
        print(result.model_dump_json(indent=2))
    else:
        for problem in result.problems:
            err_console.print(f"[bold red]problem:[/] {problem}")
        if result.drift:
            table = Table("deployment", "field", "job file", "server", title="Drift")
            for d in result.drift:
                table.add_row(d.deployment, d.field, _short(d.in_files), _short(d.on_server))
            console.print(table)
        elif not result.problems:
            console.print("the server's deployments match the job files")
    if result.problems:
        raise typer.Exit(2)
    if result.drift:
        raise typer.Exit(3)


def _short(value: Any, width: int = 24) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


if __name__ == "__main__":
    app()
