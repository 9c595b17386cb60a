"""Experiments: one row per check (dataset and digest, target, config, gate outcome)."""

import hashlib
import json
import os
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from tasks.config.job import EXPERIMENT_PREFIX
from tasks.store.sql import query

PREFIX = EXPERIMENT_PREFIX


class ExperimentSpec(BaseModel):
    """What makes an experiment: rerunning the same spec is the same experiment."""

    dataset: str
    dataset_digest: str
    target: str
    config: str  # the job's deployment name
    config_json: str
    tier: str
    git_commit: str | None = None
    git_branch: str | None = None
    repeats: int = 1

    @property
    def experiment_id(self) -> str:
        parts: list[Any] = [self.dataset, self.dataset_digest, self.target, self.config_json,
                            self.tier, self.git_commit]  # fmt: skip
        if self.repeats > 1:
            parts.append(self.repeats)
        body = json.dumps(parts)
        return hashlib.sha256(body.encode()).hexdigest()[:12]

    @property
    def deployment(self) -> str:
        return PREFIX + self.experiment_id


def git_from_env(env: dict[str, str] | None = None) -> tuple[str | None, str | None]:
    """The commit and branch CI systems export (GitHub Actions, GitLab, Jenkins, plain)."""
    env = dict(os.environ) if env is None else env
    commit = env.get("GITHUB_SHA") or env.get("CI_COMMIT_SHA") or env.get("GIT_COMMIT")
    branch = (
        env.get("GITHUB_HEAD_REF") or env.get("GITHUB_REF_NAME")
        or env.get("CI_COMMIT_REF_NAME") or env.get("GIT_BRANCH")
    )  # fmt: skip
    return commit or None, branch or None


class Experiment(BaseModel):
    experiment_id: str
    name: str
    dataset: str
    dataset_digest: str
    target: str
    config: str
    tier: str
    git_commit: str | None
    git_branch: str | None
    status: str
    items: int
    repeats: int = 1
    gate_passed: bool | None
    cost_usd: float
    totals: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None


def start_experiment(
    engine: sa.Engine, spec: ExperimentSpec, name: str, items: int, now: datetime
) -> datetime:
    """Record (or resume) the experiment; returns its creation time, which is the time its
    items are logged at, so a rerun writes the very same rows."""
    with engine.begin() as conn:
        return conn.execute(
            sa.text(query("experiments", "start_experiment")),
            {**spec.model_dump(exclude={"config_json"}), "experiment_id": spec.experiment_id,
             "name": name, "items": items, "created_at": now},
        ).scalar_one()  # fmt: skip


def finish_experiment(
    engine: sa.Engine,
    experiment_id: str,
    status: str,
    gate_passed: bool | None,
    gate: list[dict[str, Any]],
    totals: dict[str, Any],
    cost_usd: float,
    run_id: str | None,
) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(query("experiments", "finish_experiment")),
            {"experiment_id": experiment_id, "status": status, "gate_passed": gate_passed,
             "gate": json.dumps(gate), "totals": json.dumps(totals), "cost_usd": cost_usd,
             "run_id": run_id},
        )  # fmt: skip


def save_outputs(
    engine: sa.Engine,
    experiment_id: str,
    outputs: list[Any],
    errors: dict[str, str],
    cached: set[str] = frozenset(),  # type: ignore[assignment]
) -> None:
    """The target's answers (and failures) per item, beside the experiment's scores."""
    rows = [
        {"experiment_id": experiment_id, "item_id": o.item_id, "output": o.output,
         "error": None, "latency_ms": o.latency_ms, "cost_usd": o.cost_usd, "model": o.model,
         "cached": o.item_id in cached}
        for o in outputs
    ] + [
        {"experiment_id": experiment_id, "item_id": item_id, "output": None, "error": why,
         "latency_ms": None, "cost_usd": None, "model": None, "cached": False}
        for item_id, why in errors.items()
    ]  # fmt: skip
    if rows:
        with engine.begin() as conn:
            conn.execute(sa.text(query("experiments", "save_output")), rows)


def get_experiment(engine: sa.Engine, experiment_id: str) -> Experiment:
    from tasks.errors import ConfigError

    with engine.connect() as conn:
        row = conn.execute(
            sa.text(query("experiments", "get_experiment")), {"experiment_id": experiment_id}
        ).one_or_none()
    if row is None:
        raise ConfigError(f"no experiment {experiment_id!r} (`assay experiments` lists them)")
    return Experiment.model_validate(row._asdict())


def latest_on_branch(
    engine: sa.Engine, dataset: str, branches: list[str], exclude: str
) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(query("experiments", "latest_on_branch")),
            {"dataset": dataset, "branches": branches, "exclude": exclude},
        ).scalar_one_or_none()


def item_verdicts(engine: sa.Engine, experiment_id: str) -> dict[str, dict[str, Any]]:
    """evaluator -> item -> (passed, score) of an experiment's judged scores."""
    found: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        for row in conn.execute(
            sa.text(query("experiments", "item_verdicts")), {"deployment": PREFIX + experiment_id}
        ):
            found.setdefault(row.evaluator, {})[row.item_id] = (row.passed, row.score)
    return found


def failing_items(
    engine: sa.Engine, experiment_id: str, evaluator: str, limit: int = 5
) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(
            sa.text(query("experiments", "failing_items")),
            {"deployment": PREFIX + experiment_id, "evaluator": evaluator, "limit": limit},
        ))  # fmt: skip


def item_outputs(engine: sa.Engine, experiment_id: str, item_ids: list[str]) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(query("experiments", "item_outputs")),
            {"experiment_id": experiment_id, "item_ids": item_ids},
        )
        return {row.item_id: row for row in rows}


def scored_items(engine: sa.Engine, deployment: str) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(query("experiments", "scored_items")), {"deployment": deployment}
        )
        return {row.log_id for row in rows}


def list_experiments(engine: sa.Engine, dataset: str | None, limit: int = 50) -> list[Experiment]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(query("experiments", "list_experiments")), {"dataset": dataset, "limit": limit}
        )
        return [Experiment.model_validate(row._asdict()) for row in rows]


def cached_outputs(engine: sa.Engine, keys: list[str]) -> dict[str, Any]:
    """Target answers already paid for, by cache key."""
    if not keys:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(sa.text(query("experiments", "cached_outputs")), {"keys": keys})
        return {row.cache_key: row for row in rows}


def cache_outputs(
    engine: sa.Engine, target: str, experiment_id: str, answers: list[tuple[str, Any]]
) -> None:
    """Remember answers (cache key, TargetOutput) for later experiments of the same target."""
    if not answers:
        return
    rows = [
        {"cache_key": key, "target": target, "output": o.output, "latency_ms": o.latency_ms,
         "cost_usd": o.cost_usd, "model": o.model, "experiment_id": experiment_id}
        for key, o in answers
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(sa.text(query("experiments", "cache_output")), rows)


def target_spend(engine: sa.Engine, experiment_id: str) -> tuple[float, int]:
    """(USD the target's answers cost this experiment, answers taken from the cache)."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(query("experiments", "target_spend")), {"experiment_id": experiment_id}
        ).one()
        return float(row.usd), int(row.cached)
