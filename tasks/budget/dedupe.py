"""Identical (prompt, response, context) are judged once per evaluator version: later copies
reuse the verdict already in `assay.scores` (at no cost), with a reason naming the source."""

from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from tasks.store.sql import query


class KnownVerdict(BaseModel):
    log_id: str
    score: float | None
    passed: bool | None
    label: str | None
    reason: str | None
    judge_model: str | None


def known_verdicts(
    engine: sa.Engine, deployment: str, evaluator: str, version: str, hashes: list[str]
) -> dict[str, KnownVerdict]:
    if not hashes:
        return {}
    params: dict[str, Any] = {
        "deployment": deployment,
        "evaluator": evaluator,
        "evaluator_version": version,
        "hashes": hashes,
    }
    with engine.connect() as conn:
        rows = conn.execute(sa.text(query("budget", "known_verdicts")), params)
        return {
            row.content_hash: KnownVerdict.model_validate(row._asdict(), from_attributes=False)
            for row in rows
        }
