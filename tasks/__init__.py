"""Pipeline steps: pure functions first, thin Prefect task shells last."""

from evaluators import offline as _offline  # noqa: F401
