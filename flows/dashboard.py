"""`assay dashboard`: one self-contained HTML file of charts, from the same rollup queries as
`assay report` (plotly.js is inlined, so the file opens with no network)."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import sqlalchemy as sa

from tasks.alerts.examples import TEXT_CHARS, job_texts, job_unit_texts, shown
from tasks.analytics.report import Bucket, By, score_rows, spend_rows, usage_rows
from tasks.store.sql import query

TEMPLATE = Path(__file__).with_name("dashboard.html")
SAFETY_EVALUATORS = ("pii", "secrets", "prompt_injection")


def dashboard_data(
    engine: sa.Engine, deployment: str | None, since: datetime, until: datetime
) -> dict[str, Any]:
    """Everything the page draws: per time bucket, quality and usage of the whole deployment;
    over the whole range, quality per slice (segment comparison, distributions); spend."""
    bucket: Bucket = "hour" if until - since <= timedelta(days=3) else "day"
    quality: list[dict[str, Any]] = []
    compare: list[dict[str, Any]] = []
    usage: list[dict[str, Any]] = []
    with engine.connect() as conn:
        for row in score_rows(conn, deployment, since, until, "all", bucket=bucket):
            quality.append({"dim": "all", **row.model_dump(mode="json")})
        for usage_row in usage_rows(conn, deployment, since, until, "all", bucket=bucket):
            usage.append({"dim": "all", **usage_row.model_dump(mode="json")})
        for dim in get_args(By):
            for row in score_rows(conn, deployment, since, until, dim, bucket="all"):
                compare.append({"dim": dim, **row.model_dump(mode="json")})
        spend = spend_rows(conn, deployment, since, until)
        drill = drill_down(conn, deployment, since, until)
        experiments = experiments_data(conn)
        window = {"deployment": deployment, "since": since, "until": until}
        units = [row._asdict() for row in conn.execute(
            sa.text(query("analytics", "dashboard_units")), window)]  # fmt: skip
        unit_quality = [row._asdict() for row in conn.execute(
            sa.text(query("analytics", "dashboard_unit_quality")), window)]  # fmt: skip
        failing_units = failing_unit_examples(conn, window)
        agreement = [
            {**row._asdict(), "week": row.week.isoformat()}
            for row in conn.execute(
                sa.text(query("analytics", "dashboard_agreement")), {"deployment": deployment}
            )
        ]
    return {
        **drill,
        **experiments,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "since": since.isoformat(),
        "until": until.isoformat(),
        "bucket": bucket,
        "deployment": deployment,
        "safety_evaluators": list(SAFETY_EVALUATORS),
        "quality": quality,
        "compare": compare,
        "usage": usage,
        "spend": [s.model_dump(mode="json") for s in spend],
        "agreement": agreement,
        "units": units,
        "unit_quality": unit_quality,
        "failing_units": failing_units,
    }


EXAMPLES_PER_EVALUATOR = 5
EXAMPLES_PER_ALERT = 3


def failing_unit_examples(conn: sa.Connection, window: dict[str, Any]) -> list[dict[str, Any]]:
    """The latest failing sessions and traces per unit evaluator, each with its transcript
    (from the source, when its job file is here)."""
    failing = [
        {**row._asdict(), "log_ts": row.log_ts.isoformat()}
        for row in conn.execute(sa.text(query("analytics", "failing_units")),
                                {**window, "per_evaluator": EXAMPLES_PER_EVALUATOR})
    ]  # fmt: skip
    wanted: dict[tuple[str, str], set[str]] = {}
    for row in failing:
        wanted.setdefault((row["deployment"], row["unit_kind"]), set()).add(row["unit_id"])
    texts = {key: job_unit_texts(*key, sorted(ids)) for key, ids in wanted.items()}
    for row in failing:
        row["transcript"] = texts[(row["deployment"], row["unit_kind"])].get(row["unit_id"])
    return failing


def drill_down(
    conn: sa.Connection, deployment: str | None, since: datetime, until: datetime
) -> dict[str, Any]:
    """Open breaches, the latest failing logs per evaluator, and for each of those logs its
    text (from the source, when its job file is here) and every score with its reason."""
    alerts = [
        {**row._asdict(), "opened_at": row.opened_at.isoformat()}
        for row in conn.execute(
            sa.text(query("analytics", "open_alerts_all")), {"deployment": deployment}
        )
    ]
    failing = [
        {**row._asdict(), "log_ts": row.log_ts.isoformat()}
        for row in conn.execute(
            sa.text(query("analytics", "failing_logs")),
            {"deployment": deployment, "since": since, "until": until,
             "per_evaluator": EXAMPLES_PER_EVALUATOR},
        )
    ]  # fmt: skip
    # Each alert's examples come from its own segment (five segments of one evaluator's alert
    # used to link the same three logs).
    alert_examples = [
        {**row._asdict(), "log_ts": row.log_ts.isoformat()}
        for row in conn.execute(
            sa.text(query("analytics", "alert_examples")),
            {"deployment": deployment, "since": since, "until": until,
             "per_alert": EXAMPLES_PER_ALERT},
        )
    ]  # fmt: skip
    logs: dict[str, dict[str, Any]] = {}
    by_deployment: dict[str, set[str]] = {}
    for row in failing + alert_examples:
        by_deployment.setdefault(row["deployment"], set()).add(row["log_id"])
    for name, ids in by_deployment.items():
        texts = job_texts(name, sorted(ids))
        scores = conn.execute(
            sa.text(query("analytics", "log_scores")), {"deployment": name, "log_ids": sorted(ids)}
        ).all()
        for log_id in ids:
            logs[f"{name}/{log_id}"] = {
                "deployment": name,
                "log_id": log_id,
                **texts.get(log_id, {"unavailable": True}),
                "scores": [s._asdict() for s in scores if s.log_id == log_id],
            }
    return {"alerts": alerts, "alert_examples": alert_examples, "failing": failing, "logs": logs}


EXPERIMENTS_PER_DATASET = 20
MAX_EXPERIMENT_ROWS = 50_000


def experiments_data(conn: sa.Connection) -> dict[str, Any]:
    """The experiments page: each dataset's newest experiments with their pass rates, and per
    experiment and item the output and verdicts (the side-by-side diff of two experiments)."""
    experiments = [
        {**row._asdict(), "created_at": row.created_at.isoformat()}
        for row in conn.execute(
            sa.text(query("analytics", "dashboard_experiments")),
            {"per_dataset": EXPERIMENTS_PER_DATASET},
        )
    ]
    outputs: dict[str, dict[str, Any]] = {}
    for row in conn.execute(
        sa.text(query("analytics", "dashboard_experiment_items")),
        {"ids": [e["experiment_id"] for e in experiments], "chars": TEXT_CHARS,
         "max_rows": MAX_EXPERIMENT_ROWS},
    ):  # fmt: skip
        outputs.setdefault(row.experiment_id, {})[row.item_id] = {
            "output": shown(row.output), "error": shown(row.error) if row.error else None,
            "verdicts": row.verdicts or {},
        }  # fmt: skip
    items = {
        f"{row.dataset}/{row.item_id}": {
            "input": shown(row.input),
            "expected": shown(row.expected) if row.expected else None,
        }
        for row in conn.execute(
            sa.text(query("analytics", "dashboard_dataset_items")),
            {"datasets": sorted({e["dataset"] for e in experiments}), "chars": TEXT_CHARS},
        )
    }
    return {"experiments": experiments, "experiment_items": outputs, "dataset_items": items}


def render_dashboard(data: dict[str, Any]) -> str:
    from plotly.offline import get_plotlyjs

    # Log text is data: every character that could end or reopen a script element is escaped.
    payload = (
        json.dumps(data, default=str)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )
    page = TEMPLATE.read_text()
    return page.replace("/*PLOTLY_JS*/", get_plotlyjs()).replace("/*DASHBOARD_DATA*/", payload)


def write_dashboard(
    engine: sa.Engine, out: Path, deployment: str | None, since: datetime, until: datetime
) -> int:
    html = render_dashboard(dashboard_data(engine, deployment, since, until))
    out.write_text(html, encoding="utf-8")
    return len(html.encode())
