"""`assay dashboard`: one self-contained HTML file of charts, from the same rollup queries as
`assay report` (plotly.js is inlined, so the file opens with no network)."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import sqlalchemy as sa

from tasks.analytics.report import Bucket, By, score_rows, spend_rows, usage_rows
from tasks.store.sql import query

TEMPLATE = Path(__file__).with_name("dashboard.html")
JOBS_DIR = Path("deployments/jobs")
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
    }


EXAMPLES_PER_EVALUATOR = 5
TEXT_CHARS = 4000


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
    logs: dict[str, dict[str, Any]] = {}
    by_deployment: dict[str, set[str]] = {}
    for row in failing:
        by_deployment.setdefault(row["deployment"], set()).add(row["log_id"])
    for name, ids in by_deployment.items():
        texts = _log_texts(name, sorted(ids))
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
    return {"alerts": alerts, "failing": failing, "logs": logs}


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
            "output": _shown(row.output), "error": _shown(row.error) if row.error else None,
            "verdicts": row.verdicts or {},
        }  # fmt: skip
    items = {
        f"{row.dataset}/{row.item_id}": {
            "input": _shown(row.input),
            "expected": _shown(row.expected) if row.expected else None,
        }
        for row in conn.execute(
            sa.text(query("analytics", "dashboard_dataset_items")),
            {"datasets": sorted({e["dataset"] for e in experiments}), "chars": TEXT_CHARS},
        )
    }
    return {"experiments": experiments, "experiment_items": outputs, "dataset_items": items}


def _shown(text: str | None) -> str:
    """Outward text: secrets redacted, PII masked, bounded."""
    from evaluators.heuristics.pii import mask_pii
    from tasks.redact import redact

    return mask_pii(redact(text or ""))[:TEXT_CHARS]


def _log_texts(deployment: str, log_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Prompt, context and response of these logs, read (READ ONLY) from the deployment's
    source; masked like every other outward text. Empty when there is no job file here or the
    source cannot be read (the scores still show)."""
    from tasks.config import load_job
    from tasks.pipeline import fitted_job, source_engine
    from tasks.warehouse.normalize import normalize_rows
    from tasks.warehouse.source import rows_by_id

    path = JOBS_DIR / f"{deployment}.yaml"
    if not path.exists():
        return {}
    try:
        job = fitted_job(load_job(path))
        with source_engine(job.source).connect() as conn:
            rows = rows_by_id(conn, job.source, log_ids)
    except Exception:  # the drill-down is a courtesy; the charts do not depend on it
        return {}

    records = normalize_rows(rows, job.source.format)[0]
    return {
        r.id: {"ts": r.ts.isoformat(), "prompt": _shown(r.prompt), "response": _shown(r.response),
               "context": [_shown(c) for c in r.context[:8]], "model": r.model}
        for r in records
    }  # fmt: skip


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
