"""Assay's exceptions, in one place.

    AssayError                 anything Assay raises on purpose
    ├── ConfigError            the job config or environment is wrong: fix it, don't retry (exit 2)
    ├── SourceError            the warehouse query failed or returned an unusable shape
    ├── TransientError         worth retrying (connection drops, timeouts, 429/5xx)
    └── DataContractBroken     too many logs failed the data contract; the watermark stays

Only `TransientError` is retried by the task shells. A spend cap that is reached is not an
error here: the judge client's `BudgetRefused` (evaluators/errors.py) leaves the item unjudged,
and the run counts it per evaluator and stratum as "unscored by the budget".
"""


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
