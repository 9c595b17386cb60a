"""Sampling and the spend ledger, as properties (hypothesis) on real Postgres where it matters."""

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluators.records import LogRecord
from evaluators.registry import build_evaluator
from tasks.budget.ledger import Ledger
from tasks.budget.sampling import plan_page
from tasks.config import BudgetConfig, SamplingConfig

TS = datetime(2026, 11, 1, tzinfo=UTC)
DB_SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def records(n: int, models: list[str] | None = None) -> list[LogRecord]:
    models = models or ["m"]
    return [
        LogRecord(id=f"log-{i}", ts=TS, prompt=f"p{i}", response="r", model=models[i % len(models)])
        for i in range(n)
    ]


JUDGE = build_evaluator("faithfulness", {})


@given(
    ids=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=200, unique=True),
    low=st.floats(0, 1),
    high=st.floats(0, 1),
)
def test_samples_are_deterministic_and_nested(ids: list[str], low: float, high: float) -> None:
    low, high = sorted((low, high))
    logs = [LogRecord(id=i, ts=TS, prompt="p") for i in ids]

    def chosen(rate: float) -> set[str]:
        plan = plan_page(logs, [JUDGE], SamplingConfig(rate=rate, seed="s"))
        return {item.record.id for item in plan.items}

    assert chosen(low) == chosen(low)  # a rerun or a backfill picks the same logs
    assert chosen(low) <= chosen(high)  # raising the rate only adds logs


@given(
    sizes=st.lists(st.integers(1, 60), min_size=1, max_size=6),
    minimum=st.integers(0, 10),
    rate=st.floats(0, 0.3),
)
def test_every_stratum_reaches_its_minimum_and_weights_add_up(
    sizes: list[int], minimum: int, rate: float
) -> None:
    logs = [
        LogRecord(id=f"s{s}-{i}", ts=TS, prompt="p", model=f"model-{s}")
        for s, size in enumerate(sizes)
        for i in range(size)
    ]
    sampling = SamplingConfig(rate=rate, stratify_by=["model"], min_per_stratum=minimum)
    plan = plan_page(logs, [JUDGE], sampling)
    for s, size in enumerate(sizes):
        in_stratum = [i for i in plan.items if i.record.model == f"model-{s}"]
        assert len(in_stratum) >= min(minimum, size)
        if in_stratum:  # the weights of a stratum's sample add up to its population
            assert sum(i.weight for i in in_stratum) == pytest.approx(size)
    counts = plan.strata["faithfulness"]
    assert sum(c.population for c in counts.values()) == len(logs)


def test_priority_logs_come_first_and_stay_out_of_population_estimates() -> None:
    logs = records(100)
    flagged = {"log-3", "log-50"}
    plan = plan_page(logs, [JUDGE], SamplingConfig(rate=0.0, priority=["flagged"]), flagged=flagged)
    assert [i.record.id for i in plan.items] == ["log-3", "log-50"]
    assert all(i.priority and i.weight == 0 for i in plan.items)


def ledger(engine: sa.Engine, deployment: str, **caps: float | int | None) -> Ledger:
    return Ledger(engine, deployment, str(uuid.uuid4()), BudgetConfig(**caps))


def spent(engine: sa.Engine, deployment: str) -> tuple[float, float]:
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT spent_usd, reserved_usd FROM assay.spend WHERE deployment = :d"),
            {"d": deployment},
        ).one()
    return row.spent_usd, row.reserved_usd


@DB_SETTINGS
@given(
    calls=st.lists(st.tuples(st.floats(0.0001, 0.05), st.floats(0, 1)), min_size=1, max_size=60),
    run_cap=st.floats(0.001, 0.5),
    day_cap=st.floats(0.001, 0.5),
)
def test_spend_never_exceeds_a_cap(
    engine: sa.Engine, calls: list[tuple[float, float]], run_cap: float, day_cap: float
) -> None:
    deployment = f"prop-{uuid.uuid4().hex[:8]}"
    book = ledger(engine, deployment, max_usd_per_run=run_cap, max_usd_per_day=day_cap)
    total = 0.0
    for worst_case, share in calls:
        reservation = book.reserve(worst_case)
        if reservation is None:
            continue
        actual = worst_case * share  # the actual cost is anywhere up to the worst case
        book.settle(reservation, actual)
        total += actual
    report = book.report()
    assert total <= run_cap + 1e-9 and total <= day_cap + 1e-9
    assert report.run_spent_usd == pytest.approx(total)
    assert report.run_reserved_usd == pytest.approx(0, abs=1e-9)


def test_three_concurrent_runs_share_the_daily_cap(engine: sa.Engine) -> None:
    deployment = "shared-day"
    day_cap = 1.0
    books = [ledger(engine, deployment, max_usd_per_day=day_cap) for _ in range(3)]
    done: list[float] = []
    lock = threading.Lock()

    def run(book: Ledger, seed: int) -> None:
        import random

        rng = random.Random(seed)
        for _ in range(150):
            worst = rng.uniform(0.001, 0.03)
            reservation = book.reserve(worst)
            if reservation is None:
                continue
            actual = worst * rng.uniform(0.2, 1.0)
            book.settle(reservation, actual)
            with lock:
                done.append(actual)

    threads = [threading.Thread(target=run, args=(b, i)) for i, b in enumerate(books)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    day_spent, day_reserved = spent(engine, deployment)
    assert sum(done) <= day_cap + 1e-9
    assert day_spent == pytest.approx(sum(done)) and day_reserved == pytest.approx(0, abs=1e-9)
    assert sum(done) > 0.9 * day_cap - 0.03  # the budget is used, not left idle
    assert sum(b.report().run_refused for b in books) > 0


def test_max_calls_per_run(engine: sa.Engine) -> None:
    book = ledger(engine, "calls", max_calls_per_run=3)
    results = [book.reserve(0.0) for _ in range(5)]
    assert [r is not None for r in results] == [True, True, True, False, False]


def test_a_new_day_gets_a_new_budget(engine: sa.Engine) -> None:
    now = [datetime(2026, 11, 1, 23, 0, tzinfo=UTC)]
    book = Ledger(engine, "days", str(uuid.uuid4()), BudgetConfig(max_usd_per_day=0.1),
                  clock=lambda: now[0])  # fmt: skip
    assert book.reserve(0.08) is not None
    assert book.reserve(0.05) is None
    now[0] += timedelta(hours=2)
    assert book.reserve(0.05) is not None
