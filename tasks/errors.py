"""Assay's exceptions, in one place.

    AssayError                 anything Assay raises on purpose
    ├── ConfigError            the job config or environment is wrong: fix it, don't retry (exit 2)
    ├── SourceError            the warehouse query failed or returned an unusable shape
    ├── TransientError         worth retrying (connection drops, timeouts, 429/5xx)
    ├── DataContractBroken     too many logs failed the data contract; the watermark stays
    └── RowsUnaccounted        pulled rows that are neither normalized nor quarantined: a bug,
                               so the page is not written and the watermark stays

Only `TransientError` is retried by the task shells. A spend cap that is reached is not an
error here: the judge client's `BudgetRefused` (evaluators/errors.py) leaves the item unjudged,
and the run counts it per evaluator and stratum as "unscored by the budget".
"""

import difflib
from collections.abc import Iterable


class AssayError(Exception):
    pass


class ConfigError(AssayError):
    pass


class SourceError(AssayError):
    pass


class TransientError(AssayError):
    pass


class DataContractBroken(AssayError):
    """Too many logs of a batch broke the contract. `summary` is the contract's findings."""

    def __init__(self, message: str, summary: object = None) -> None:
        super().__init__(message)
        self.summary = summary


class RowsUnaccounted(AssayError):
    """A page's pulled rows do not equal its normalized plus quarantined rows."""


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for a near miss, else the known names (a few), else nothing."""
    known = sorted(set(choices))
    close = difflib.get_close_matches(value, known, n=2, cutoff=0.6)
    if close:
        return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
    if known:
        shown = ", ".join(known[:8]) + (", …" if len(known) > 8 else "")
        return f" (known: {shown})"
    return ""
