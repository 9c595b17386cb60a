"""Terminal rendering of run summaries and evaluator lists (rich)."""

from rich.console import Group
from rich.table import Table

from tasks.runs import RunSummary


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def summary_renderable(summary: RunSummary) -> Group:
    window = (
        f"{summary.window_start:%Y-%m-%d %H:%M} → {summary.window_end:%Y-%m-%d %H:%M} UTC"
        if summary.window_start
        else f"→ {summary.window_end:%Y-%m-%d %H:%M} UTC"
    )
    counts = Table(title=f"{summary.deployment} · run {summary.run_id[:8]} · {summary.status}")
    for column in ("window", "pulled", "normalized", "quarantined", "new scores", "errors"):
        counts.add_column(column, justify="right" if column != "window" else "left")
    counts.add_row(
        window,
        f"{summary.pulled:,}",
        f"{summary.normalized:,}",
        f"{summary.quarantined:,}",
        f"{summary.scored:,}",
        f"{summary.errors:,}",
    )
    per_evaluator = Table(title="evaluators")
    for column in ("evaluator", "version", "scored", "pass rate", "failed", "skipped", "errors"):
        per_evaluator.add_column(column, justify="left" if column == "evaluator" else "right")
    for result in summary.evaluators:
        per_evaluator.add_row(
            result.evaluator,
            result.evaluator_version,
            f"{result.ok:,}",
            _pct(result.pass_rate),
            f"{result.ok - result.passed:,}",
            f"{result.skipped:,}",
            f"{result.errors:,}",
        )
    parts: list[Table] = [counts, per_evaluator] if summary.evaluators else [counts]
    return Group(*parts)
