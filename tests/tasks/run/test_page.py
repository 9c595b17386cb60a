"""The pure parts of a page: the keyset loop, the split by cost, the flagged logs."""

from datetime import UTC, datetime

from evaluators.base import Cost
from evaluators.registry import build_evaluator
from tasks.run.page import flagged_ids, split_by_cost, walk_pages
from tasks.store.rows import Cursor, ScoreRow

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def cursor(n: int) -> Cursor:
    return Cursor(ts=T0, log_id=str(n))


async def test_the_loop_follows_full_pages_and_stops_at_the_first_short_one() -> None:
    seen: list[Cursor | None] = []
    pages = [(cursor(1), True), (cursor(2), True), (cursor(3), False), (cursor(4), True)]

    async def step(after: Cursor | None) -> tuple[Cursor | None, bool]:
        seen.append(after)
        return pages[len(seen) - 1]

    await walk_pages(step, cursor(0))
    # Each page starts after the last row of the one before; nothing after the short page.
    assert seen == [cursor(0), cursor(1), cursor(2)]


async def test_the_loop_stops_on_an_empty_page() -> None:
    calls = 0

    async def step(after: Cursor | None) -> tuple[Cursor | None, bool]:
        nonlocal calls
        calls += 1
        return None, True

    await walk_pages(step)
    assert calls == 1


def test_paid_evaluators_are_split_from_free_ones() -> None:
    evaluators = [build_evaluator(n) for n in ("pii", "faithfulness", "refusal", "rubric_free")
                  if n != "rubric_free"]  # fmt: skip
    free, paid = split_by_cost(evaluators)
    assert [e.name for e in free] == ["pii", "refusal"]
    assert [e.name for e in paid] == ["faithfulness"]
    assert all(e.cost is Cost.PAID for e in paid)


def row(log_id: str, evaluator: str, passed: bool | None, status: str = "ok") -> ScoreRow:
    return ScoreRow(
        deployment="d", log_id=log_id, evaluator=evaluator, evaluator_version="1", log_ts=T0,
        status=status, score=None, passed=passed, label=None, reason=None, run_id="r",
        model=None, provider=None, prompt_slug=None, topic=None, customer_id=None,
        environment=None,
    )  # fmt: skip


def test_only_failures_of_flagging_evaluators_are_flagged() -> None:
    rows = [
        row("a", "pii", False),  # flagged
        row("b", "pii", True),
        row("c", "length", False),  # length does not flag
        row("d", "secrets", None, status="error"),  # an error is not a finding
        row("e", "refusal", False),  # flagged
    ]
    assert flagged_ids(rows) == {"a", "e"}
