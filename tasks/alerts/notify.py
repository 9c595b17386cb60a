"""Notifications: decide what to tell (rules, alert state, judge health, the run summary), queue
it in the transactional outbox with the run's results, and deliver the outbox to Slack.

Delivery never fails or rolls back a run: what cannot be sent stays pending, in order, and the
next run (or `deliver_pending`) sends it. Each message has a stable id, so queueing it twice
does nothing, and a row lock per message means two senders never post the same one.
"""

import json
import logging
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from tasks.alerts.rules import (
    Measurement,
    Transition,
    Verdict,
    open_alerts,
    segment_sql,
    transition,
    verdicts,
)
from tasks.alerts.slack_messages import (
    EvaluatorLine,
    Example,
    SlackMessage,
    describe,
    health_message,
    summary_message,
    transition_message,
)
from tasks.config import EvalJob
from tasks.redact import redact
from tasks.secrets import resolve
from tasks.settings import AssaySettings
from tasks.store.runs import RunSummary
from tasks.store.sql import query

log = logging.getLogger("assay.notify")


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
    messages: list[SlackMessage] = []
    changes: list[Transition] = []
    for verdict in verdicts(conn, summary.run_id, alerts):
        change = transition(conn, job.deployment, summary.run_id, verdict, alerts.cooldown, now)
        if change is not None:
            changes.append(change)
    for change in changes:
        confidence = change.verdict.rule.confidence or alerts.confidence
        examples: list[Example] = []
        if change.kind != "recovery" and examples_for is not None:
            examples = examples_for(conn, summary.run_id, change.verdict)
        messages.append(transition_message(job.deployment, change, confidence, examples, link))
    health = judge_health(summary, alerts.max_judge_error_rate)
    if health:
        messages.append(health_message(job.deployment, health, link))
    still_open = open_alerts(conn, job.deployment)
    breaches = [
        describe(_measurement(row), alerts.confidence) + f" since {row.opened_at:%Y-%m-%d %H:%M}"
        for row in still_open
    ]
    breached = [Verdict(measurement=_measurement(row), rule=row.rule, state="breach")
                for row in still_open]  # fmt: skip
    # "digest": the `digest` flow posts one summary a day instead of one per run.
    wants_summary = alerts.summary == "always" or (alerts.summary == "on_breach" and breaches)
    if wants_summary:
        previous = {
            row.evaluator: row.passed / row.ok if row.ok else None
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
                previous=previous.get(r.evaluator),
                errors=r.errors,
                skipped=r.skipped,
                cost_usd=r.cost_usd,
            )
            for r in summary.evaluators
        ]
        examples = [
            example
            for verdict in breached
            for example in (examples_for(conn, summary.run_id, verdict) if examples_for else [])
        ]
        messages.append(
            summary_message(
                job.deployment, summary.model_dump(), lines, breaches, health, link, examples
            )
        )
    return messages


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
            if not payload.get("channel"):
                raise RuntimeError("no channel: set alerts.channel or ASSAY_SLACK_CHANNEL")
            client.chat_postMessage(**payload)  # raises SlackApiError when ok is false

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


def failing_examples(job: EvalJob) -> Any:
    """A function giving up to 3 failing logs of an evaluator in a run, with their text."""

    def examples(conn: sa.Connection, run_id: str, verdict: Verdict) -> list[Example]:
        from tasks.pipeline import source_engine
        from tasks.warehouse.normalize import normalize_rows
        from tasks.warehouse.source import rows_by_id

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
        try:
            with source_engine(job.source).connect() as source:
                rows = rows_by_id(source, job.source, [row.log_id for row in failing])
        except Exception as exc:  # examples are a courtesy; the alert goes out without them
            log.warning("could not read failing examples: %s", type(exc).__name__)
            rows = []
        records = {record.id: record for record in normalize_rows(rows, job.source.format)[0]}
        return [
            Example(
                evaluator=evaluator,
                log_id=row.log_id,
                score=row.score,
                prompt=records[row.log_id].prompt if row.log_id in records else "",
                response=(records[row.log_id].response or "") if row.log_id in records else "",
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
        if slack_configured(settings):
            queue(conn, job.deployment, summary.run_id, slack_channel(job, settings), messages)

    return hook


def notify_contract_broken(
    job: EvalJob, settings: AssaySettings, error: str, link: str | None
) -> Any:
    """The `then` of a run stopped by the data contract: one loud message."""
    from tasks.alerts.slack_messages import contract_message

    def hook(conn: sa.Connection, summary: RunSummary) -> None:
        message = contract_message(job.deployment, error, link)
        summary.notifications = [{"kind": message.kind, "text": message.text}]
        if slack_configured(settings):
            queue(conn, job.deployment, summary.run_id, slack_channel(job, settings), [message])

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
        row.evaluator: row.passed / row.ok if row.ok else None
        for row in conn.execute(sa.text(query("alerts", "digest_results")), before)
    }
    lines = [
        EvaluatorLine(
            evaluator=row.evaluator,
            ok=row.ok,
            pass_rate=row.passed / row.ok if row.ok else None,
            previous=previous.get(row.evaluator),
            errors=row.errors,
            skipped=row.skipped,
            cost_usd=row.cost_usd,
        )
        for row in conn.execute(sa.text(query("alerts", "digest_results")), params)
    ]
    breaches = [
        describe(_measurement(row), job.alerts.confidence)
        + f" since {row.opened_at:%Y-%m-%d %H:%M}"
        for row in open_alerts(conn, job.deployment)
    ]
    run = {**runs._asdict(), "window_start": runs.window_start or since}
    title = f"Assay daily digest: {job.deployment} ({runs.runs} runs)"
    return summary_message(job.deployment, run, lines, breaches, [], None, title=title)
