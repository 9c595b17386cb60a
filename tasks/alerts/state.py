"""The alert state machine: an alert opens on a breach, reminds after the cooldown, recovers when
the rule holds again; the pipeline's own checks (traffic, the data contract) the same way."""

import json
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel

from tasks.alerts.rules import Verdict
from tasks.store.sql import query


class Transition(BaseModel):
    """What the alert state machine decided for one verdict, and whether to tell anyone."""

    kind: Literal["breach", "reminder", "recovery"]
    verdict: Verdict
    open_for: timedelta | None = None


# -- alert state -----------------------------------------------------------------------------------
def transition(
    conn: sa.Connection,
    deployment: str,
    run_id: str,
    verdict: Verdict,
    cooldown: timedelta,
    now: datetime,
) -> Transition | None:
    """Open, remind, or resolve the alert this verdict speaks to; None when nobody is told."""
    m = verdict.measurement
    step = advance(
        conn,
        {"deployment": deployment, "evaluator": m.evaluator, "metric": m.metric,
         "segment": m.segment},
        {"rule": json.dumps(verdict.rule.model_dump(mode="json")), "value": m.value, "low": m.low,
         "high": m.high, "n": m.n, "run_id": run_id},
        breached=verdict.state == "breach",
        healthy=verdict.state == "healthy",
        cooldown=cooldown,
        now=now,
    )  # fmt: skip
    if step is None:
        return None
    kind, open_for = step
    return Transition(kind=kind, verdict=verdict, open_for=open_for)


def advance(
    conn: sa.Connection,
    key: dict[str, str],
    fields: dict[str, Any],
    breached: bool,
    healthy: bool,
    cooldown: timedelta,
    now: datetime,
) -> tuple[Literal["breach", "reminder", "recovery"], timedelta | None] | None:
    """The alert state machine, one step: open on a breach, remind after `cooldown` while it
    lasts, resolve when healthy again. What to tell, or None."""
    current = conn.execute(sa.text(query("alerts", "get_alert")), key).one_or_none()
    is_open = current is not None and current.status == "open"
    values = {**key, **fields, "now": now}
    if breached and not is_open:
        conn.execute(sa.text(query("alerts", "open_alert")), values)
        return "breach", None
    if breached and current is not None:
        conn.execute(sa.text(query("alerts", "update_alert")), values)
        if now - current.last_notified_at >= cooldown:
            conn.execute(sa.text(query("alerts", "mark_notified")), values)
            return "reminder", now - current.opened_at
        return None
    if healthy and is_open and current is not None:
        conn.execute(sa.text(query("alerts", "resolve_alert")), values)
        return "recovery", now - current.opened_at
    return None


#: Alerts about the log pipeline itself rather than an evaluator (same table and state machine).
PIPELINE = "(pipeline)"


PipelineCheck = Literal["traffic", "data_contract"]


class PipelineTransition(BaseModel):
    kind: Literal["breach", "reminder", "recovery"]
    check: PipelineCheck
    detail: str
    open_for: timedelta | None = None


def pipeline_transition(
    conn: sa.Connection,
    deployment: str,
    run_id: str,
    check: PipelineCheck,
    failing: bool,
    detail: str,
    cooldown: timedelta,
    now: datetime,
) -> PipelineTransition | None:
    """A dead log pipeline (no traffic) or a broken data contract, as an alert of its own:
    opened, reminded after the cooldown, recovered when a run sees it healthy again."""
    step = advance(
        conn,
        {"deployment": deployment, "evaluator": PIPELINE, "metric": check, "segment": ""},
        {"rule": json.dumps({"check": check, "detail": detail}), "value": None, "low": None,
         "high": None, "n": None, "run_id": run_id},
        breached=failing,
        healthy=not failing,
        cooldown=cooldown,
        now=now,
    )  # fmt: skip
    if step is None:
        return None
    return PipelineTransition(kind=step[0], check=check, detail=detail, open_for=step[1])


def open_alerts(conn: sa.Connection, deployment: str) -> list[Any]:
    return list(
        conn.execute(sa.text(query("alerts", "open_alerts")), {"deployment": deployment}).all()
    )
