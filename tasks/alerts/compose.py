"""What a finished run (or a digest) has to say: breaches, recoveries and reminders of the rules,
the pipeline's own alerts, judge health and the summary, as Slack messages."""

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from tasks.alerts.rules import Measurement, Verdict, verdicts
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
from tasks.alerts.state import (
    PIPELINE,
    PipelineCheck,
    PipelineTransition,
    Transition,
    open_alerts,
    pipeline_transition,
    transition,
)
from tasks.config import EvalJob
from tasks.stats.intervals import rate_change
from tasks.store.runs import RunSummary
from tasks.store.sql import query

#: The batch failure a quiet window under `quality.expect_traffic` records (see the lifecycle).
NO_TRAFFIC = "no logs in the window although quality.expect_traffic is set"


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
