"""What every `assay` command shares: the app, consoles, options, and error handling.

Exit codes: 0 ok (a run that completed, breaches or not), 1 failure, 2 usage or config error,
3 a gate the user asked for failed.
"""

import inspect
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from evaluators import offline as _offline  # noqa: F401
from tasks.errors import AssayError, ConfigError, did_you_mean


class _App(typer.Typer):
    """The Typer app, with one way out for an unexpected error: one redacted line, or with
    `--debug` (or ASSAY_DEBUG=1) the traceback, redacted too. Exit 1 either way."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except (SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:  # a bug or an unexpected failure: never a raw traceback
            crashed(exc)
            raise SystemExit(1) from None


def debugging() -> bool:
    import os
    import sys

    return "--debug" in sys.argv[1:] or os.environ.get("ASSAY_DEBUG") == "1"


def crashed(exc: BaseException) -> None:
    import traceback

    from tasks.redact import redact

    if debugging():
        text = "".join(traceback.format_exception(exc))
        err_console.print(redact(text), markup=False, highlight=False, soft_wrap=True)
        return
    first = (str(exc).strip().splitlines() or [""])[0][:500]
    report("error", f"{type(exc).__name__}: {first} (run with --debug for the traceback)")


def report(label: str, message: str) -> None:
    """One error line on stderr: the label in red, the message redacted and printed as text
    (a hostile name with `[markup]` or escape codes shows as what it is)."""
    from rich.text import Text

    from tasks.redact import redact

    safe = redact(message).encode("utf-8", "backslashreplace").decode("utf-8")
    safe = "".join(c if c.isprintable() or c in "\n\t" else f"\\x{ord(c):02x}" for c in safe)
    err_console.print(
        Text.assemble((f"{label}:", "bold red"), " ", safe), highlight=False, soft_wrap=True
    )


app = _App(
    name="assay",
    help="Continuous, budget-safe evaluation of production LLM logs "
    "on Prefect, Postgres and Slack.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

console = Console()


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"assay {version('assay')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="On an unexpected error, print the traceback.")
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", help="Also print Prefect's and Great Expectations' log lines."),
    ] = False,
) -> None:
    """Continuous, budget-safe evaluation of production LLM logs on Prefect, Postgres and Slack."""


err_console = Console(stderr=True)

T = TypeVar("T")

JOBS_DIR = Path("deployments/jobs")

DEMO_SIZES = {"support-bot": 5200, "search-rag": 900, "agent-otel": 600}


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


FormatOption = Annotated[OutputFormat, typer.Option("--format", help="Output format.")]

ConfigOption = Annotated[
    Path | None, typer.Option(help="Job config YAML (default: NAME.yaml in deployments/jobs).")
]


def _guarded(action: Callable[[], T]) -> T:
    """Run `action`, turning Assay's errors into a clear message and the contract's exit code."""
    import sqlalchemy as sa

    try:
        return action()
    except sa.exc.ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) != "42P01":  # undefined table
            raise
        report(
            "database error",
            "Assay's tables are missing or out of date in this database; run `assay migrate` "
            "(check ASSAY_DATABASE_URL points where you expect)",
        )
        raise typer.Exit(2) from None
    except sa.exc.OperationalError as exc:
        # The driver's first line names host and port; redacted all the same.
        first_line = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
        report("database unreachable", first_line)
        raise typer.Exit(1) from None
    except ConfigError as exc:
        report("config error", str(exc))
        raise typer.Exit(2) from None
    except AssayError as exc:
        report("error", str(exc))
        raise typer.Exit(1) from None


def _parse_ts(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"{value!r} is not a time; use ISO 8601: 2026-11-22, 2026-11-22T10:00, "
            "2026-11-22T10:00Z or 2026-11-22T10:00+01:00 (no zone means UTC)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _load(deployment: str, config: Path | None) -> Any:
    from tasks.config import load_job

    path = config or JOBS_DIR / f"{deployment}.yaml"
    if not path.exists():
        hint = "" if config else did_you_mean(deployment, (p.stem for p in JOBS_DIR.glob("*.yaml")))
        raise ConfigError(
            f"no job config for {deployment!r} at {path}{hint}; pass --config FILE, "
            f"or create one with `assay init {deployment} --table SCHEMA.TABLE`"
        )
    job = load_job(path)
    if job.deployment != deployment:
        raise ConfigError(f"{path} configures {job.deployment!r}, not {deployment!r}")
    return job


def preflight(job: Any) -> None:
    """Check the source's columns against the job before a flow (and a Prefect server) starts:
    a missing column is a config error here, not a traceback from inside the run."""
    from tasks.warehouse.connect import fitted_job

    _guarded(lambda: fitted_job(job))


def _print_unsent(summary: Any) -> None:
    """Without Slack configured, show what would have been posted (the plain-text fallback)."""
    from rich.panel import Panel
    from rich.text import Text

    from tasks.alerts.delivery import slack_configured
    from tasks.settings import get_settings

    if slack_configured(get_settings()) or not summary.notifications:
        return
    text = "\n\n".join(n["text"] for n in summary.notifications)
    console.print(
        Panel(
            Text(text),
            title="Slack is not configured: queued in the outbox, sent once it is",
            subtitle="`assay outbox` lists what waits",
            expand=False,
        )
    )


def _duration(value: str) -> timedelta:
    """A duration the way job configs write them (`1h`, `7d`, ISO 8601)."""
    from pydantic import TypeAdapter, ValidationError

    from tasks.config import Duration

    try:
        return TypeAdapter(Duration).validate_python(value)
    except ValidationError:
        raise ConfigError(
            f"{value!r} is not a duration; use a number and a unit (30m, 1h, 1d, 2w) or ISO 8601 "
            "(PT6H, P1D)"
        ) from None


def _since(value: str, now: datetime) -> datetime:
    """An ISO timestamp, or a duration back from now (`7d`, `24h`)."""
    try:
        return now - _duration(value)
    except ConfigError:
        pass
    try:
        parsed = _parse_ts(value)
    except ConfigError:
        raise ConfigError(
            f"{value!r} is neither a duration back from now (30m, 24h, 7d, P2W) nor an ISO 8601 "
            "time (2026-11-22 or 2026-11-22T10:00Z)"
        ) from None
    assert parsed is not None
    return parsed


# -- names checked before anything heavy starts ----------------------------------------------------


def _names_with_results() -> dict[str, set[str]]:
    """Deployments and evaluators that have results in the scores database."""
    import sqlalchemy as sa

    from tasks.store.db import scores_engine
    from tasks.store.sql import query

    names: dict[str, set[str]] = {"deployment": set(), "evaluator": set()}
    with scores_engine().connect() as conn:
        for kind, name in conn.execute(sa.text(query("analytics", "known_names"))):
            names[kind].add(name)
    return names


def check_names(deployment: str | None, evaluators: Iterable[str] = ()) -> None:
    """Exit 2 with "did you mean" for a deployment or evaluator that neither a job file nor the
    scores table knows (a typo would otherwise print empty results and exit 0)."""
    if deployment is None and not evaluators:
        return
    from evaluators.registry import all_evaluators

    with_results = _guarded(_names_with_results)
    jobs = {path.stem for path in JOBS_DIR.glob("*.yaml")}
    deployments = jobs | with_results["deployment"]
    if deployment is not None and deployment not in deployments:
        raise_usage(f"unknown deployment {deployment!r}{did_you_mean(deployment, deployments)}")
    from evaluators.heuristics.unit_checks import unit_evaluators

    names = set(all_evaluators()) | set(unit_evaluators()) | with_results["evaluator"]
    for name in evaluators:
        if name not in names:
            raise_usage(f"unknown evaluator {name!r}{did_you_mean(name, names)}")


def check_choice(option: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        hint = did_you_mean(value, choices)
        raise_usage(f"{option} {value!r} is not one of {', '.join(choices)}{hint}")


def field_pairs(
    pairs: Iterable[str], fields: Sequence[str], what: str, example: str
) -> dict[str, str]:
    """`--map FIELD=COLUMN` options as a mapping; a malformed pair or an unknown field is a
    usage error with "did you mean"."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        field, sep, column = pair.partition("=")
        if not sep or not column:
            raise_usage(f"--map {pair!r}: use FIELD=COLUMN, e.g. --map {example}")
        if field not in fields:
            raise_usage(f"--map: {field!r} is not {what}{did_you_mean(field, fields)}")
        mapping[field] = column
    return mapping


def raise_usage(message: str) -> NoReturn:
    report("usage error", message)
    raise typer.Exit(2)


def reflowed(doc: str | None) -> str | None:
    """A docstring as help the terminal can wrap: single line breaks inside a paragraph become
    spaces (the source wraps at 100 columns, the terminal may be 80 or 200)."""
    if not doc:
        return doc
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def tidy_help(typer_app: typer.Typer) -> None:
    """Every command's help reflowed by the terminal, not by the source's line breaks."""
    for command in typer_app.registered_commands:
        doc = command.help or inspect.getdoc(command.callback)
        command.help = reflowed(doc)
        if command.help:
            command.short_help = command.help.split("\n\n", 1)[0]
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            tidy_help(group.typer_instance)


def _no_metavar_for_flags() -> None:
    """A flag takes no value, so its help shows none (typer 0.29 with click 8.5 prints
    `<bool>` beside every flag)."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag or self.count else shown(self, ctx)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_no_metavar_for_flags()


def _whole_option_names() -> None:
    """Option names whole at 80 columns: typer's options table lets rich shorten every column
    alike, which cut `--oversample-uncertain` to `--oversample-uncerta…`; the name columns
    (all but the type and help columns) keep their width, and the help text wraps instead."""
    import rich.table
    import typer.rich_utils

    class OptionsTable(rich.table.Table):
        def add_row(self, *renderables: Any, **options: Any) -> None:
            super().add_row(*renderables, **options)
            for column in self.columns[:-2]:
                widest = max((len(getattr(c, "plain", str(c))) for c in column._cells), default=0)
                column.no_wrap = True
                column.min_width = max(column.min_width or 0, widest)

    typer.rich_utils.Table = OptionsTable  # type: ignore[misc]


_whole_option_names()
