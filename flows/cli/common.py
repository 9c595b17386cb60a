"""What every `assay` command shares: the app, consoles, options, and error handling.

Exit codes: 0 ok (a run that completed, breaches or not), 1 failure, 2 usage or config error,
3 a gate the user asked for failed.
"""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

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

    from tasks.alerts.notify import slack_configured
    from tasks.settings import get_settings

    if slack_configured(get_settings()) or not summary.notifications:
        return
    text = "\n\n".join(n["text"] for n in summary.notifications)
    console.print(
        Panel(Text(text), title="Slack is not configured; this run would have posted", expand=False)
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
