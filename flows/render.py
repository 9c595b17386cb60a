"""Terminal rendering of run summaries and evaluator lists (rich)."""

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from tasks.budget.estimate import Estimate
from tasks.contract.quarantine import QuarantinedLog
from tasks.store.runs import RunSummary


def pct(value: float | None) -> str:
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
    columns = ("evaluator", "version", "scored", "pass rate", "mean", "failed", "skipped", "errors")
    for column in (*columns, "cost"):
        per_evaluator.add_column(column, justify="left" if column == "evaluator" else "right")
    for result in summary.evaluators:
        per_evaluator.add_row(
            result.evaluator + ("*" if _stand_in(result.judge_models) else ""),
            result.evaluator_version,
            f"{result.ok:,}",
            pct(result.pass_rate),
            "-" if result.mean_score is None else f"{result.mean_score:.3f}",
            f"{result.ok - result.passed:,}",
            f"{result.skipped:,}",
            f"{result.errors:,}",
            _cost(result.cost_usd, result.unknown_cost) if result.judge_models else "free",
        )
    parts: list[Table | Text] = [counts, per_evaluator] if summary.evaluators else [counts]
    if line := contract_line(summary.details.get("contract") or {}):
        parts.append(line)
    if line := budget_line(summary.details):
        parts.append(line)
    judges = summary.details.get("judges") or {}
    if judges:
        parts.append(judge_health(judges))
    if any(model.startswith("local/") for model in judges):
        parts.append(Text(STAND_IN_NOTE, style="yellow"))
    return Group(*parts)


STAND_IN_NOTE = (
    "* judged by local/heuristic: a heuristic stand-in for an LLM judge (lexical overlap and "
    "word lists), not a model. Point the judges at a real provider for real verdicts (README)."
)


def _stand_in(models: str | None) -> bool:
    return bool(models) and any(m.startswith("local/") for m in (models or "").split(", "))


def _cost(cost: float, unknown: int) -> str:
    text = f"${cost:,.4f}"
    return f"{text} + {unknown:,} unknown" if unknown else text


def judge_health(judges: dict[str, dict[str, Any]]) -> Table:
    table = Table(title="judge models")
    for column in (
        "model",
        "calls",
        "failed",
        "retries",
        "429s",
        "bad verdicts",
        "fallback",
        "cost",
    ):
        table.add_column(column, justify="left" if column == "model" else "right")
    table.add_column("breaker", justify="left")
    for model, stats in judges.items():
        table.add_row(
            model,
            f"{stats['calls']:,}",
            f"{stats['failed_calls']:,}",
            f"{stats['retries']:,}",
            f"{stats['rate_limited']:,}",
            f"{stats['bad_verdicts']:,}",
            f"{stats['fallback_answers']:,}",
            _cost(stats["cost_usd"], stats["unknown_cost_calls"]),
            stats["breaker"] or "closed",
        )
    return table


def quarantine_table(rows: list[QuarantinedLog]) -> Table:
    table = Table(title=f"quarantined logs ({len(rows)} shown, newest first)", expand=True)
    table.add_column("log", ratio=2, overflow="fold")
    table.add_column("logged", ratio=1)
    table.add_column("why", ratio=4)
    for row in rows:
        why = "; ".join(_short_reason(reason) for reason in row.reasons)
        if row.stage != "validate":
            why = f"[{row.stage}] {why}"
        table.add_row(
            f"{row.deployment} {row.log_id}",
            f"{row.log_ts:%m-%d %H:%M}" if row.log_ts else "-",
            why if len(why) <= 200 else why[:200] + "…",
        )
    return table


def budget_line(details: dict[str, Any]) -> Text | None:
    """Spend against the caps, and what the budget left unscored (per evaluator)."""
    spend = details.get("spend")
    sampling = details.get("sampling") or {}
    if not spend and not sampling:
        return None
    parts = []
    if spend:
        run_cap = spend.get("max_usd_per_run")
        day_cap = spend.get("max_usd_per_day")
        calls_cap = spend.get("max_calls_per_run")
        parts.append(
            f"judge spend ${spend['run_spent_usd']:.4f}"
            + (f" of ${run_cap:g} per run" if run_cap is not None else "")
            + (
                f", ${spend['day_spent_usd']:.4f} of ${day_cap:g} today"
                if day_cap is not None
                else ""
            )
            + f", {spend['run_calls']:,} calls"
            + (f" of {calls_cap:,}" if calls_cap is not None else "")
        )
    unscored = {
        evaluator: sum(per.values()) for evaluator, per in (sampling.get("unscored") or {}).items()
    }
    if unscored:
        parts.append(
            "unscored (budget): " + ", ".join(f"{e} {n:,}" for e, n in sorted(unscored.items()))
        )
    if sampling.get("duplicates_copied"):
        parts.append(f"{sampling['duplicates_copied']:,} duplicate verdicts reused")
    if not parts:
        return None
    return Text("budget: " + " · ".join(parts), style="yellow" if unscored else "green")


def _short_reason(reason: str) -> str:
    """`expect_column_values_to_not_be_null(prompt): every log …` -> `not_be_null(prompt)`."""
    if not reason.startswith("expect_"):
        return reason
    label = reason.split(":", 1)[0]
    for prefix in ("expect_column_values_to_", "expect_column_value_", "expect_"):
        label = label.removeprefix(prefix)
    return label


def contract_line(contract: dict[str, Any]) -> Text | None:
    """One line on the data contract for the run summary, or None when nothing was checked."""
    if not contract or not contract.get("batches"):
        return None
    failed = contract.get("unexpected") or {}
    text = (
        f"data contract: {contract['rows']:,} logs in {contract['batches']} batches, "
        f"{contract['invalid_rows']:,} quarantined"
    )
    if failed:
        text += " · " + ", ".join(f"{label} x{n:,}" for label, n in list(failed.items())[:4])
    for failure in contract.get("batch_failures") or []:
        text += f" · batch: {failure}"
    return Text(text, style="yellow" if failed or contract.get("batch_failures") else "green")


def estimate_renderable(e: Estimate) -> Group:
    head = Table(
        title=f"{e.deployment}: estimate for {e.start:%Y-%m-%d %H:%M} → {e.end:%Y-%m-%d %H:%M} UTC"
    )
    for column in ("logs", "quarantined", "projected", "run cap", "day cap", "spent today"):
        head.add_column(column, justify="right")
    head.add_row(
        f"{e.logs:,}",
        f"{e.quarantined:,}",
        "unknown" if e.projected_usd is None else f"${e.projected_usd:,.4f}",
        "-" if e.max_usd_per_run is None else f"${e.max_usd_per_run:g}",
        "-" if e.max_usd_per_day is None else f"${e.max_usd_per_day:g}",
        f"${e.spent_today_usd:,.4f}",
    )
    judges = Table(title="paid evaluators")
    for column in (
        "evaluator",
        "model",
        "eligible",
        "priority",
        "calls",
        "tokens in",
        "$/call",
        "$",
    ):
        judges.add_column(column, justify="left" if column in ("evaluator", "model") else "right")
    for x in e.evaluators:
        judges.add_row(
            x.evaluator,
            x.model,
            f"{x.eligible:,}",
            f"{x.priority:,}",
            f"{x.to_judge:,}",
            "-" if x.mean_input_tokens is None else f"{x.mean_input_tokens:,.0f}",
            "-" if x.usd_per_call is None else f"{x.usd_per_call:.6f}",
            "unknown" if x.projected_usd is None else f"{x.projected_usd:,.4f}",
        )
    strata = Table(title="sample per stratum")
    for column in ("evaluator", "stratum", "population", "sampled", "priority"):
        strata.add_column(column, justify="left" if column in ("evaluator", "stratum") else "right")
    for x in e.evaluators:
        for stratum, c in list(x.strata.items())[:30]:
            strata.add_row(
                x.evaluator,
                stratum,
                f"{c['population']:,}",
                f"{c['sampled']:,}",
                f"{c['priority']:,}",
            )
    style = "green" if e.verdict == "fits the budget" else "yellow"
    return Group(head, judges, strata, Text(e.verdict, style=style))


def num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _interval(value: float | None, low: float | None, high: float | None) -> str:
    if value is None:
        return "-"
    if low is None or high is None:
        return f"{value:.1%}"
    return f"{value:.1%} ({low * 100:.1f}-{high * 100:.1f})"


def _change(change: float | None) -> Text:
    if change is None:
        return Text("-")
    style = "red" if change < -0.005 else "green" if change > 0.005 else ""
    return Text(f"{change * 100:+.1f} pt", style=style)


#: Below this terminal width the report leaves out means and percentiles (JSON has them all).
WIDE_REPORT = 140


def report_renderable(report: Any, width: int = WIDE_REPORT) -> Group:
    """`assay report`: evaluators per slice with intervals, usage per slice, eval spend."""
    scope = report.deployment or "all deployments"
    window = f"{report.since:%Y-%m-%d %H:%M} → {report.until:%Y-%m-%d %H:%M} UTC"
    confidence = f"{report.confidence:.0%}"
    wide = width >= WIDE_REPORT
    quality = Table(title=f"{scope} · {window} · by {report.by} · {confidence} intervals")
    columns = ["evaluator", "segment", "n", "pass rate (CI)", "vs prev"]
    columns += ["mean (CI)", "p5/p25/p50/p75/p95", "errors", "cost"] if wide else []
    for column in columns:
        left = column in ("evaluator", "segment")
        quality.add_column(
            column, justify="left" if left else "right", overflow="fold", no_wrap=not left
        )
    for s in report.evaluators:
        mean = (
            "-" if s.mean is None else f"{s.mean:.2f} ({num(s.mean_low, 2)}-{num(s.mean_high, 2)})"
        )
        percentiles = "/".join(num(getattr(s, p), 2) for p in ("p5", "p25", "p50", "p75", "p95"))
        quality.add_row(
            Text(s.evaluator if report.deployment else f"{s.deployment}/{s.evaluator}"),
            Text(s.segment),
            f"{s.n:,}",
            _interval(s.pass_rate, s.pass_rate_low, s.pass_rate_high),
            _change(s.pass_rate_change),
            *(
                [mean, percentiles, f"{s.errors:,}", _cost(s.cost_usd, s.unknown_cost)]
                if wide
                else []
            ),
        )
    usage = Table(title="usage (every admitted log)")
    wide_only = {"latency p50/p95/p99 ms", "repeat rate", "feedback +"}
    usage_columns = [
        c
        for c in ("segment", "requests", "tokens/query", "cost", "latency p50/p95/p99 ms",
                  "error rate", "refusal rate", "repeat rate", "feedback +")
        if wide or c not in wide_only
    ]  # fmt: skip
    for column in usage_columns:
        usage.add_column(
            column, justify="left" if column == "segment" else "right", overflow="fold"
        )
    for u in report.usage:
        latency = "/".join(
            num(v, 0) for v in (u.latency_p50_ms, u.latency_p95_ms, u.latency_p99_ms)
        )
        cells: dict[str, str | Text] = {
            "segment": Text(u.segment if report.deployment else f"{u.deployment}/{u.segment}"),
            "requests": f"{u.requests:,}",
            "tokens/query": num(u.tokens_per_query, 0),
            "cost": f"${u.cost_usd:,.2f}",
            "latency p50/p95/p99 ms": latency,
            "error rate": pct(u.error_rate),
            "refusal rate": pct(u.refusal_rate),
            "repeat rate": pct(u.repeat_query_rate),
            "feedback +": pct(u.feedback_positive_rate),
        }
        usage.add_row(*(cells[c] for c in usage_columns))
    spent = sum(d.spent_usd for d in report.spend)
    footer = Text(
        f"Evaluation cost in this window: ${report.eval_cost_usd:,.4f} in scores; "
        f"ledger spend on the days covered: ${spent:,.4f}."
        + ("" if wide else " More columns: widen the terminal, or use --format json.")
    )
    return Group(quality, usage, footer)
