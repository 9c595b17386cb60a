"""Prefect flows and the `assay` CLI."""

from evaluators import offline as _offline  # noqa: F401
