"""Slack messages as Block Kit with a plain-text fallback, kept inside Slack's limits.

Pure: models in, `SlackMessage` out. Every piece of log, judge or config text goes through
`clean()` or `escape()` first: secrets redacted, PII masked, truncated, and `&`, `<`, `>` escaped,
so a log line cannot mention `<!channel>`, ping a user or disguise a link.
"""

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel

from evaluators.heuristics.pii import mask_pii
from tasks.alerts.rules import Measurement
from tasks.alerts.state import PIPELINE, PipelineTransition, Transition
from tasks.config import AGREEMENT_METRICS
from tasks.redact import redact

MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_HEADER_CHARS = 150
MAX_FALLBACK_CHARS = 3000
EXAMPLE_CHARS = 200
MessageKind = Literal["summary", "breach", "reminder", "recovery", "health", "contract"]


class SlackMessage(BaseModel):
    kind: MessageKind
    text: str  # the plain-text fallback (notifications, screen readers, clients without blocks)
    blocks: list[dict[str, Any]]

    def payload(self, channel: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"text": self.text, "blocks": self.blocks}
        if channel:
            body["channel"] = channel
        return body


class Example(BaseModel):
    evaluator: str
    log_id: str
    score: float | None
    prompt: str
    response: str
    reason: str | None


def escape(text: str) -> str:
    """Text that Slack shows as written: its three control characters escaped (Slack's rule)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clean(text: str | None, limit: int = EXAMPLE_CHARS) -> str:
    """Log text made safe to post: secrets and PII masked, truncated, then escaped."""
    if not text:
        return ""
    text = mask_pii(redact(text))
    text = " ".join(text.split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return escape(text)


def _section(text: str) -> dict[str, Any]:
    if len(text) > MAX_SECTION_CHARS:
        text = text[: MAX_SECTION_CHARS - 20] + "\n… (truncated)"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _header(text: str) -> dict[str, Any]:
    if len(text) > MAX_HEADER_CHARS:
        text = text[: MAX_HEADER_CHARS - 1] + "…"
    return {"type": "header", "text": {"type": "plain_text", "text": text}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:MAX_SECTION_CHARS]}]}


def fit(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """At most 50 blocks: the overflow becomes one line saying how much was left out."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    kept = blocks[: MAX_BLOCKS - 1]
    return [*kept, _context(f"… {len(blocks) - len(kept)} more blocks not shown")]


def _fallback(lines: list[str]) -> str:
    text = "\n".join(lines)
    return text if len(text) <= MAX_FALLBACK_CHARS else text[: MAX_FALLBACK_CHARS - 1] + "…"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _value(metric: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    return _pct(value) if metric.endswith("rate") else f"{value:.3f}"


def _duration(delta: timedelta | None) -> str:
    if delta is None:
        return ""
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h" if hours >= 1 else f"{delta.total_seconds() / 60:.0f} min"


def describe(m: Measurement, confidence: float, with_name: bool = True) -> str:
    where = f" [{clean(m.segment, 80)}]" if m.segment else ""
    interval = (
        f" ({confidence:.0%} CI {_value(m.metric, m.low)}–{_value(m.metric, m.high)})"
        if m.low is not None
        else ""
    )
    name = f"*{clean(m.evaluator, 80)}*" if with_name else ""
    return f"{name}{where} {m.metric} {_value(m.metric, m.value)}{interval}, n={m.n:,}".strip()


def open_breach_line(
    m: Measurement, confidence: float, opened_at: Any, opened_value: float | None
) -> str:
    """An open breach: its current value beside the value it opened with."""
    since = f"{opened_at:%Y-%m-%d %H:%M}"
    if m.evaluator == PIPELINE:
        return f"*{PIPELINE_TITLES.get(m.metric, m.metric)}* since {since}"
    was = (
        f"; {_value(m.metric, opened_value)} when it opened {since}"
        if opened_value is not None
        else f"; open since {since}"
    )
    return describe(m, confidence) + was


def distinct(examples: list[Example], limit: int = 3) -> list[Example]:
    """Up to `limit` examples that are not near-duplicates of each other, compared as they
    would be shown (masked): answers whose word sets overlap by 80% or more count as one."""
    chosen: list[Example] = []
    seen: list[set[str]] = []
    for example in examples:
        words = set(clean(example.response or example.prompt, 1000).lower().split())
        if any(_overlap(words, other) >= 0.8 for other in seen):
            continue
        chosen.append(example)
        seen.append(words)
        if len(chosen) == limit:
            break
    return chosen


def _overlap(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def _examples_blocks(examples: list[Example]) -> list[dict[str, Any]]:
    return [
        _section(
            f"*{clean(e.evaluator, 80)}* `{clean(e.log_id, 80)}` "
            f"score {e.score if e.score is not None else 'n/a'}\n"
            f">*prompt* {clean(e.prompt)}\n>*response* {clean(e.response)}\n"
            f">*why* {clean(e.reason)}"
        )
        for e in examples
    ]


def transition_message(
    deployment: str,
    changes: list[Transition],
    confidence: float,
    examples: list[Example],
    link: str | None,
) -> SlackMessage:
    """One message per evaluator, rule and kind: every breaching segment listed inside it."""
    first = changes[0]
    rule = first.verdict.rule
    threshold = f"alert when {rule.metric} {rule.op} {rule.value:g} ({rule.mode})"
    drift = rule.metric in AGREEMENT_METRICS
    if drift:
        # About the judge, not about the product: people and the judge no longer agree.
        threshold += (
            " · the judge disagrees with people (human labels): its verdicts, and what they "
            "say about quality, need checking"
        )
    title, icon = {
        "breach": ("Judge drift" if drift else "Quality breach", ":red_circle:"),
        "reminder": (
            f"Still breaching after {_duration(first.open_for)}",
            ":large_orange_circle:",
        ),
        "recovery": (f"Recovered after {_duration(first.open_for)}", ":large_green_circle:"),
    }[first.kind]
    name = clean(rule.evaluator, 80)
    if len(changes) == 1 and not rule.by:
        measured = [describe(first.verdict.measurement, confidence)]
        body = f"{icon} {measured[0]}\n{threshold}"
    else:
        measured = [describe(c.verdict.measurement, confidence, with_name=False) for c in changes]
        segments = "\n".join(f"• {line}" for line in measured)
        what = "segment" if len(changes) == 1 else f"{len(changes)} segments"
        body = f"{icon} *{name}* {rule.metric}, {what} by {rule.by}:\n{segments}\n{threshold}"
    shown = distinct(examples) if first.kind != "recovery" else []
    blocks = [
        _header(f"{title}: {deployment} · {rule.evaluator}"),
        _section(body),
        *_examples_blocks(shown),
    ]
    if link:
        blocks.append(_context(f"<{link}|Prefect flow run>"))
    text = _fallback(
        [f"{title}: {deployment}: {name} {rule.metric}; {threshold}"]
        + [f"- {line.replace('*', '')}" for line in measured]
        + [f"- example {clean(e.log_id, 80)}: {clean(e.reason, 120)}" for e in shown]
    )
    return SlackMessage(kind=first.kind, text=text, blocks=fit(blocks))


PIPELINE_TITLES = {"traffic": "No traffic", "data_contract": "Data contract broken"}


def pipeline_message(deployment: str, change: PipelineTransition, link: str | None) -> SlackMessage:
    """The log pipeline itself: no logs at all, or logs that break the contract."""
    what = PIPELINE_TITLES[change.check]
    title, icon = {
        "breach": (what, ":no_entry:"),
        "reminder": (f"{what}, still, after {_duration(change.open_for)}", ":no_entry:"),
        "recovery": (f"Recovered after {_duration(change.open_for)}: {what.lower()}",
                     ":large_green_circle:"),
    }[change.kind]  # fmt: skip
    detail = clean(change.detail, MAX_SECTION_CHARS - 200)
    hint = {
        "traffic": "Check that the app still writes logs and that the source query still "
        "matches them (`assay doctor`).",
        "data_contract": "`assay quarantine` lists the rejected logs and why; `--replay` "
        "scores them once the source is fixed.",
    }[change.check]
    blocks = [
        _header(f"{title}: {deployment}"),
        _section(f"{icon} {detail}" + (f"\n{hint}" if change.kind != "recovery" else "")),
    ]
    if link:
        blocks.append(_context(f"<{link}|Prefect flow run>"))
    kind: MessageKind = "recovery" if change.kind == "recovery" else "contract"
    return SlackMessage(
        kind=kind, text=_fallback([f"{title}: {deployment}: {detail}"]), blocks=fit(blocks)
    )


def health_message(deployment: str, problems: list[str], link: str | None) -> SlackMessage:
    """Judges that could not measure: an outage, not a quality drop."""
    problems = [clean(p, 500) for p in problems]
    body = "\n".join(f"• {p}" for p in problems)
    blocks = [
        _header(f"Could not measure: {deployment}"),
        _section(
            ":warning: Some scores are missing because the judges could not answer, not "
            f"because quality dropped:\n{body}"
        ),
    ]
    if link:
        blocks.append(_context(f"<{link}|Prefect flow run>"))
    return SlackMessage(
        kind="health",
        text=_fallback([f"Could not measure {deployment}:", *problems]),
        blocks=fit(blocks),
    )


class EvaluatorLine(BaseModel):
    evaluator: str
    ok: int
    pass_rate: float | None
    #: The change against the previous run (or period) with its interval, when both have data.
    change: tuple[float, float, float] | None = None
    errors: int
    skipped: int
    cost_usd: float


def change_text(change: tuple[float, float, float] | None, confidence: float) -> str:
    """A change is shown only with its interval, or marked as not significant."""
    if change is None:
        return ""
    delta, low, high = (100 * v for v in change)
    if low <= 0 <= high:
        return f" ({delta:+.1f} pp, not significant)"
    return f" ({delta:+.1f} pp, {confidence:.0%} CI {low:+.1f} to {high:+.1f})"


def summary_message(
    deployment: str,
    run: dict[str, Any],
    lines: list[EvaluatorLine],
    open_breaches: list[str],
    health: list[str],
    link: str | None,
    examples: list[Example] | None = None,
    title: str | None = None,
    confidence: float = 0.95,
) -> SlackMessage:
    title = title or f"Assay run summary: {deployment}"
    window = f"{run['window_start']:%Y-%m-%d %H:%M} → {run['window_end']:%Y-%m-%d %H:%M} UTC"
    counts = (
        f"*Window* {window}\n*Logs* {run['pulled']:,} pulled · {run['quarantined']:,} "
        f"quarantined · {run['scored']:,} new scores"
    )
    spend = sum(line.cost_usd for line in lines)
    rows = []
    for line in lines:
        delta = change_text(line.change, confidence)
        extra = "".join(
            [
                f", {line.errors:,} errors" if line.errors else "",
                f", {line.skipped:,} skipped" if line.skipped else "",
            ]
        )
        name = clean(line.evaluator, 80)
        rows.append(f"• *{name}* pass {_pct(line.pass_rate)}{delta} · n={line.ok:,}{extra}")
    blocks = [
        _header(title),
        _section(counts),
        _section("*Evaluators*\n" + ("\n".join(rows) or "no scores in this window")),
        _section(f"*Judge spend* ${spend:,.4f}"),
    ]
    from tasks.sessions import units_summary

    if units := units_summary(run.get("details") or {}):
        blocks.append(_section(f"*Sessions and traces* {clean(units, 500)}"))
    late = (run.get("details") or {}).get("late")
    if late:
        blocks.append(
            _section(
                f"*Late logs* {late['count']:,} arrived after their window was read; score "
                f"them with `{clean(late['remedy'], 300)}`"
            )
        )
    if open_breaches:
        blocks.append(_section("*Open breaches*\n" + "\n".join(f"• {b}" for b in open_breaches)))
    if examples:
        blocks.append(_section("*Failing examples* (up to 3, distinct)"))
        blocks += _examples_blocks(distinct(examples))
    health = [clean(h, 500) for h in health]
    if health:
        blocks.append(_section("*Could not measure*\n" + "\n".join(f"• {h}" for h in health)))
    if link:
        blocks.append(_context(f"<{link}|Prefect flow run>"))
    text = _fallback(
        [
            title,
            f"Window {window}; logs {run['pulled']:,} pulled, {run['quarantined']:,} "
            f"quarantined, {run['scored']:,} new scores; judge spend ${spend:,.4f}",
            *(r.replace("*", "") for r in rows),
            *(f"Open breach: {b.replace('*', '')}" for b in open_breaches),
            *(f"Could not measure: {h}" for h in health),
        ]
    )
    return SlackMessage(kind="summary", text=text, blocks=fit(blocks))
