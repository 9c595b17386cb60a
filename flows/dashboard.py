"""`assay dashboard`: one self-contained HTML file of charts, from the same rollup queries as
`assay report` (plotly.js is inlined, so the file opens with no network)."""

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import sqlalchemy as sa

from tasks.analytics.report import Bucket, By, score_rows, spend_rows, usage_rows

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
    return {
        "generated_at": datetime.now().astimezone().isoformat(timespec="seconds"),
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


def render_dashboard(data: dict[str, Any]) -> str:
    from plotly.offline import get_plotlyjs

    payload = json.dumps(data, default=str).replace("</", "<\\/")
    page = TEMPLATE.read_text()
    return page.replace("/*PLOTLY_JS*/", get_plotlyjs()).replace("/*DASHBOARD_DATA*/", payload)


def write_dashboard(
    engine: sa.Engine, out: Path, deployment: str | None, since: datetime, until: datetime
) -> int:
    html = render_dashboard(dashboard_data(engine, deployment, since, until))
    out.write_text(html, encoding="utf-8")
    return len(html.encode())
