"""Numbers as people read them: money always with `$`, nothing measured as a dash."""

from tasks.analytics.formats import money, num, pct


def test_money_always_has_a_dollar_sign() -> None:
    assert money(0) == "$0"
    assert money(0.00001) == "<$0.0001"
    assert money(0.0123) == "$0.0123"
    assert money(12.5) == "$12.50"
    assert money(25_000) == "$25,000"


def test_an_unknown_cost_is_never_zero() -> None:
    assert money(None) == "unknown"


def test_nothing_measured_is_a_dash_not_zero() -> None:
    assert pct(None) == "–" and num(None) == "–"
    assert pct(0.0) == "0.0%" and num(0.0) == "0.000"
