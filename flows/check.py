"""`evaluate_dataset`: a check of a target's outputs on a golden dataset, with the evaluators and
thresholds of a deployment's job config, as one more kind of run of the one lifecycle."""

from datetime import UTC, datetime, timedelta
from typing import Literal

from prefect import flow, get_run_logger
from pydantic import BaseModel

from evaluators.base import Cost
from flows.lifecycle import KINDS, run_lifecycle
from tasks.config import EvalJob, QualityConfig, SamplingConfig, SourceConfig
from tasks.datasets.store import current_items, dataset_info
from tasks.errors import ConfigError
from tasks.experiments.gate import EvaluatorTotals, GateResult, decide, totals
from tasks.experiments.store import (
    ExperimentSpec,
    finish_experiment,
    git_from_env,
    start_experiment,
)
from tasks.experiments.targets import TargetOutput, item_rows, matched
from tasks.store.db import scores_engine

Tier = Literal["free", "all"]


class CheckResult(BaseModel):
    experiment_id: str
    name: str
    dataset: str
    dataset_digest: str
    target: str
    tier: Tier
    items: int
    evaluators: list[EvaluatorTotals]
    gate: list[GateResult]
    passed: bool
    cost_usd: float
    run_id: str


def check_job(job: EvalJob, tier: Tier) -> EvalJob:
    """The job as a check runs it: every item judged (no sampling), items read from the
    dataset rather than the warehouse, empty outputs scored as the failures they are, and
    with `tier: free` only the evaluators that cost nothing."""
    evaluators = [cfg for cfg in job.evaluators if tier == "all" or cfg.build().cost is Cost.FREE]
    if not evaluators:
        raise ConfigError(f"{job.deployment} has no free evaluators for --tier free")
    return job.model_copy(
        update={
            "evaluators": evaluators,
            "source": SourceConfig(),
            "sampling": SamplingConfig(rate=1.0, seed=job.sampling.seed, dedupe=True),
            "quality": QualityConfig(max_invalid_fraction=1.0, empty_response="evaluate"),
            "alerts": job.alerts.model_copy(update={"rules": []}),
            "gate": [],
        }
    )


@flow(name="evaluate_dataset", log_prints=False)
async def evaluate_dataset(
    job: EvalJob,
    dataset: str,
    outputs: list[TargetOutput],
    target: str,
    tier: Tier = "all",
    name: str | None = None,
) -> CheckResult:
    """Score a target's outputs for every current item of `dataset` and decide the gate."""
    logger = get_run_logger()
    engine = scores_engine()
    info = dataset_info(engine, dataset)
    with engine.connect() as conn:
        items = current_items(conn, dataset)
    by_id = matched(items, outputs)
    checked = check_job(job, tier)
    commit, branch = git_from_env()
    spec = ExperimentSpec(
        dataset=dataset, dataset_digest=info.digest, target=target, config=job.deployment,
        config_json=checked.model_dump_json(), tier=tier, git_commit=commit, git_branch=branch,
    )  # fmt: skip
    checked = checked.model_copy(update={"deployment": spec.deployment})
    label = name or f"{dataset} · {target}"
    created = start_experiment(engine, spec, label, len(items), datetime.now(UTC))
    rows = item_rows(items, by_id, created)
    logger.info("experiment %s: %d items of %s, target %s", spec.experiment_id, len(rows),
                dataset, target)  # fmt: skip
    try:
        async with run_lifecycle(
            checked, KINDS["check"], window_end=created + timedelta(seconds=1)
        ) as run:
            size = checked.source.page_size
            for start in range(0, len(rows), size):
                await run.process(rows[start : start + size])
    except BaseException:
        finish_experiment(engine, spec.experiment_id, "failed", None, [], {}, 0.0, None)
        raise
    assert run.summary is not None
    evaluated = {cfg.build().score_name for cfg in checked.evaluators}
    with engine.connect() as conn:
        gate = decide(conn, spec.deployment, job, evaluated)
        sums = totals(conn, spec.deployment)
    passed = not any(g.state == "failed" for g in gate)
    cost = sum(t.cost_usd for t in sums)
    finish_experiment(
        engine, spec.experiment_id, "completed", passed,
        [g.model_dump(mode="json") for g in gate],
        {t.evaluator: t.model_dump() for t in sums}, cost, run.summary.run_id,
    )  # fmt: skip
    return CheckResult(
        experiment_id=spec.experiment_id, name=label, dataset=dataset,
        dataset_digest=info.digest, target=target, tier=tier, items=len(items),
        evaluators=sums, gate=gate, passed=passed, cost_usd=cost, run_id=run.summary.run_id,
    )  # fmt: skip
