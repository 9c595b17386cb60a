"""Commands that run evaluations: run, backfill, estimate, quarantine (and replay), digest."""

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from evaluators import offline as _offline  # noqa: F401
from flows.cli.common import (
    ConfigOption,
    FormatOption,
    OutputFormat,
    _duration,
    _guarded,
    _load,
    _parse_ts,
    _print_unsent,
    app,
    check_names,
    console,
    did_you_mean,
    err_console,
    preflight,
    raise_usage,
)
from tasks.errors import ConfigError, RunStopped

#: After SIGTERM, how long a run may take to record its failure before the process exits anyway
#: (its temporary Prefect server may be gone, and Prefect's client would keep retrying it).
STOP_GRACE_S = 10.0


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
        from tasks.store.db import scores_engine
        from tasks.store.runs import mark_stopped

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


def run_flow(job: Any, until: datetime | None, kind: Literal["manual", "scheduled"]) -> Any:
    from flows.evaluate import evaluate_recent

    started = datetime.now(UTC)
    try:
        with console.status(f"evaluating {job.deployment} …", spinner="dots"):
            return asyncio.run(
                stoppable(evaluate_recent(job, until=until, kind=kind), job.deployment)
            )
    except Exception as exc:
        _name_the_run(exc, job.deployment, started)
        raise


def _name_the_run(exc: Exception, deployment: str, started: datetime) -> None:
    """A failed run's one error line ends with the run's id (`assay runs`, the UI, SQL)."""
    from tasks.store.db import scores_engine
    from tasks.store.runs import failed_run_since

    with contextlib.suppress(Exception):  # the error itself matters more than its run id
        run_id = failed_run_since(scores_engine(), deployment, started)
        if run_id and exc.args and isinstance(exc.args[0], str):
            exc.args = (f"{exc.args[0]} (run {run_id})", *exc.args[1:])


@app.command()
def run(
    deployment: Annotated[
        str, typer.Argument(help="Deployment name (its job file: NAME.yaml in deployments/jobs).")
    ],
    config: ConfigOption = None,
    until: Annotated[str | None, typer.Option(help="Read logs up to this time (ISO 8601).")] = None,
    output: FormatOption = OutputFormat.table,
    fail_on_breach: Annotated[
        bool,
        typer.Option("--fail-on-breach", help="Exit 3 when the run leaves an alert rule breached."),
    ] = False,
    from_server: Annotated[
        bool,
        typer.Option(
            "--from-server",
            help="Run with the deployment's parameters on the Prefect server (UI edits "
            "included) instead of the job file.",
        ),
    ] = False,
) -> None:
    """Run the hourly evaluation once, locally, and print its summary."""
    from flows.render import summary_renderable

    if from_server:
        from flows.deploy import job_from_server

        job = _guarded(lambda: job_from_server(deployment))
    else:
        job = _guarded(lambda: _load(deployment, config))
    read_until = _guarded(lambda: _parse_ts(until))
    preflight(job)
    summary = _guarded(lambda: run_flow(job, read_until, "manual"))
    if output is OutputFormat.json:
        print(summary.model_dump_json(indent=2))
    else:
        console.print(summary_renderable(summary, console.width))
        _print_unsent(summary)
    if fail_on_breach:
        breached = _guarded(lambda: _open_breaches(job.deployment))
        if breached:
            err_console.print(
                f"[bold red]gate:[/] {len(breached)} open breach(es): {', '.join(breached)}"
            )
            raise typer.Exit(3)


def _open_breaches(deployment: str) -> list[str]:
    from tasks.alerts.state import open_alerts
    from tasks.store.db import scores_engine

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
    every: Annotated[
        bool, typer.Option("--all", help="List every quarantined row (not only --limit).")
    ] = False,
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
    from tasks.contract.quarantine import list_quarantine, quarantine_counts
    from tasks.store.db import scores_engine

    if run_id is not None:
        _guarded(lambda: _check_uuid(run_id))
    check_names(deployment)
    if replay:
        if deployment is None:
            err_console.print("[bold red]usage error:[/] --replay needs a DEPLOYMENT")
            raise typer.Exit(2)
        _replay(deployment, run_id, config, output)
        return
    counts = _guarded(lambda: quarantine_counts(scores_engine(), deployment, run_id))
    wanted = max(counts.total, 1) if every else limit
    rows = _guarded(lambda: list_quarantine(scores_engine(), deployment, run_id, wanted))
    if output is OutputFormat.json:
        print(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
        return
    from flows.render import quarantine_counts_table, quarantine_table

    if counts.total:
        console.print(f"{counts.total:,} quarantined logs, by reason:")
        console.print(quarantine_counts_table(counts))
    console.print(quarantine_table(rows, deployment, counts.total))


def _check_uuid(value: str) -> None:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        raise ConfigError(f"--run {value!r} is not a run id (a UUID from eval_runs)") from None


def _replay(deployment: str, run_id: str | None, config: Path | None, output: OutputFormat) -> None:
    from flows.replay import replay_quarantine

    job = _guarded(lambda: _load(deployment, config))
    preflight(job)
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
    contract: Annotated[
        bool,
        typer.Option(
            "--contract",
            help="Check every log against the data contract, so logs it would quarantine are "
            "not counted; without it the first 500 logs are checked (saying whether the "
            "contract would stop a run) and the projection is an upper bound.",
        ),
    ] = False,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Logs in a window, the judge sample per evaluator and stratum, and its projected cost
    against the budgets. No judge is called."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from flows.render import estimate_renderable
    from tasks.run.estimate import estimate as project
    from tasks.store.db import scores_engine
    from tasks.store.runs import planned_window

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
                project(
                    job,
                    engine,
                    window_start,
                    window_end,
                    lambda n: progress.advance(bar, n),
                    contract,
                )
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
    from flows.digest import digest_preview
    from tasks.alerts.delivery import slack_configured
    from tasks.settings import get_settings

    job = _guarded(lambda: _load(deployment, config))
    if slack_configured(get_settings()):  # posting is flow work: it runs on Prefect
        from flows.digest import digest as digest_flow

        text = _guarded(lambda: asyncio.run(digest_flow(job, hours)))
    else:
        message = _guarded(lambda: digest_preview(job, hours))
        text = message.text if message else None
    console.print(text or f"no runs of {deployment} in the last {hours} h", markup=False)


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
    yes: Annotated[
        bool, typer.Option("--yes", help="Start even when the range makes over 10,000 chunks.")
    ] = False,
    config: ConfigOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Evaluate a past range (skipping logs already scored); the watermark is not moved. Says
    how many chunks it plans first, and asks for --yes above 10,000."""
    job = _guarded(lambda: _load(deployment, config))
    window = (_guarded(lambda: _parse_ts(start)), _guarded(lambda: _parse_ts(end)))
    step = _guarded(lambda: _duration(chunk))
    if window[0] is None or window[1] is None or window[0] >= window[1]:
        raise_usage(f"--start {start} is not before --end {end}")
    from flows.backfill import CONFIRM_CHUNKS, chunk_count

    chunks = _guarded(lambda: chunk_count(window[0], window[1], step))  # type: ignore[arg-type]
    if chunks > CONFIRM_CHUNKS and not yes:
        raise_usage(
            f"{window[0]:%Y-%m-%d %H:%M} to {window[1]:%Y-%m-%d %H:%M} in chunks of {chunk} is "
            f"{chunks:,} chunks, more than {CONFIRM_CHUNKS:,}: use a longer --chunk, or --yes"
        )
    err_console.print(f"{deployment}: {chunks:,} chunk(s) of {chunk}", highlight=False)
    configured = sorted(job.evaluator_aliases())  # the names the backfill flow accepts
    for name in evaluator or ():
        if name not in configured:
            raise_usage(f"{deployment} has no evaluator {name!r}{did_you_mean(name, configured)}")
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
    preflight(job)
    from flows.backfill import backfill as backfill_flow
    from flows.render import summary_renderable

    with console.status(f"backfilling {deployment} …", spinner="dots"):
        summary = _guarded(lambda: asyncio.run(backfill_flow(job, **params)))
    if output is OutputFormat.json:
        print(summary.model_dump_json(indent=2))
    else:
        console.print(summary_renderable(summary, console.width))


def _submit_backfill(job: Any, params: dict[str, Any], output: OutputFormat) -> None:
    from prefect.deployments.flow_runs import arun_deployment

    from flows.backfill import deployment_parameters
    from tasks.run.links import flow_run_link_for

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
