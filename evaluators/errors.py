"""Errors on the evaluator side, and the one way a validation error is told to a person.

    EvaluatorError          anything an evaluator or the judge client raises on purpose
    ├── CallFailed          one judge call failed (HTTP status, timeout, unreadable body)
    ├── BreakerOpen         a judge model's circuit is open: the call is not made
    ├── BudgetRefused       the spend gate cannot cover one more call: counted, not scored
    ├── GateUnavailable     the spend gate is unreachable: nothing is scored, the work is retried
    └── VerdictUnparseable  the judge's answer is not a valid verdict: an `error` row

The pipeline (tasks/) translates these at its boundary, as httpx does with transport errors:
GateUnavailable becomes a TransientError, the others become score rows.
"""

from pydantic import ValidationError


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
