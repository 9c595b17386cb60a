"""`assay doctor`: every dependency a deployment needs, checked, one line and one fix each.

Each check is a small function returning `Check`s; none raises (a check that cannot run is a
failed check saying why). The CLI renders them and exits 1 when any failed.
"""

import asyncio
import os
import shutil
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from tasks.redact import redact
from tasks.store.sql import query

Status = Literal["ok", "warn", "fail"]


class Check(BaseModel):
    name: str
    status: Status
    detail: str
    fix: str | None = None


def ok(name: str, detail: str) -> Check:
    return Check(name=name, status="ok", detail=redact(detail))


def problem(name: str, detail: str, fix: str, status: Status = "fail") -> Check:
    return Check(name=name, status=status, detail=redact(detail), fix=redact(fix))


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- the installed set --------------------------------------------------------------------------
def installed_stack() -> list[Check]:
    """prefect 3.8.8's scheduler silently fails with SQLAlchemy 2.1: no scheduled run is ever
    created. This pair is what broke the hourly promise once; it is checked by name."""
    prefect, sqlalchemy = version("prefect"), version("sqlalchemy")
    pair = f"prefect {prefect} with SQLAlchemy {sqlalchemy}"
    if prefect.startswith("3.8.") and not sqlalchemy.startswith("2.0."):
        return [
            problem(
                "installed stack",
                f"{pair}: the server's scheduler fails every minute (bulk DML error) and "
                "creates no scheduled runs",
                "pip install 'sqlalchemy>=2.0.30,<2.1' (Assay's pins), then restart the server",
            )
        ]
    return [ok("installed stack", pair)]


# -- databases ------------------------------------------------------------------------------------
def scores_database() -> list[Check]:
    import sqlalchemy as sa

    from tasks.store.db import edited_migrations, scores_engine
    from tasks.store.sql import migration_files

    name = "scores database"
    try:
        with scores_engine().connect() as conn:
            rows = conn.execute(sa.text(query("migrate", "applied_migrations"))).all()
            applied = {row.name: row.checksum for row in rows}
    except sa.exc.ProgrammingError:
        return [problem(name, "reachable, but Assay's tables are missing", "run `assay migrate`")]
    except Exception as exc:
        return [problem(name, f"unreachable: {_first_line(exc)}", "check ASSAY_DATABASE_URL")]
    if edited := edited_migrations(applied):
        return [problem(name, f"sql/migrations/{edited[0]} changed after it was applied",
                        "restore the file; put the change in a new migration")]  # fmt: skip
    pending = [p.name for p in migration_files() if p.name not in applied]
    if pending:
        return [problem(name, f"{len(pending)} migration(s) pending", "run `assay migrate`")]
    return [ok(name, f"reachable, {len(applied)} migrations applied")]


def warehouse(jobs: list[Any]) -> list[Check]:
    """Each job's source: reachable, every mapped column present, and the user read-only."""
    from tasks.errors import ConfigError
    from tasks.warehouse.connect import source_engine
    from tasks.warehouse.source import missing_table, source_columns

    checks: list[Check] = []
    for job in jobs:
        name = f"warehouse ({job.deployment})"
        source = job.source
        try:
            with source_engine(source).connect() as conn:
                columns = source_columns(conn, source)
                writable = _can_write(conn, source)
                conn.rollback()
        except Exception as exc:
            checks.append(
                problem(name, f"unreachable: {_first_line(exc)}", "check the warehouse URL")
            )
            continue
        if absent := missing_table(job.deployment, source, columns):
            checks.append(problem(name, *absent))
            continue
        try:
            fitted = source.fitted(columns)
        except ConfigError as exc:
            fix = "map them under source.columns, or drop a field with `FIELD: null`"
            checks.append(problem(name, str(exc).split(". Map each")[0], fix))
        else:
            mapped = fitted.column_mapping()
            checks.append(ok(name, f"reachable, {len(mapped)} mapped columns present"))
        if writable:
            checks.append(
                problem(
                    f"warehouse role ({job.deployment})",
                    f"the warehouse user can {writable}",
                    "give Assay a read-only role (docs/security.md)",
                    status="warn",
                )
            )
    return checks


def _can_write(conn: Any, source: Any) -> str | None:
    import sqlalchemy as sa

    superuser = conn.execute(sa.text(query("doctor", "is_superuser"))).scalar()
    if superuser:
        return "do anything (it is a superuser)"
    if source.table is None:
        return None
    writes = conn.execute(
        sa.text(query("doctor", "can_write_table")), {"table": source.table}
    ).scalar()
    return f"write to {source.table}" if writes else None


# -- Prefect --------------------------------------------------------------------------------------
POOL = "assay-process"


async def _prefect(pool: str) -> list[Check]:
    from datetime import UTC, datetime, timedelta

    from prefect import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.exceptions import ObjectNotFound

    checks: list[Check] = []
    async with get_client() as client:
        healthy = await client.api_healthcheck()
        if healthy is not None:
            return [problem("prefect api", _first_line(healthy), "start `prefect server start`")]
        checks.append(ok("prefect api", f"reachable at {client.api_url}"))
        scheduled = FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
        )
        deployments = await client.read_deployments()
        silent = []
        for deployment in deployments:
            active = [s for s in deployment.schedules if s.active]
            if not active or deployment.paused:
                continue
            age = datetime.now(UTC) - (deployment.created or datetime.now(UTC))
            runs = await client.read_flow_runs(
                flow_run_filter=scheduled,
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                limit=1,
            )
            if not runs and age > timedelta(minutes=2):
                silent.append(deployment.name)
        if silent:
            checks.append(
                problem(
                    "prefect scheduler",
                    f"no scheduled runs for {', '.join(silent)} although their schedules are on",
                    "check the server log for scheduler errors (and `assay doctor`'s stack line)",
                )
            )
        else:
            checks.append(ok("prefect scheduler", "every active schedule has runs queued"))
        try:
            await client.read_work_pool(pool)
        except ObjectNotFound:
            checks.append(problem("work pool", f"{pool} does not exist", "run `assay deploy`"))
            return checks
        workers = await client.read_workers_for_work_pool(pool)
        online = [w for w in workers if str(getattr(w, "status", "")).upper().endswith("ONLINE")]
        if online:
            checks.append(ok("work pool", f"{pool}: {len(online)} worker(s) polling"))
        else:
            checks.append(
                problem(
                    "work pool",
                    f"{pool}: no worker polling",
                    f"start one: prefect worker start --pool {pool}",
                )
            )
    return checks


def prefect_server(pool: str = POOL) -> list[Check]:
    if not os.environ.get("PREFECT_API_URL"):
        return [
            problem(
                "prefect api",
                "PREFECT_API_URL is not set: runs use a temporary local server, and nothing "
                "runs on a schedule",
                "start `prefect server start` and export PREFECT_API_URL",
                status="warn",
            )
        ]
    try:
        return asyncio.run(_prefect(pool))
    except Exception as exc:
        return [problem("prefect api", f"unusable: {_first_line(exc)}", "check PREFECT_API_URL")]


# -- judges, Slack, browser -----------------------------------------------------------------------
def judge_prices(jobs: list[Any]) -> list[Check]:
    from evaluators.judges.pricing import price_for
    from tasks.config import build_evaluators
    from tasks.run.judging import judge_models

    checks = []
    for job in jobs:
        models = judge_models(build_evaluators(job))
        unpriced = [m for m in models if price_for(m, job.budget.prices) is None]
        name = f"judge prices ({job.deployment})"
        if unpriced:
            checks.append(
                problem(name, f"no price for {', '.join(unpriced)}", "set budget.prices for them")
            )
        elif models:
            checks.append(ok(name, f"{len(models)} judge model(s) priced"))
    return checks


def slack() -> list[Check]:
    from tasks.secrets import resolve
    from tasks.settings import get_settings

    settings = get_settings()
    if settings.slack_bot_token is not None:
        from slack_sdk import WebClient

        client = WebClient(
            token=resolve(settings.slack_bot_token.get_secret_value()),
            base_url=settings.slack_base_url,
            timeout=10,
        )
        try:
            answer = client.auth_test()
        except Exception as exc:
            error = getattr(getattr(exc, "response", None), "get", lambda _k: None)("error")
            return [
                problem(
                    "slack",
                    f"auth.test failed: {error or _first_line(exc)}",
                    "check ASSAY_SLACK_BOT_TOKEN (and ASSAY_SLACK_BASE_URL)",
                )
            ]
        return [
            ok("slack", f"bot token valid (team {answer.get('team')}, as {answer.get('user')})")
        ]
    if settings.slack_webhook_url is not None:
        return [ok("slack", "webhook configured (not verified: a test would post a message)")]
    return [
        problem(
            "slack",
            "not configured: runs print what they would have posted",
            "set ASSAY_SLACK_BOT_TOKEN and ASSAY_SLACK_CHANNEL, or ASSAY_SLACK_WEBHOOK_URL",
            status="warn",
        )
    ]


def chromium() -> list[Check]:
    for candidate in (os.environ.get("ASSAY_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and Path(candidate).exists():
            return [ok("chromium", candidate)]
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return [ok("chromium", found)]
    return [
        problem(
            "chromium",
            "not found: the dashboard test and browser checks need it",
            "apt-get install chromium (or set ASSAY_CHROMIUM)",
            status="warn",
        )
    ]


def run_checks(jobs: list[Any]) -> list[Check]:
    steps: list[Callable[[], list[Check]]] = [
        installed_stack,
        scores_database,
        lambda: warehouse(jobs),
        prefect_server,
        lambda: judge_prices(jobs),
        slack,
        chromium,
    ]
    checks: list[Check] = []
    for step in steps:
        try:
            checks += step()
        except Exception as exc:  # a check that cannot run is a failed check, never a crash
            checks.append(problem(step.__name__, _first_line(exc), "run with --debug"))
    return checks
