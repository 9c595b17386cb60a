"""The demo's human labels: clearly synthetic. A simulated annotator labels a random sample of
the judge's verdicts, agreeing with it most of the time (it fails a fifth of the logs the judge
passed, and passes a few the judge failed), so agreement and the corrected estimate have
something to show."""

import json
import random
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tasks.store.sql import query

ANNOTATOR = "demo-annotator (synthetic)"


def synthetic_labels(
    engine: sa.Engine, deployment: str, evaluator: str, path: Path, size: int = 80
) -> Path:
    """Write a labels file (the `assay labels import` format) for up to `size` judged logs."""
    rng = random.Random(f"{deployment}/{evaluator}")
    with engine.connect() as conn:
        judged = conn.execute(sa.text(query("demo", "judged_logs")),
                              {"deployment": deployment, "evaluator": evaluator}).all()  # fmt: skip
    picked = rng.sample(judged, min(size, len(judged)))
    rows: list[dict[str, Any]] = []
    for log in picked:
        flip = rng.random() < (0.20 if log.passed else 0.05)
        rows.append({
            "deployment": deployment, "log_id": log.log_id, "criterion": evaluator,
            "passed": bool(log.passed) != flip, "annotator": ANNOTATOR,
            "note": "synthetic demo label",
        })  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
