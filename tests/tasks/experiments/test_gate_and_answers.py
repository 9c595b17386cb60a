"""The pure parts of a check: repeats belong to their item, the same question is the same
cache key, and a `--repeat` gate counts items, not calls."""

from types import SimpleNamespace

from tasks.config import ThresholdRule
from tasks.experiments.answers import item_of
from tasks.experiments.gate import measure_repeated


def test_a_repeat_belongs_to_its_item() -> None:
    items = {"q1", "q2#x"}
    assert item_of("q1", items) == "q1"
    assert item_of("q1#3", items) == "q1"
    # An id that merely looks like a repeat of an unknown item stays itself.
    assert item_of("q9#2", items) == "q9#2"
    assert item_of("q2#x", items) == "q2#x"


def scored(log_id: str, passed: bool) -> SimpleNamespace:
    return SimpleNamespace(log_id=log_id, status="ok", score=float(passed), passed=passed)


def test_repeats_count_once_per_item() -> None:
    rule = ThresholdRule(evaluator="correctness", metric="pass_rate", op="<", value=0.5)
    # Two items, five repeats each: q1 always passes, q2 passes 1 of 5.
    rows = [scored(f"q1#{r}", True) for r in range(1, 6)]
    rows += [scored(f"q2#{r}", r == 1) for r in range(1, 6)]
    m = measure_repeated(rule, rows, {"q1", "q2"}, 0.95)
    assert m.n == 2  # items, not the ten calls
    assert m.value is not None and abs(m.value - (1.0 + 0.2) / 2) < 1e-9
    assert m.low is not None and m.high is not None and m.low <= m.value <= m.high


def test_nothing_scored_is_not_measured() -> None:
    rule = ThresholdRule(evaluator="correctness", metric="pass_rate", op="<", value=0.5)
    m = measure_repeated(rule, [], {"q1"}, 0.95)
    assert m.n == 0 and m.value is None
