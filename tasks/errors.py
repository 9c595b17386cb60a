"""Assay's exceptions, in one place (the evaluator side has its own: evaluators/errors.py).

    AssayError                 anything Assay raises on purpose
    ├── ConfigError            the job config or environment is wrong: fix it, don't retry (exit 2)
    │   ├── QueryRefused       a `query:` that is not one side-effect-free read
    │   └── MigrationEdited    an applied migration's file changed (migrations are forward-only)
    ├── SourceError            the warehouse query failed or returned an unusable shape
    │   └── PayloadError       a row's payload cannot be read in its format (the row is quarantined)
    ├── TransientError         worth retrying (connection drops, timeouts, 429/5xx)
    ├── DataContractBroken     too many logs failed the data contract; the watermark stays
    ├── RowsUnaccounted        pulled rows that are neither normalized nor quarantined: a bug,
    │                          so the page is not written and the watermark stays
    ├── RunBusy                another run holds the deployment's lock
    ├── LockLost               the connection holding a run's lock died; the run stops
    ├── BackfillIncomplete     some chunks of a backfill did not complete
    ├── RunStopped             a run the CLI started ended failed or crashed
    ├── TargetFailed           a check's target produced no output at all
    ├── GateFailed             a check's gate failed (exit 3)
    ├── GateUnmeasured         a gate rule could not decide: the check did not pass
    ├── ClaimLost              an annotation item is not (or no longer) this annotator's
    └── Refused                a request the team server refuses (with its HTTP status)

Only `TransientError` (and dropped connections) is retried by the task shells. A spend cap that
is reached is not an error here: the judge client's `BudgetRefused` (evaluators/errors.py)
leaves the item unjudged, and the run counts it per evaluator and stratum as "unscored by the
budget". Errors a pydantic validator raises are also `ValueError`s, so pydantic reports them.
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


class PayloadError(SourceError, ValueError):
    """A row's payload cannot be read in its format: the row is quarantined with the reason."""


class QueryRefused(ConfigError, ValueError):
    """A `query:` that is not one side-effect-free read."""


class ClaimLost(AssayError):
    """The item is not (or no longer) this annotator's: nothing was written."""


class RunBusy(AssayError):
    """Another run holds the deployment's lock."""


class LockLost(AssayError):
    """The session holding a run's lock died (a dropped or terminated connection)."""


class MigrationEdited(ConfigError):
    """An applied migration's file changed since: migrations are forward-only, so the database
    may lack what the edit added. Restore the file and add a new migration instead."""


class Refused(AssayError):
    """A request the team server refuses, with the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class TargetFailed(AssayError):
    """The target produced no output at all (it raised or timed out on every item)."""


class GateFailed(AssayError):
    """A deployed check's gate failed: the flow run fails, so it shows red and can page."""


class GateUnmeasured(AssayError):
    """A gate rule could not decide (too few scores, a failing judge): the check did not pass,
    and it did not fail on the target either."""


class RunStopped(AssayError):
    """A run the CLI started ended failed or crashed; the message says how."""


class BackfillIncomplete(AssayError):
    """Some chunks of a backfill did not complete; running it again finishes them."""


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
