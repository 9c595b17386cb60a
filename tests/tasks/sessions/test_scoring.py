"""A unit's scores: a free evaluator that raises costs one `error` row, and unit judges sample
units the way log judges sample logs (deterministic, at least `min_per_stratum`)."""

from datetime import UTC, datetime

from evaluators.base import Score
from evaluators.heuristics.unit_checks import unit_evaluators
from evaluators.records import LogRecord
from evaluators.unit_records import Session
from tasks.config import parse_job
from tasks.sessions.pending import Unit, session_judges
from tasks.sessions.scoring import free_rows, unit_sample

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def segment(customer: str) -> dict[str, str | None]:
    empty: dict[str, str | None] = dict.fromkeys(
        ("model", "provider", "prompt_slug", "topic", "environment")
    )
    return {**empty, "customer_id": customer}


def unit(unit_id: str, customer: str = "acme") -> Unit:
    turn = LogRecord(id=f"{unit_id}-1", ts=T0, prompt="hi", response="hello", session_id=unit_id)
    return Unit(kind="session", unit=Session(session_id=unit_id, turns=[turn]), unit_id=unit_id,
                last_ts=T0, items=1, segment=segment(customer))  # fmt: skip


def test_a_free_unit_evaluator_that_raises_is_one_error_row() -> None:
    broken_cls = unit_evaluators()["turn_count"]

    class Broken(broken_cls):  # type: ignore[misc, valid-type]
        def check(self, unit: object) -> Score:
            raise RuntimeError("boom")

    rows = free_rows("chat", unit("s1"), [Broken(), broken_cls()], "run")
    assert [r.status for r in rows] == ["error", "ok"]
    assert rows[0].reason is not None and "RuntimeError: boom" in rows[0].reason


def test_unit_judges_sample_deterministically_with_a_minimum_per_stratum() -> None:
    job = parse_job({"deployment": "chat", "sampling": {"rate": 0.0, "min_per_stratum": 2,
                     "stratify_by": ["customer_id"]},
                     "evaluators": [{"name": "conversation_resolved"}]})  # fmt: skip
    judges = session_judges(job)
    units = [unit(f"s{i}", "acme" if i < 5 else "globex") for i in range(8)]
    first = unit_sample(job, units, judges)
    again = unit_sample(job, list(reversed(units)), judges)
    # Rate 0 with a minimum of 2: two units of each customer, the same ones whatever the order.
    assert sorted(u.unit_id for u, _, _ in first) == sorted(u.unit_id for u, _, _ in again)
    by_customer: dict[str, int] = {}
    for u, _, weight in first:
        customer = u.segment["customer_id"] or ""
        by_customer[customer] = by_customer.get(customer, 0) + 1
        assert weight > 1  # a sampled unit stands for its stratum's others
    assert by_customer == {"acme": 2, "globex": 2}
