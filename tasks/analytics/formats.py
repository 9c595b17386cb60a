"""Numbers as people read them, the same in the terminal, Slack and the Prefect UI: money always
with `$`, rates as percentages, a dash for nothing measured."""


def money(value: float | None) -> str:
    if value is None:
        return "unknown"
    if value == 0:
        return "$0"
    if value < 0.0001:
        return "<$0.0001"
    if value < 1:
        return f"${value:.4f}"
    return f"${value:,.2f}" if value < 10_000 else f"${value:,.0f}"


def num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"
