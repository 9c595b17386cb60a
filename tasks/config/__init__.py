"""The job config: one pydantic model per deployment (`job.py`), the SQL a `query:` source may
run (`sql_policy.py`, decided on Postgres's parse tree) and the expectations a job may add to the
data contract (`expectations.py`). A config is data: it names things from operator-owned
allow-lists and never code."""

from tasks.config.expectations import ALLOWED_EXPECTATIONS, ExpectationSpec, build_expectation
from tasks.config.job import (
    AGREEMENT_METRICS,
    FLAGGING_EVALUATORS,
    PAYLOAD_SLOTS,
    AlertsConfig,
    BudgetConfig,
    Duration,
    EvalJob,
    QualityConfig,
    SamplingConfig,
    SegmentBy,
    SourceConfig,
    ThresholdRule,
    build_evaluators,
    check_identifier,
    load_job,
    parse_job,
)

__all__ = [
    "AGREEMENT_METRICS",
    "ALLOWED_EXPECTATIONS",
    "FLAGGING_EVALUATORS",
    "PAYLOAD_SLOTS",
    "AlertsConfig",
    "BudgetConfig",
    "Duration",
    "EvalJob",
    "ExpectationSpec",
    "QualityConfig",
    "SamplingConfig",
    "SegmentBy",
    "SourceConfig",
    "ThresholdRule",
    "build_evaluators",
    "build_expectation",
    "check_identifier",
    "load_job",
    "parse_job",
]
