"""Commands that operate Assay: migrate, deploy, doctor, demo."""

import json
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from evaluators import offline as _offline  # noqa: F401
from flows.cli.common import (
    DEMO_SIZES,
    JOBS_DIR,
    FormatOption,
    OutputFormat,
    _guarded,
    _load,
    _print_unsent,
    app,
    check_names,
    console,
    err_console,
    raise_usage,
)
from flows.cli.runs import run_flow


@app.command()
def doctor(
    output: FormatOption = OutputFormat.table,
    config: Annotated[
        list[Path] | None,
        typer.Option(help="Job configs to check (default: every YAML in deployments/jobs)."),
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
    from tasks.store.db import migrate as apply
    from tasks.store.db import scores_engine

    applied = _guarded(lambda: apply(scores_engine()))
    console.print(
        f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else "")
    )


@app.command()
def demo(
    scale: Annotated[
        float, typer.Option(min=0.01, max=100, help="Multiply the demo's log counts.")
    ] = 1.0,
    stop: Annotated[
        bool,
        typer.Option(
            "--stop", help="Stop the embedded Postgres the demo started (its data stays)."
        ),
    ] = False,
) -> None:
    """Seed a synthetic production warehouse and run every demo deployment once. The embedded
    Postgres it starts without ASSAY_DATABASE_URL keeps running for `assay report` and the
    dashboard; `assay demo --stop` stops it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from flows.render import summary_renderable
    from tasks.demo.seed import seed_demo
    from tasks.settings import get_settings
    from tasks.store.db import migrate as apply
    from tasks.store.db import scores_engine

    if stop:
        _stop_embedded()
        return
    if get_settings().database_url is None:
        console.print(
            f"ASSAY_DATABASE_URL is not set: using an embedded Postgres in {get_settings().home}/ "
            "(`assay demo --stop` stops it)"
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
        summary = _guarded(lambda j=job: run_flow(j, None, "manual"))  # type: ignore[misc]
        console.print(summary_renderable(summary, console.width))
        _print_unsent(summary)
    from flows.render import quarantine_table
    from tasks.contract.quarantine import list_quarantine

    console.print(quarantine_table(_guarded(lambda: list_quarantine(engine, limit=8))))
    console.print(
        "Scores are in assay.scores; quarantined logs and reasons in assay.quarantine "
        "(`assay quarantine DEPLOYMENT`, and `--replay` once the source is fixed)."
    )
    _golden_demo(engine)
    _labels_demo(engine)
    console.print(
        "Next: `assay report support-bot --by model` for quality with intervals, usage and "
        "spend, or `assay dashboard --out assay.html` for charts you can open offline."
    )


def _stop_embedded() -> None:
    from tasks.settings import get_settings
    from tasks.store.db import stop_embedded

    home = get_settings().home
    if _guarded(lambda: stop_embedded(home)):
        console.print(f"stopped the embedded Postgres in {home}/pgdata (its data stays)")
    else:
        uses = get_settings().has_database
        said = " (ASSAY_DATABASE_URL is set: the demo uses that database)" if uses else ""
        console.print(f"no embedded Postgres runs in {home}/pgdata{said}")


def _golden_demo(engine: Any) -> None:
    """A golden dataset (policy questions a person answered, plus production failures), two
    prompts of the bot checked on it (with and without the retrieved passages), and the
    comparison: what `assay check` does in CI."""
    import asyncio
    from datetime import timedelta

    from flows.check import evaluate_dataset
    from flows.cli.checks import _renderable, compare
    from tasks.config import load_job
    from tasks.datasets.curate import as_item, candidate_ids, read_logs
    from tasks.datasets.store import add_items, create_dataset
    from tasks.demo.golden import hand_written
    from tasks.experiments.request import CheckRequest
    from tasks.warehouse.connect import fitted_job

    name = "support-golden"
    create_dataset(engine, name, "demo: policy questions with answers, and production failures")
    job = _guarded(lambda: fitted_job(_load("support-bot", None)))
    since = datetime.now(UTC) - timedelta(days=3)
    failing = read_logs(job, candidate_ids(engine, "support-bot", since, "refusal", True, 6))
    curated = [as_item(r, "support-bot", False, ["from-production", "failed:refusal"])
               for r in failing]  # fmt: skip
    added = add_items(engine, name, hand_written() + curated)
    console.print(
        f"golden dataset {name}: {added.added + added.revised + added.unchanged} items "
        f"({len(hand_written())} written by hand, {len(curated)} curated from production)"
    )
    checks = _guarded(lambda: load_job(Path("deployments/checks/support-golden.yaml")))
    ids = []
    for variant in ("grounded", "bare"):
        prompt = f"prompt:deployments/prompts/support-{variant}.yaml"
        result = _guarded(
            lambda v=variant, p=prompt: asyncio.run(  # type: ignore[misc]
                evaluate_dataset(
                    CheckRequest(
                        job=checks, dataset=name, name=f"demo bot, {v} prompt", target_prompt=p
                    )
                )
            )
        )
        console.print(f"[bold]assay check {name} --target {prompt}[/]")
        console.print(_renderable(result))
        ids.append(result.experiment_id)
    console.print(f"[bold]assay compare {ids[0]} {ids[1]}[/]")
    compare(ids[0], ids[1], items=1, output=OutputFormat.table)


def _labels_demo(engine: Any) -> None:
    """Synthetic human labels for one judge, then what they say: agreement, and the judge's
    pass rate corrected by them."""
    from datetime import timedelta

    from flows.cli.labels import _print_agreement
    from tasks.analytics.report import build_report
    from tasks.demo.labels import synthetic_labels
    from tasks.labels.measure import agreements
    from tasks.labels.store import import_labels

    path = synthetic_labels(engine, "support-bot", "answer_relevance",
                            Path(".assay/demo-labels.jsonl"))  # fmt: skip
    done = import_labels(engine, path)
    console.print(f"[bold]assay labels import {path}[/]  ({done.imported} synthetic labels of "
                  "support-bot's answer_relevance judge)")  # fmt: skip
    with engine.connect() as conn:
        found = agreements(conn, "support-bot", "answer_relevance", weekly=False)
    console.print("[bold]assay agreement support-bot --evaluator answer_relevance[/]")
    _print_agreement(found, {})
    now = datetime.now(UTC)
    report = build_report(engine, "support-bot", now - timedelta(days=3), now,
                          evaluators=["answer_relevance"])  # fmt: skip
    for row in report.evaluators:
        if row.segment == "all" and row.human_labels and row.pass_rate is not None:
            console.print(
                f"answer_relevance: the judge says {row.pass_rate:.1%}; corrected by "
                f"{row.human_labels} human labels (prediction-powered): "
                f"{row.corrected_pass_rate:.1%} ({row.corrected_low:.1%}–"
                f"{row.corrected_high:.1%}). `assay report support-bot` shows it too."
            )


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
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            metavar="NAME",
            help="Deploy only this job (its hourly and backfill deployments) or check; repeatable.",
        ),
    ] = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Register every job of deployments/jobs/ (hourly, and NAME-backfill) with the Prefect
    server, scheduled and pooled as deployments/deploy.yaml says (creating the process work
    pool if missing). `--only NAME` deploys that job or check alone."""
    from flows import deploy as deployer

    if show:
        print(_guarded(deployer.generated_prefect_yaml), end="")
        return
    if check:
        _check_deployments(output)
        return
    if prefect_file is None:
        _refuse_missing_sources([j for j in _guarded(deployer.read_jobs)
                                 if not only or j.deployment in only])  # fmt: skip
    names = _guarded(lambda: deployer.deploy_all(prefect_file, only))
    console.print(f"registered {len(names)} deployment(s): {', '.join(names)}")
    console.print("start a worker: prefect worker start --pool assay-process")


def _refuse_missing_sources(jobs: list[Any]) -> None:
    """Exit 2 before anything is registered when a job's source table is not there."""
    from flows import deploy as deployer

    found = deployer.check_sources(jobs)
    for line in found.unchecked:
        err_console.print(f"[yellow]source not checked from here:[/] {line}")
    if found.missing:
        for line in found.missing:
            err_console.print(f"error: {line}")
        err_console.print("nothing was deployed (`--only NAME` deploys the jobs that can run)")
        raise typer.Exit(2)


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


@app.command()
def outbox(
    deployment: Annotated[
        str | None, typer.Argument(help="Only this deployment's messages.")
    ] = None,
    send: Annotated[
        bool, typer.Option("--send", help="Deliver what waits now (Slack must be configured).")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Messages to list.")] = 50,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Slack messages waiting to be sent (Slack not configured yet, or unreachable), oldest
    first; `--send` delivers them, in order."""
    from flows.render import columns, compact, keep_whole
    from tasks.alerts.delivery import deliver_pending, slack_configured
    from tasks.alerts.outbox import pending_messages
    from tasks.settings import get_settings
    from tasks.store.db import scores_engine

    check_names(deployment)
    engine = _guarded(scores_engine)
    if send:
        if not slack_configured(get_settings()):
            raise_usage("Slack is not configured: set ASSAY_SLACK_BOT_TOKEN (and a channel)")
        report = _guarded(lambda: deliver_pending(engine, get_settings()))
        if output is OutputFormat.json:
            print(report.model_dump_json())
        else:
            console.print(f"sent {report.sent:,}; {report.pending:,} still pending")
            if report.error:
                err_console.print(f"[bold red]delivery failed:[/] {report.error}")
        raise typer.Exit(1 if report.error else 0)
    waiting = _guarded(lambda: pending_messages(engine, deployment, limit))
    if output is OutputFormat.json:
        print(json.dumps([m.model_dump(mode="json") for m in waiting], indent=2))
        return
    table = columns(
        compact(f"outbox: {len(waiting)} pending (oldest first)"),
        "queued", "deployment", "kind", "tries", "message", text=("message",),
    )  # fmt: skip
    for m in waiting:
        first_line = m.text.splitlines()[0] if m.text else ""
        error = f"\n[last error] {m.last_error}" if m.last_error else ""
        table.add_row(
            f"{m.created_at:%m-%d %H:%M}", m.deployment, m.kind, str(m.attempts),
            Text(first_line + error),
        )  # fmt: skip
    console.print(keep_whole(table))
