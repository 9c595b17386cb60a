"""Evaluators: pure functions of a canonical log record. No prefect, sqlalchemy or slack here."""

from evaluators import offline as _offline  # noqa: F401  (must run before litellm is imported)
from evaluators.base import Cost, EvalContext, Evaluator, Score
from evaluators.records import LogRecord
from evaluators.registry import REGISTRY, build_evaluator, registered

__all__ = [
    "REGISTRY",
    "Cost",
    "EvalContext",
    "Evaluator",
    "LogRecord",
    "Score",
    "build_evaluator",
    "registered",
]
