"""Errors on the evaluator side, and the one way a validation error is told to a person.

    EvaluatorError              anything an evaluator or the judge client raises on purpose
    ├── CallFailed              one judge call failed (HTTP status, timeout, unreadable body)
    ├── BreakerOpen             a judge model's circuit is open: the call is not made
    ├── BudgetRefused           the spend gate cannot cover one more call: counted, not scored
    ├── GateUnavailable         the spend gate is unreachable: nothing is scored, work is retried
    ├── VerdictUnparseable      the judge's answer is not a valid verdict: an `error` row
    ├── DuplicateKey            a JSON answer names one key twice (never read as a verdict)
    ├── KeyNotAllowed           a config names a key or host the operator did not allow
    ├── UnknownEvaluator        no evaluator is registered under a name
    └── InvalidEvaluatorParams  an evaluator's params do not validate

The pipeline (tasks/) translates these at its boundary, as httpx does with transport errors:
GateUnavailable becomes a TransientError, the others become score rows or config errors. The
ones a pydantic validator raises are also `ValueError`s, so pydantic reports them.
"""

from pydantic import ValidationError

#: How much of an unparseable answer an error keeps.
MAX_RAW_CHARS = 500


class EvaluatorError(Exception):
    pass


def validation_problems(exc: ValidationError, root: str = "(root)") -> list[str]:
    """Each problem of a pydantic ValidationError as `dotted.path: message`."""
    return [
        f"{'.'.join(str(part) for part in err['loc']) or root}: {err['msg']}"
        for err in exc.errors()
    ]


def describe_validation_error(exc: ValidationError, root: str = "(root)") -> str:
    """A ValidationError as one line a person can act on (every problem, by path)."""
    return "; ".join(validation_problems(exc, root))


class BudgetRefused(EvaluatorError):
    """The budget cannot cover one more call: the item stays unjudged (and is counted)."""


class GateUnavailable(EvaluatorError):
    """The spend gate could not be reached (its database dropped): no call is made, and the
    item must not become a score of any kind; the caller retries the work later."""


class BreakerOpen(EvaluatorError):
    """The model's breaker tripped: the call is not made (the row will be `skipped`)."""


class CallFailed(EvaluatorError):
    """One failed try. `retryable` covers 429, 5xx, timeouts and dropped connections."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class VerdictUnparseable(EvaluatorError, ValueError):
    """The judge's answer is not a valid verdict; `raw` keeps (a truncated copy of) what it said."""

    def __init__(self, problem: str, raw: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.raw = raw[:MAX_RAW_CHARS]


class DuplicateKey(EvaluatorError, ValueError):
    """A JSON object names one key twice: ambiguous, so never read as a verdict."""


class KeyNotAllowed(EvaluatorError, ValueError):
    """A config named an environment variable it may not read."""


class UnknownEvaluator(EvaluatorError, ValueError):
    """No evaluator is registered under the name a config gives."""


class InvalidEvaluatorParams(EvaluatorError, ValueError):
    """An evaluator's params do not validate against its fields."""
