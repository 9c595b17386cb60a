"""Terminal rendering of run summaries and evaluator lists (rich)."""

from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Group
from rich.table import Table
from rich.text import Text

from tasks.analytics.formats import money, num, pct
from tasks.contract.quarantine import QuarantineCounts, QuarantinedLog
from tasks.run.estimate import Estimate
from tasks.store.runs import RunSummary

#: Below this terminal width, secondary columns move into a second table (JSON has them all).
WIDE = 110


def compact(title: str | None = None) -> Table:
    """The one table style: no vertical rules, one space between columns, so 80 columns hold
    a name and eight numbers."""
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=0,
        pad_edge=False,
        show_edge=False,
    )


def columns(table: Table, *headers: str, text: tuple[str, ...] = ()) -> Table:
    """Add columns: names (left, never cut), numbers (right, never cut) and free `text`
    columns (folded, they take what width is left)."""
    for header in headers:
        if header in text:
            table.add_column(header, overflow="fold", ratio=1, min_width=len(header))
        else:
            left = header == headers[0]
            table.add_column(
                header, justify="left" if left else "right", no_wrap=True, min_width=len(header)
            )
    return table


def keep_whole(table: Table) -> Table:
    """Give every no-wrap column the width of its longest cell, so rich squeezes the text
    columns instead of cutting an identifier or a number."""
    for column in table.columns:
        if column.no_wrap:
            texts = [Text.from_markup(c) if isinstance(c, str) else c for c in column._cells]
            longest = max(
                (
                    cell_len(line)
                    for t in texts
                    if isinstance(t, Text)
                    for line in t.plain.split("\n")
                ),
                default=0,
            )
            column.min_width = max(column.min_width or 0, longest)
    return table


def fitted(
    title: str | None,
    headers: tuple[str, ...],
    rows: list[tuple[Any, ...]],
    width: int,
    secondary: tuple[str, ...],
    keys: int = 1,
    text: tuple[str, ...] = (),
) -> list[Table]:
    """One table when it fits `width`; else two: the first without the `secondary` columns,
    the second with the first `keys` columns (the names) and the secondary ones. Names and
    numbers are never cut either way."""

    def build(title: str | None, wanted: tuple[str, ...]) -> Table:
        table = columns(compact(title), *wanted, text=text)
        for column in table.columns[1:keys]:
            column.justify = "left"
        positions = [headers.index(h) for h in wanted]
        for row in rows:
            table.add_row(*(row[i] for i in positions))
        return keep_whole(table)

    whole = build(title, headers)
    needed = sum(c.min_width or 0 for c in whole.columns) + len(whole.columns) - 1
    if needed <= width or not secondary:
        return [whole]
    first = tuple(h for h in headers if h not in secondary)
    more = (*headers[:keys], *(h for h in headers if h in secondary))
    return [build(title, first), build(f"{title or ''} (continued)".strip(), more)]


#: Where a name may be broken across lines: after these, never inside a word.
NAME_BREAKS = frozenset("-_/.:@ ")


def wrap_name(value: str, width: int) -> str:
    """`value` in lines of at most `width`, broken only after a separator (`gpt-4o-mini-2024`
    becomes `gpt-4o-` / `mini-2024`, never `gpt-4o-min` / `i`); a word longer than `width` on
    its own is the one thing left longer than the column."""
    if width < 1 or len(value) <= width:
        return value
    lines: list[str] = []
    line = word = ""
    for char in value:
        word += char
        if char in NAME_BREAKS:
            if line and len(line) + len(word) > width:
                lines.append(line)
                line = ""
            line += word
            word = ""
    if line and len(line) + len(word) > width:
        lines.append(line)
        line = ""
    lines.append(line + word)
    return "\n".join(part.rstrip() for part in lines)


def short_id(value: str) -> str:
    """Ids are shortened one way everywhere: the first 8 characters (JSON has the full id)."""
    return value if len(value) <= 9 else value[:8] + "…"


def unique_short_ids(values: list[str], shortest: int = 8) -> dict[str, str]:
    """Each id shortened as `short_id` does, but never to the same text as another id shown
    beside it: `support-refund-01` and `support-refund-02` stay apart (`support-refund-01`),
    where both would read `support-…`."""
    shown: dict[str, str] = {}
    for value in values:
        length = shortest
        while length < len(value) and any(
            other != value and other.startswith(value[:length]) for other in values
        ):
            length += 1
        shown[value] = value if len(value) <= length + 1 else value[:length] + "…"
    return shown


def count(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def summary_renderable(summary: RunSummary, width: int = WIDE) -> Group:
    window = (
        f"{summary.window_start:%Y-%m-%d %H:%M:%S} → {summary.window_end:%Y-%m-%d %H:%M:%S} UTC"
        if summary.window_start
        else f"→ {summary.window_end:%Y-%m-%d %H:%M:%S} UTC"
    )
    head = Text.assemble(
        (f"{summary.deployment}", "bold"),
        f" · {summary.kind} run {short_id(summary.run_id)} · {summary.status}\n",
        f"window {window}",
    )
    counts = columns(compact(), "pulled", "normalized", "quarantined", "new scores", "errors")
    counts.columns[0].justify = "right"
    counts.add_row(
        *(count(v) for v in (summary.pulled, summary.normalized, summary.quarantined,
                             summary.scored, summary.errors))
    )  # fmt: skip
    evaluator_rows = [
        (
            result.evaluator + ("*" if _stand_in(result.judge_models) else ""),
            result.evaluator_version,
            f"{result.ok:,}",
            pct(result.pass_rate),
            num(result.mean_score, 2),
            f"{result.ok - result.passed:,}",
            f"{result.skipped:,}",
            f"{result.errors:,}",
            _cost(result.cost_usd, result.unknown_cost) if result.judge_models else "free",
        )
        for result in summary.evaluators
    ]
    parts: list[Table | Text] = [head, counts]
    if summary.evaluators:
        parts += fitted(
            "evaluators (n = judged; skipped and errors apart)",
            ("evaluator", "v", "n", "pass", "mean", "failed", "skipped", "errors", "cost"),
            evaluator_rows,
            width,
            secondary=("v", "mean", "skipped", "errors"),
        )
    if line := contract_line(summary.details.get("contract") or {}):
        parts.append(line)
    if line := units_line(summary.details):
        parts.append(line)
    if line := budget_line(summary.details):
        parts.append(line)
    judges = summary.details.get("judges") or {}
    if judges:
        parts += judge_health(judges, width)
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
    text = money(cost)
    return f"{text} + {unknown:,} unknown" if unknown else text


def judge_health(judges: dict[str, dict[str, Any]], width: int = WIDE) -> list[Table]:
    """Calls per judge model; when narrow, the retry columns go into a second table."""
    rows = [
        (
            model,
            f"{stats['calls']:,}",
            f"{stats['failed_calls']:,}",
            f"{stats['bad_verdicts']:,}",
            _cost(stats["cost_usd"], stats["unknown_cost_calls"]),
            f"{stats['retries']:,}",
            f"{stats['rate_limited']:,}",
            f"{stats['fallback_answers']:,}",
            stats["breaker"] or "closed",
        )
        for model, stats in judges.items()
    ]
    headers = ("model", "calls", "failed", "bad verdicts", "cost", "retries", "429s",
               "fallback", "breaker")  # fmt: skip
    return fitted("judge models", headers, rows, width, secondary=headers[5:])


def quarantine_table(
    rows: list[QuarantinedLog], deployment: str | None = None, total: int | None = None
) -> Table:
    more = total is not None and total > len(rows)
    title = (
        f"quarantined logs: {len(rows):,} of {total:,} shown, newest logs first (--all lists "
        "every one)"
        if more
        else f"quarantined logs: {len(rows):,} shown, newest logs first"
    )
    shown = ("logged", "log") if deployment else ("logged", "deployment", "log")
    table = columns(compact(title), *shown, "why", text=("why",))
    for row in rows:
        why = "; ".join(_short_reason(reason) for reason in row.reasons)
        if row.stage != "validate":
            why = f"[{row.stage}] {why}"
        cells = [f"{row.log_ts:%m-%d %H:%M}" if row.log_ts else "–"]
        cells += [] if deployment else [row.deployment]
        table.add_row(
            *cells, short_id(row.log_id), Text(why if len(why) <= 200 else why[:200] + "…")
        )
    return keep_whole(table)


def quarantine_counts_table(counts: QuarantineCounts) -> Table:
    """How many quarantined logs each reason accounts for, over every row (not only those
    listed): what to fix first."""
    table = columns(compact(), "reason", "logs", text=("reason",))
    for reason, n in counts.per_reason.items():
        table.add_row(_short_reason(reason), f"{n:,}")
    return keep_whole(table)


def units_line(details: dict[str, Any]) -> Text | None:
    """What the run did with whole sessions and traces (complete ones, once each)."""
    from tasks.sessions import units_summary

    said = units_summary(details)
    return Text(said) if said else None


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
    """`expect_column_values_to_be_in_set(feedback): … ; got '1'` -> `be_in_set(feedback) got
    '1'`: the expectation and the offending value (masked when it was stored)."""
    if not reason.startswith("expect_"):
        return reason
    label, _, rest = reason.partition(":")
    for prefix in ("expect_column_values_to_", "expect_column_value_", "expect_"):
        label = label.removeprefix(prefix)
    _, got, value = rest.rpartition("; got ")
    return f"{label} got {value.strip()}" if got else label


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
    title = Text(
        f"{e.deployment}: estimate for {e.start:%Y-%m-%d %H:%M} → {e.end:%Y-%m-%d %H:%M} UTC",
        style="bold",
    )
    head = columns(
        compact(), "logs", "quarantined", "projected", "run cap", "day cap", "spent today"
    )
    head.columns[0].justify = "right"
    head.add_row(
        f"{e.logs:,}",
        f"{e.quarantined:,}" if e.contract_checked else "not checked",
        money(e.projected_usd),
        "–" if e.max_usd_per_run is None else money(e.max_usd_per_run),
        "–" if e.max_usd_per_day is None else money(e.max_usd_per_day),
        money(e.spent_today_usd),
    )
    parts: list[Table | Text] = [title, keep_whole(head)]
    if not e.evaluators:
        parts.append(Text("no paid evaluators: runs call no judge and cost nothing"))
    else:
        judges = columns(
            compact("paid evaluators (model on the second line)"),
            "evaluator", "eligible", "priority", "calls", "tokens in", "$/call", "projected",
        )  # fmt: skip
        for x in e.evaluators:
            judges.add_row(
                Text.assemble(x.evaluator, "\n", (x.model, "dim")),
                f"{x.eligible:,}",
                f"{x.priority:,}",
                f"{x.to_judge:,}",
                "–" if x.mean_input_tokens is None else f"{x.mean_input_tokens:,.0f}",
                money(x.usd_per_call),
                money(x.projected_usd),
            )
        parts.append(keep_whole(judges))
        strata = columns(
            compact("sample per stratum"), "evaluator", "stratum", "population", "sampled",
            "priority",
        )  # fmt: skip
        strata.columns[1].justify = "left"
        for x in e.evaluators:
            for stratum, c in list(x.strata.items())[:30]:
                strata.add_row(
                    x.evaluator,
                    stratum,
                    f"{c['population']:,}",
                    f"{c['sampled']:,}",
                    f"{c['priority']:,}",
                )
        parts.append(keep_whole(strata))
    sample = e.contract_sample
    if not e.contract_checked and sample is not None and sample.checked:
        share = sample.invalid / sample.checked
        parts.append(
            Text(
                f"data contract on the first {sample.checked:,} logs: {sample.invalid:,} "
                f"({share:.1%}) would be quarantined; --contract checks every log",
                style="yellow" if sample.invalid else "",
            )
        )
    elif not e.contract_checked:
        parts.append(
            Text("data contract not checked: the projection is an upper bound (--contract)")
        )
    style = "green" if e.verdict == "fits the budget" else "yellow"
    parts.append(Text(e.verdict, style=style))
    return Group(*parts)


def _interval(value: float | None, low: float | None, high: float | None, unit: str = "%") -> str:
    if value is None:
        return "–"
    if low is None or high is None:
        return f"{value * 100:.1f}{unit}"
    return f"{value * 100:.1f}{unit} ({low * 100:.1f}-{high * 100:.1f})"


def _change(change: float | None, significant: bool | None = None) -> Text:
    """A change in percentage points ("pp"), marked when its interval does not exclude 0."""
    if change is None:
        return Text("–")
    if significant is False:
        return Text(f"{change * 100:+.1f} pp ~", style="dim")
    style = "red" if change < -0.005 else "green" if change > 0.005 else ""
    return Text(f"{change * 100:+.1f} pp", style=style)


def _segment_width(report: Any, width: int) -> int:
    """The width the segment column has beside the columns that stay with it (the evaluator,
    n, the pass rate and its change): segment values wrap to it at separators."""
    evaluator = max((len(s.evaluator) + (0 if report.deployment else 2)
                     for s in report.evaluators), default=9)  # fmt: skip
    used = max(evaluator, 9) + len("99,999") + len("100.0 (100.0-100.0)") + len("+100.0 pp") + 4
    return max(12, width - used)


def report_renderable(report: Any, width: int = WIDE) -> Group:
    """`assay report`: evaluators per slice with intervals, usage per slice, eval spend."""
    scope = report.deployment or "all deployments"
    window = f"{report.since:%Y-%m-%d %H:%M} → {report.until:%Y-%m-%d %H:%M} UTC"
    confidence = f"{report.confidence:.0%}"
    wide = width >= WIDE
    title = Text(f"{scope} · {window} · by {report.by}", style="bold")
    headers = ("evaluator", "segment", "n", f"pass % ({confidence} CI)", "vs prev", "skipped",
               "errors", *(("mean (CI)", "p5/p50/p95", "cost") if wide else ()))  # fmt: skip
    rows: list[tuple[Any, ...]] = []
    deployment_shown: str | None = None
    segment_width = _segment_width(report, width)
    for s in report.evaluators:
        if report.deployment is None and s.deployment != deployment_shown:
            rows.append((Text(s.deployment, style="bold"), *[""] * (len(headers) - 1)))
            deployment_shown = s.deployment
        mean = (
            "–" if s.mean is None else f"{s.mean:.2f} ({num(s.mean_low, 2)}-{num(s.mean_high, 2)})"
        )
        percentiles = "/".join(num(getattr(s, p), 2) for p in ("p5", "p50", "p95"))
        rows.append((
            s.evaluator if report.deployment else f"  {s.evaluator}",
            wrap_name(s.segment, segment_width),
            f"{s.ok:,}",
            _interval(s.pass_rate, s.pass_rate_low, s.pass_rate_high, unit=""),
            _change(s.pass_rate_change, s.change_significant),
            f"{s.skipped:,}",
            f"{s.errors:,}",
            *((mean, percentiles, _cost(s.cost_usd, s.unknown_cost)) if wide else ()),
        ))  # fmt: skip
    quality = fitted(None, headers, rows, width, secondary=headers[5:], keys=2)
    usage_columns = ["segment", "requests", "quarantined", "tokens/query", "cost", "error rate",
                     "refusals"]  # fmt: skip
    usage_columns += ["latency p50/p95 ms", "repeats", "feedback +"] if wide else []
    usage = columns(compact("usage (every admitted log)"), *usage_columns)
    # The numbers' headers are at least as wide as their values: the segment gets the rest.
    usage_segment_width = max(12, width - sum(len(c) + 1 for c in usage_columns[1:]) - 4)
    for u in report.usage:
        segment = u.segment if report.deployment else f"{u.deployment}/{u.segment}"
        cells: dict[str, str] = {
            "segment": wrap_name(segment, usage_segment_width),
            "requests": f"{u.requests:,}",
            "quarantined": f"{u.quarantined:,} ({pct(u.quarantined_share)})"
            if u.quarantined
            else "0",
            "tokens/query": num(u.tokens_per_query, 0),
            "cost": "–" if u.cost_usd is None else money(u.cost_usd),
            "latency p50/p95 ms": "/".join(num(v, 0) for v in (u.latency_p50_ms, u.latency_p95_ms)),
            "error rate": pct(u.error_rate),
            "refusals": pct(u.refusal_rate),
            "repeats": pct(u.repeat_query_rate),
            "feedback +": pct(u.feedback_positive_rate),
        }
        usage.add_row(*(cells[c] for c in usage_columns))
    spent = sum(d.spent_usd for d in report.spend)
    notes = [
        f'n = judged scores; pass-rate changes in percentage points (pp), "~" = not '
        f"significant at {confidence}. Evaluation cost: {money(report.eval_cost_usd)} in "
        f"scores; ledger spend on the days covered: {money(spent)}."
    ]
    if not wide:
        notes.append("More columns: a terminal of 110+ columns, or --format json.")
    corrected = [
        Text(f"{s.evaluator}{'' if report.deployment else f' ({s.deployment})'}: the judge says "
             f"{_interval(s.pass_rate, s.pass_rate_low, s.pass_rate_high)}; corrected "
             f"by {s.human_labels:,} human label(s) (prediction-powered): "
             f"{_interval(s.corrected_pass_rate, s.corrected_low, s.corrected_high)}")
        for s in report.evaluators if getattr(s, "human_labels", 0)
    ]  # fmt: skip
    parts: list[Table | Text] = [title, *quality, *corrected, keep_whole(usage)]
    parts += [Text(w, style="yellow") for w in getattr(report, "warnings", [])]
    parts.append(Text(" ".join(notes)))
    return Group(*parts)
