"""Annotation queues in Postgres: drawn once (see `queue`), then claimed item by item by
annotators (one holder per item; a claim lapses when its page stops renewing it)."""

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from tasks.config import EvalJob, SegmentBy
from tasks.errors import ClaimLost, ConfigError, did_you_mean
from tasks.labels.draw import Judged, Stratum, draw
from tasks.labels.rows import LabelRow
from tasks.labels.store import save_label
from tasks.store.sql import query

#: How long a claim lasts without the page renewing it (a closed tab frees its item after this).
CLAIM_S = 120.0
#: Items one annotator may hold at once: the page shows one at a time.
MAX_CLAIMS = 1


class QueueInfo(BaseModel):
    queue_id: int
    name: str
    deployment: str
    evaluator: str
    evaluator_version: str
    since: datetime
    until: datetime
    design: dict[str, Stratum]
    created_at: datetime
    size: int
    labelled: int


def create_queue(
    engine: sa.Engine,
    job: EvalJob,
    name: str,
    evaluator: str,
    window: tuple[datetime, datetime],
    size: int,
    by: SegmentBy | None = None,
    uncertain_share: float = 0.0,
    texts: Any = None,
) -> QueueInfo:
    """Draw the queue from the judged logs of the evaluator's newest version in the window and
    store it with each item's text (`texts(log_ids)` reads it from the source)."""
    configured = [e.name for e in job.evaluators]
    if evaluator not in configured:
        raise ConfigError(
            f"{job.deployment} has no {evaluator} evaluator, so there are no verdicts of it to "
            f"check{did_you_mean(evaluator, configured)}; add it to the job file, or pick a "
            "deployment that has it"
        )
    threshold = next(
        (getattr(e.build(), "threshold", 0.5) for e in job.evaluators if e.name == evaluator), 0.5
    )
    since, until = window
    where = {"deployment": job.deployment, "evaluator": evaluator, "since": since, "until": until}
    with engine.connect() as conn:
        version = conn.execute(sa.text(query("labels", "newest_version")), where).scalar()
        if version is None:
            raise ConfigError(
                f"no judged {evaluator} scores for {job.deployment} in that window: nothing to "
                "annotate (run the deployment first, or widen --since)"
            )
        rows = [r for r in conn.execute(sa.text(query("labels", "judged_population")), where)
                if r.evaluator_version == version]  # fmt: skip
    population = [
        Judged(r.log_id, r.passed, r.score, r.reason, None if by is None else getattr(r, by))
        for r in rows
    ]
    drawn, design = draw(population, size, seed=name, threshold=threshold,
                         uncertain_share=uncertain_share)  # fmt: skip
    shown = texts([d.log_id for d in drawn]) if texts is not None else {}
    with engine.begin() as conn:
        try:
            queue_id = conn.execute(sa.text(query("labels", "create_queue")), {
                **where, "name": name, "evaluator_version": version,
                "design": json.dumps({k: v.model_dump() for k, v in design.items()}),
            }).scalar_one()  # fmt: skip
        except sa.exc.IntegrityError:
            raise ConfigError(
                f"a queue named {name!r} exists already; pick another --name"
            ) from None
        if drawn:
            conn.execute(sa.text(query("labels", "add_queue_item")), [
                {**d.model_dump(), "queue_id": queue_id,
                 "shown": json.dumps(shown.get(d.log_id, {"unavailable": True}))}
                for d in drawn
            ])  # fmt: skip
    return get_queue(engine, name)


def get_queue(engine: sa.Engine, name: str) -> QueueInfo:
    with engine.connect() as conn:
        row = conn.execute(sa.text(query("labels", "get_queue")), {"name": name}).one_or_none()
        if row is None:
            known = [r.name for r in conn.execute(sa.text(query("labels", "list_queues")))]
            raise ConfigError(f"no annotation queue {name!r}{did_you_mean(name, known)}")
    return QueueInfo.model_validate(row._asdict())


def list_queues(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(query("labels", "list_queues"))))


def claim_next(engine: sa.Engine, queue_id: int, annotator: str, claim_s: float = CLAIM_S) -> Any:
    """The annotator's item: the one they hold, else the next free one. Nobody holds more than
    MAX_CLAIMS items, so nobody can hoard the queue."""
    who = {"queue_id": queue_id, "annotator": annotator}
    with engine.begin() as conn:
        conn.execute(sa.text(query("labels", "lock_annotator")), who)
        return conn.execute(
            sa.text(query("labels", "claim_next")),
            {**who, "claim_s": claim_s, "max_claims": MAX_CLAIMS},
        ).one_or_none()


def renew_claim(
    engine: sa.Engine, queue_id: int, log_id: str, annotator: str, claim_s: float = CLAIM_S
) -> bool:
    with engine.begin() as conn:
        return bool(conn.execute(
            sa.text(query("labels", "renew_claim")),
            {"queue_id": queue_id, "log_id": log_id, "annotator": annotator, "claim_s": claim_s},
        ).rowcount)  # fmt: skip


def answer(
    engine: sa.Engine,
    queue: QueueInfo,
    log_id: str,
    annotator: str,
    passed: bool,
    note: str | None,
) -> Any:
    """Store the annotator's verdict and close the item, in one transaction; returns the
    judge's verdict, which the page reveals only now."""
    with engine.begin() as conn:
        judge = conn.execute(
            sa.text(query("labels", "finish_item")),
            {"queue_id": queue.queue_id, "log_id": log_id, "annotator": annotator},
        ).one_or_none()
        if judge is None:
            raise ClaimLost(f"{log_id} is not claimed by {annotator} (the claim expired?)")
        row = LabelRow(deployment=queue.deployment, log_id=log_id, criterion=queue.evaluator,
                       passed=passed, note=note, annotator=annotator)  # fmt: skip
        save_label(conn, row, "annotation", queue.queue_id)
    return judge


def skip(engine: sa.Engine, queue_id: int, log_id: str, annotator: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(query("labels", "skip_item")),
                     {"queue_id": queue_id, "log_id": log_id, "annotator": annotator})  # fmt: skip
