"""Agreement between judges and people, read from Postgres: per deployment, evaluator and judge
version, overall and per week of judging, plus inter-annotator agreement."""

from typing import Any

import sqlalchemy as sa

from tasks.stats.agreement import (
    MIN_LABELS,
    Agreement,
    Pair,
    ThresholdSuggestion,
    agreement,
    cohen_kappa,
    suggest_threshold,
)
from tasks.store.sql import query


def label_pairs(
    conn: sa.Connection, deployment: str | None, evaluator: str | None
) -> dict[tuple[str, str, str], list[Any]]:
    """(deployment, evaluator, judge version) -> its labelled pairs (rows with `judged_at`)."""
    found: dict[tuple[str, str, str], list[Any]] = {}
    for row in conn.execute(
        sa.text(query("labels", "label_pairs")), {"deployment": deployment, "evaluator": evaluator}
    ):
        found.setdefault((row.deployment, row.evaluator, row.evaluator_version), []).append(row)
    return found


def as_pair(row: Any) -> Pair:
    return Pair(log_id=row.log_id, judge_passed=bool(row.judge_passed),
                judge_score=row.judge_score, human_passed=bool(row.human_passed),
                human_score=row.human_score, weight=float(row.weight))  # fmt: skip


def agreements(
    conn: sa.Connection,
    deployment: str | None = None,
    evaluator: str | None = None,
    min_labels: int = MIN_LABELS,
    confidence: float = 0.95,
    weekly: bool = True,
) -> list[Agreement]:
    """Overall and (with `weekly`) per ISO week of judging, per judge version."""
    people: dict[tuple[str, str], tuple[list[bool], list[bool]]] = {}
    for row in conn.execute(sa.text(query("labels", "annotator_pairs")),
                            {"deployment": deployment, "evaluator": evaluator}):  # fmt: skip
        first, second = people.setdefault((row.deployment, row.criterion), ([], []))
        first.append(bool(row.first))
        second.append(bool(row.second))
    found: list[Agreement] = []
    for (name, judge, version), rows in sorted(label_pairs(conn, deployment, evaluator).items()):
        overall = agreement([as_pair(r) for r in rows], judge, version, "overall", min_labels,
                            confidence)  # fmt: skip
        overall.deployment = name
        x, y = people.get((name, judge), ([], []))
        overall.inter_annotator_kappa, overall.inter_annotator_logs = cohen_kappa(x, y), len(x)
        found.append(overall)
        if not weekly:
            continue
        weeks: dict[str, list[Any]] = {}
        for r in rows:
            year, week, _ = r.judged_at.isocalendar()
            weeks.setdefault(f"{year}-W{week:02d}", []).append(r)
        for period in sorted(weeks):
            one = agreement([as_pair(r) for r in weeks[period]], judge, version, period,
                            min_labels, confidence)  # fmt: skip
            one.deployment = name
            found.append(one)
    return found


def threshold_suggestions(
    conn: sa.Connection, deployment: str | None, evaluator: str | None, thresholds: dict[str, float]
) -> dict[tuple[str, str, str], ThresholdSuggestion | None]:
    """Per judge version with a known current threshold (`thresholds` by evaluator)."""
    return {
        key: suggest_threshold([as_pair(r) for r in rows], thresholds[key[1]])
        for key, rows in label_pairs(conn, deployment, evaluator).items()
        if key[1] in thresholds
    }
