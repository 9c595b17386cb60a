"""Notifications: decide what to tell (rules, alert state, judge health, the run summary), queue
it in the transactional outbox with the run's results, and deliver the outbox to Slack.

Delivery never fails or rolls back a run: what cannot be sent stays pending, in order, and the
next run (or `deliver_pending`) sends it. Each message has a stable id, so queueing it twice
does nothing, and a row lock per message means two senders never post the same one.
"""

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from tasks.alerts.rules import (
    PIPELINE,
    Measurement,
    PipelineCheck,
    PipelineTransition,
    Transition,
    Verdict,
    open_alerts,
    pipeline_transition,
    segment_sql,
    transition,
    verdicts,
)
from tasks.alerts.slack_messages import (
    EvaluatorLine,
    Example,
    SlackMessage,
    health_message,
    open_breach_line,
    pipeline_message,
    summary_message,
    transition_message,
)
from tasks.config import AGREEMENT_METRICS, EvalJob
from tasks.redact import redact
from tasks.secrets import resolve
from tasks.settings import AssaySettings
from tasks.stats.intervals import rate_change
from tasks.store.runs import RunSummary
from tasks.store.sql import query

log = logging.getLogger("assay.notify")
#: The batch failure a quiet window under `quality.expect_traffic` records (see the lifecycle).
NO_TRAFFIC = "no logs in the window although quality.expect_traffic is set"


class DeliveryReport(BaseModel):
    sent: int = 0
    pending: int = 0
    error: str | None = None


# -- what to say -----------------------------------------------------------------------------------
def judge_health(summary: RunSummary, max_error_rate: float) -> list[str]:
    """Why some scores are missing: judge outages, not quality (one line per problem)."""
    problems = []
    for model, stats in (summary.details.get("judges") or {}).items():
        if stats.get("breaker"):
            problems.append(f"{stats['breaker']}; {stats['skipped_by_breaker']:,} items skipped")
        calls, failed = stats.get("calls", 0), stats.get("failed_calls", 0)
        if calls and failed / calls > max_error_rate:
            problems.append(f"{model}: {failed:,} of {calls:,} calls failed ({failed / calls:.0%})")
        if stats.get("bad_verdicts"):
            problems.append(f"{model}: {stats['bad_verdicts']:,} unparseable verdicts")
        if stats.get("fallback_answers"):
            problems.append(f"{model}: {stats['fallback_answers']:,} answers came from a fallback")
        if stats.get("estimated_cost_calls"):
            problems.append(
                f"{model}: {stats['estimated_cost_calls']:,} answers without believable usage, "
                "charged at the worst case"
            )
        if stats.get("unknown_cost_calls"):
            problems.append(f"{model}: {stats['unknown_cost_calls']:,} calls with an unknown price")
    return problems


def compose(
    conn: sa.Connection,
    job: EvalJob,
    summary: RunSummary,
    now: datetime,
    link: str | None,
    examples_for: Any = None,
) -> list[SlackMessage]:
    """Evaluate the rules against this run, move the alert state, and write the messages."""
    alerts = job.alerts
    messages: list[SlackMessage] = [
        pipeline_message(job.deployment, change, link)
        for change in pipeline_changes(conn, job, summary, now)
    ]
    grouped: dict[tuple[str, str, str, str], list[Transition]] = {}
    for verdict in verdicts(conn, summary.run_id, alerts, job.deployment, now):
        change = transition(conn, job.deployment, summary.run_id, verdict, alerts.cooldown, now)
        if change is not None:
            rule = change.verdict.rule
            grouped.setdefault(
                (change.kind, rule.evaluator, rule.metric, rule.by or ""), []
            ).append(change)
    for changes in grouped.values():
        confidence = changes[0].verdict.rule.confidence or alerts.confidence
        examples: list[Example] = []
        if changes[0].kind != "recovery" and examples_for is not None:
            for change in changes:
                examples += examples_for(conn, summary.run_id, change.verdict)
        messages.append(transition_message(job.deployment, changes, confidence, examples, link))
    health = judge_health(summary, alerts.max_judge_error_rate)
    if health:
        messages.append(health_message(job.deployment, health, link))
    still_open = open_alerts(conn, job.deployment)
    breaches = [
        open_breach_line(_measurement(row), alerts.confidence, row.opened_at, row.opened_value)
        for row in still_open
    ]
    # "digest": the `digest` flow posts one summary a day instead of one per run.
    wants_summary = alerts.summary == "always" or (alerts.summary == "on_breach" and breaches)
    if wants_summary:
        if summary.scored == 0 and breaches:  # nothing new: a count, not the same list again
            breaches = [f"{len(breaches)} still open (no new scores in this run to change them)"]
        previous = {
            row.evaluator: (row.passed, row.ok)
            for row in conn.execute(
                sa.text(query("alerts", "previous_results")),
                {"deployment": job.deployment, "run_id": summary.run_id},
            )
        }
        lines = [
            EvaluatorLine(
                evaluator=r.evaluator,
                ok=r.ok,
                pass_rate=r.pass_rate,
                change=rate_change(
                    r.passed,
                    r.ok,
                    *previous.get(r.evaluator, (0, 0)),
                    alerts.confidence,
                    alerts.min_samples,
                ),
                errors=r.errors,
                skipped=r.skipped,
                cost_usd=r.cost_usd,
            )
            for r in summary.evaluators
        ]
        examples = []
        if examples_for and summary.scored:
            breached = [
                Verdict(measurement=_measurement(row), rule=row.rule, state="breach")
                for row in still_open
                if row.evaluator != PIPELINE
            ]
            examples = [e for v in breached for e in examples_for(conn, summary.run_id, v)]
        messages.append(
            summary_message(
                job.deployment, summary.model_dump(), lines, breaches, health, link, examples,
                confidence=alerts.confidence,
            )
        )  # fmt: skip
    return messages


def pipeline_changes(
    conn: sa.Connection,
    job: EvalJob,
    summary: RunSummary,
    now: datetime,
    broken: str | None = None,
) -> list[PipelineTransition]:
    """The pipeline's own alerts after a run: no traffic (under `quality.expect_traffic`) and
    a broken data contract (`broken`: why the run stopped; or table-level expectation failures
    of a completed run)."""
    contract = summary.details.get("contract") or {}
    failures = [f for f in contract.get("batch_failures") or [] if f != NO_TRAFFIC]
    checks: list[tuple[PipelineCheck, bool, str]] = []
    if broken is not None:
        checks.append(("data_contract", True, broken))
    else:
        checks.append(("data_contract", bool(failures), "; ".join(failures) or "logs pass again"))
        # Only runs that consume their window notify (their Kind decides, tasks/run/kinds.py),
        # so this is a window the hourly schedule owns.
        if job.quality.expect_traffic:
            quiet = bool(summary.details.get("no_traffic"))
            window = f"{summary.window_start:%Y-%m-%d %H:%M} → {summary.window_end:%H:%M} UTC"
            detail = (f"no logs at all in {window}, although quality.expect_traffic is set"
                      if quiet else f"{summary.pulled:,} logs in {window}")  # fmt: skip
            checks.append(("traffic", quiet, detail))
    changes = []
    for check, failing, detail in checks:
        change = pipeline_transition(
            conn, job.deployment, summary.run_id, check, failing, detail, job.alerts.cooldown, now
        )
        if change is not None:
            changes.append(change)
    return changes


def _measurement(row: Any) -> Measurement:
    return Measurement(
        evaluator=row.evaluator,
        metric=row.metric,
        segment=row.segment,
        n=row.n or 0,
        value=row.value,
        low=row.low,
        high=row.high,
    )


# -- the outbox ------------------------------------------------------------------------------------
def slack_channel(job: EvalJob, settings: AssaySettings) -> str | None:
    return job.alerts.channel or settings.slack_channel


def slack_configured(settings: AssaySettings) -> bool:
    return settings.slack_webhook_url is not None or settings.slack_bot_token is not None


def queue(
    conn: sa.Connection,
    deployment: str,
    run_id: str | None,
    channel: str | None,
    messages: list[SlackMessage],
    key: str | None = None,
) -> None:
    """Add messages to the outbox; ids derive from `key` (default the run id), so queueing the
    same messages again is a no-op."""
    for position, message in enumerate(messages):
        conn.execute(
            sa.text(query("alerts", "insert_outbox")),
            {
                "id": f"{key or run_id}:{position}:{message.kind}",
                "deployment": deployment,
                "kind": message.kind,
                "channel": channel,
                "payload": redact(json.dumps(message.payload(channel))),
                "run_id": run_id,
            },
        )


# -- delivery --------------------------------------------------------------------------------------
def _retry_handlers() -> list[Any]:
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
        ServerErrorRetryHandler,
    )

    return [
        ConnectionErrorRetryHandler(max_retry_count=2),
        RateLimitErrorRetryHandler(max_retry_count=2),
        ServerErrorRetryHandler(max_retry_count=2),
    ]


def _sender(settings: AssaySettings) -> Any:
    """A function posting one payload, raising on failure (slack-sdk retries first)."""
    if settings.slack_bot_token is not None:
        from slack_sdk import WebClient

        client = WebClient(
            token=resolve(settings.slack_bot_token.get_secret_value()),
            base_url=settings.slack_base_url,
            retry_handlers=_retry_handlers(),
            timeout=15,
        )

        def post(payload: dict[str, Any]) -> None:
            # Queued before Slack was configured: the channel set since then applies.
            channel = payload.get("channel") or settings.slack_channel
            if not channel:
                raise RuntimeError("no channel: set alerts.channel or ASSAY_SLACK_CHANNEL")
            client.chat_postMessage(**{**payload, "channel": channel})  # raises when not ok

        return post
    assert settings.slack_webhook_url is not None
    from slack_sdk.webhook import WebhookClient

    webhook = WebhookClient(
        resolve(settings.slack_webhook_url.get_secret_value()),
        retry_handlers=_retry_handlers(),
        timeout=15,
    )

    def send(payload: dict[str, Any]) -> None:
        response = webhook.send(text=payload["text"], blocks=payload.get("blocks"))
        if response.status_code != 200:
            raise RuntimeError(f"webhook answered {response.status_code}: {response.body[:200]}")

    return send


def _describe_failure(exc: Exception) -> str:
    """What went wrong, without the request (which could carry a token) or the payload."""
    response = getattr(exc, "response", None)
    if response is not None and hasattr(response, "get"):
        return redact(f"{type(exc).__name__}: {response.get('error') or response.status_code}")
    return redact(f"{type(exc).__name__}: {str(exc)[:200]}")


def deliver_pending(engine: sa.Engine, settings: AssaySettings, limit: int = 200) -> DeliveryReport:
    """Send pending messages oldest first; stop at the first failure so order is kept."""
    report = DeliveryReport()
    if not slack_configured(settings):
        return report
    post = _sender(settings)
    for _ in range(limit):
        with engine.begin() as conn:
            row = conn.execute(sa.text(query("alerts", "next_pending"))).one_or_none()
            if row is None:
                break
            try:
                post(dict(row.payload))
            except Exception as exc:  # Slack down, rate limited past retries, bad channel...
                report.error = _describe_failure(exc)
                conn.execute(
                    sa.text(query("alerts", "mark_failed")), {"id": row.id, "error": report.error}
                )
                log.warning("slack delivery failed, will retry next run: %s", report.error)
                break
            conn.execute(sa.text(query("alerts", "mark_sent")), {"id": row.id})
            report.sent += 1
    with engine.connect() as conn:
        report.pending = conn.execute(sa.text(query("alerts", "count_pending"))).scalar_one()
    return report


class PendingMessage(BaseModel):
    id: str
    deployment: str
    kind: str
    channel: str | None
    text: str
    attempts: int
    last_error: str | None
    created_at: datetime


def pending_messages(
    engine: sa.Engine, deployment: str | None = None, limit: int = 50
) -> list[PendingMessage]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(query("alerts", "pending_messages")),
            {"deployment": deployment, "limit": limit},
        )
        return [PendingMessage.model_validate(row._asdict()) for row in rows]


def unit_texts(job: EvalJob, failing: list[Any]) -> dict[str, tuple[str, str]]:
    """A failing session's or trace's transcript (its opening and ending, cut in the middle)
    and its final answer, as a failing log's prompt and response."""
    from tasks.alerts.examples import unit_transcripts

    texts: dict[str, tuple[str, str]] = {}
    for kind in ("session", "trace"):
        ids = [row.log_id for row in failing if row.unit_kind == kind]
        if ids:
            texts.update(unit_transcripts(job, kind, ids, 1200))
    return texts


def failing_examples(job: EvalJob) -> Any:
    """A function giving up to 3 failing logs of an evaluator in a run, with their text."""

    def examples(conn: sa.Connection, run_id: str, verdict: Verdict) -> list[Example]:
        from tasks.warehouse.connect import source_engine
        from tasks.warehouse.normalize import normalize_rows
        from tasks.warehouse.source import rows_by_id

        if verdict.rule.metric in AGREEMENT_METRICS:
            return []  # judge drift is about labels, not about this run's failing logs
        evaluator = verdict.measurement.evaluator
        segment = verdict.measurement.segment.partition("=")[2]
        failing = conn.execute(
            sa.text(
                query("alerts", "failing_examples").replace("{segment}", segment_sql(verdict.rule))
            ),
            {"run_id": run_id, "evaluator": evaluator, "segment": segment},
        ).all()
        if not failing:
            return []
        texts: dict[str, tuple[str, str]] = {}
        try:
            logs = [row.log_id for row in failing if row.unit_kind == "log"]
            with source_engine(job.source).connect() as source:
                rows = rows_by_id(source, job.source, logs) if logs else []
            for record in normalize_rows(rows, job.source.format)[0]:
                texts[record.id] = (record.prompt, record.response or "")
            texts.update(unit_texts(job, [r for r in failing if r.unit_kind != "log"]))
        except Exception as exc:  # examples are a courtesy; the alert goes out without them
            log.warning("could not read failing examples: %s", type(exc).__name__)
        return [
            Example(
                evaluator=evaluator,
                log_id=row.log_id if row.unit_kind == "log" else f"{row.unit_kind} {row.log_id}",
                score=row.score,
                prompt=texts.get(row.log_id, ("", ""))[0],
                response=texts.get(row.log_id, ("", ""))[1],
                reason=row.reason,
            )
            for row in failing
        ]

    return examples


def notify_on_finish(job: EvalJob, settings: AssaySettings, now: datetime, link: str | None) -> Any:
    """The `then` of a completed run: compose, and queue when Slack is configured."""

    def hook(conn: sa.Connection, summary: RunSummary) -> None:
        messages = compose(conn, job, summary, now, link, failing_examples(job))
        summary.notifications = [{"kind": m.kind, "text": m.text} for m in messages]
        # Queued whether or not Slack is configured yet: `assay outbox` shows them, and they
        # are sent, in order, once it is.
        queue(conn, job.deployment, summary.run_id, slack_channel(job, settings), messages)

    return hook


def notify_contract_broken(
    job: EvalJob, settings: AssaySettings, error: str, link: str | None
) -> Any:
    """The `then` of a run stopped by the data contract: its alert opens (or, after the
    cooldown, reminds); not one message per run."""

    def hook(conn: sa.Connection, summary: RunSummary) -> None:
        changes = pipeline_changes(conn, job, summary, datetime.now(UTC), broken=error)
        messages = [pipeline_message(job.deployment, change, link) for change in changes]
        summary.notifications = [{"kind": m.kind, "text": m.text} for m in messages]
        queue(conn, job.deployment, summary.run_id, slack_channel(job, settings), messages)

    return hook


def digest_message(
    conn: sa.Connection, job: EvalJob, now: datetime, period: timedelta
) -> SlackMessage | None:
    """One summary of the last `period` for a deployment (the daily digest), or None if idle."""
    since = now - period
    runs = conn.execute(
        sa.text(query("alerts", "digest_runs")), {"deployment": job.deployment, "since": since}
    ).one()
    if not runs.runs:
        return None
    params = {"deployment": job.deployment, "since": since, "until": now}
    before = {"deployment": job.deployment, "since": since - period, "until": since}
    previous = {
        row.evaluator: (row.passed, row.ok)
        for row in conn.execute(sa.text(query("alerts", "digest_results")), before)
    }
    confidence = job.alerts.confidence
    lines = [
        EvaluatorLine(
            evaluator=row.evaluator,
            ok=row.ok,
            pass_rate=row.passed / row.ok if row.ok else None,
            change=rate_change(
                row.passed,
                row.ok,
                *previous.get(row.evaluator, (0, 0)),
                confidence,
                job.alerts.min_samples,
            ),
            errors=row.errors,
            skipped=row.skipped,
            cost_usd=row.cost_usd,
        )
        for row in conn.execute(sa.text(query("alerts", "digest_results")), params)
    ]
    breaches = [
        open_breach_line(_measurement(row), confidence, row.opened_at, row.opened_value)
        for row in open_alerts(conn, job.deployment)
    ]
    run = {**runs._asdict(), "window_start": runs.window_start or since}
    title = f"Assay daily digest: {job.deployment} ({runs.runs} runs)"
    return summary_message(
        job.deployment, run, lines, breaches, [], None, title=title, confidence=confidence
    )
