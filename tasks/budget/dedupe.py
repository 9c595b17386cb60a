"""Identical (prompt, response, context) are judged once per evaluator version: later copies
reuse the verdict already in `assay.scores` (at no cost), with a reason naming the source.

A deployment dedupes within itself; checks (deployments `experiment-<id>`) share verdicts
across every experiment, so a CI rerun on a new commit pays nothing for an unchanged item."""

from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from tasks.config.job import EXPERIMENT_PREFIX
from tasks.store.sql import query


class KnownVerdict(BaseModel):
    log_id: str
    score: float | None
    passed: bool | None
    label: str | None
    reason: str | None
    judge_model: str | None
    deployment: str | None = None  # where it was judged, when another experiment did it


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
    shared = deployment.startswith(EXPERIMENT_PREFIX)
    with engine.connect() as conn:
        sql = (
            query("budget", "known_verdicts_shared")
            if shared
            else query("budget", "known_verdicts")
        )
        rows = conn.execute(sa.text(sql), params)
        return {
            row.content_hash: KnownVerdict.model_validate(row._asdict(), from_attributes=False)
            for row in rows
        }
