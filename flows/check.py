"""`evaluate_dataset`: a check of a target's outputs on a golden dataset, with the evaluators and
thresholds of a deployment's job config, as one more kind of run of the one lifecycle."""

from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger

from evaluators.base import Cost
from flows.lifecycle import KINDS, run_lifecycle
from tasks.config import EvalJob, QualityConfig, SamplingConfig, SourceConfig
from tasks.datasets.store import current_items, dataset_info
from tasks.errors import AssayError, ConfigError
from tasks.experiments.callables import call_target, load_target, target_spec
from tasks.experiments.compare import compare_experiments
from tasks.experiments.gate import decide, totals
from tasks.experiments.result import CheckResult, Tier
from tasks.experiments.store import (
    ExperimentSpec,
    failing_items,
    finish_experiment,
    get_experiment,
    git_from_env,
    item_verdicts,
    latest_on_branch,
    save_outputs,
    scored_items,
    start_experiment,
)
from tasks.experiments.targets import TargetOutput, item_rows, matched
from tasks.store.db import scores_engine


class TargetFailed(AssayError):
    """The target produced no output at all (it raised or timed out on every item)."""


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
            "source": SourceConfig(page_size=job.source.page_size),
            "sampling": SamplingConfig(rate=1.0, seed=job.sampling.seed, dedupe=True),
            "quality": QualityConfig(max_invalid_fraction=1.0, empty_response="evaluate"),
            "alerts": job.alerts.model_copy(update={"rules": []}),
            "gate": [],
        }
    )


def experiment(
    job: EvalJob, dataset: str, digest: str, target: str, tier: Tier
) -> tuple[ExperimentSpec, EvalJob]:
    """The experiment a check is (the same inputs, the same experiment) and the job it runs."""
    checked = check_job(job, tier)
    commit, branch = git_from_env()
    spec = ExperimentSpec(
        dataset=dataset, dataset_digest=digest, target=target, config=job.deployment,
        config_json=checked.model_dump_json(), tier=tier, git_commit=commit, git_branch=branch,
    )  # fmt: skip
    return spec, checked.model_copy(update={"deployment": spec.deployment})


@flow(name="evaluate_dataset", log_prints=False)
async def evaluate_dataset(
    job: EvalJob,
    dataset: str,
    outputs: list[TargetOutput] | None = None,
    target: str = "",
    tier: Tier = "all",
    name: str | None = None,
    target_callable: str | None = None,
    target_timeout_s: float = 60.0,
    target_concurrency: int = 8,
    baseline: str | None = None,
) -> CheckResult:
    """Score a target's outputs for every current item of `dataset` and decide the gate. The
    target is a file of outputs (`outputs`) or a Python callable (`target_callable`,
    `module:function`), called for the items this experiment has not scored yet."""
    logger = get_run_logger()
    engine = scores_engine()
    info = dataset_info(engine, dataset)
    with engine.connect() as conn:
        items = current_items(conn, dataset)
    function = load_target(target_callable) if target_callable else None
    if function is not None and target_callable is not None:
        target = target_spec(target_callable)
    by_id = matched(items, outputs or []) if function is None else {}
    spec, checked = experiment(job, dataset, info.digest, target, tier)
    label = name or f"{dataset} · {target}"
    created = start_experiment(engine, spec, label, len(items), datetime.now(UTC))
    errors: dict[str, str] = {}
    try:
        # What this experiment already scored (a rerun after a crash, or an unchanged CI
        # rerun) is neither called nor judged nor written again.
        done = scored_items(engine, spec.deployment)
        todo = [s for s in items if s.item.id not in done]
        if function is not None:
            produced, errors = await call_target(
                function, todo, target_timeout_s, target_concurrency
            )
            if todo and not produced:
                first = next(iter(errors.items()))
                raise TargetFailed(
                    f"the target failed on all {len(todo)} items (e.g. {first[0]}: {first[1]})"
                )
            by_id = {o.item_id: o for o in produced}
        save_outputs(engine, spec.experiment_id, list(by_id.values()), errors)
        rows = item_rows([s for s in todo if s.item.id in by_id], by_id, created)
        logger.info("experiment %s: %d items of %s, target %s", spec.experiment_id, len(rows),
                    dataset, target)  # fmt: skip
        async with run_lifecycle(
            checked, KINDS["check"], window_end=created + timedelta(seconds=1)
        ) as run:
            size = checked.source.page_size
            for start in range(0, len(rows), size):
                await run.process(rows[start : start + size])
    except BaseException:
        finish_experiment(engine, spec.experiment_id, "failed", None, [],
                          {"target_errors": errors}, 0.0, None)  # fmt: skip
        raise
    assert run.summary is not None
    evaluated = set(checked.score_names())
    with engine.connect() as conn:
        gate = decide(conn, spec.deployment, job, evaluated)
        sums = totals(conn, spec.deployment)
    compared_with, note, comparisons = against_baseline(
        engine, baseline, dataset, spec.experiment_id, info.digest, job.alerts.confidence
    )
    passed = not any(g.state == "failed" for g in gate) and not any(
        c.significant_drop for c in comparisons
    )
    cost = sum(t.cost_usd for t in sums)
    worst = {
        t.evaluator: [(r.item_id, r.score, r.reason)
                      for r in failing_items(engine, spec.experiment_id, t.evaluator)]
        for t in sums if t.ok > t.passed
    }  # fmt: skip
    finish_experiment(
        engine, spec.experiment_id, "completed", passed,
        [g.model_dump(mode="json") for g in gate],
        {"evaluators": {t.evaluator: t.model_dump() for t in sums}, "target_errors": errors},
        cost, run.summary.run_id,
    )  # fmt: skip
    result = CheckResult(
        experiment_id=spec.experiment_id, name=label, dataset=dataset,
        dataset_digest=info.digest, target=target, tier=tier, items=len(items),
        evaluators=sums, gate=gate, passed=passed, cost_usd=cost, run_id=run.summary.run_id,
        target_errors=errors, baseline=compared_with, baseline_note=note,
        comparisons=comparisons, worst=worst,
    )  # fmt: skip
    await publish_experiment(result)
    return result


async def publish_experiment(result: CheckResult) -> None:
    """The experiment in the Prefect UI: per evaluator and gate rule, and the markdown summary
    CI gets (the flow can be deployed, e.g. nightly against the production prompt)."""
    from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact

    from tasks.experiments.ci_reports import STATE_WORDS, markdown
    from tasks.redact import redact

    rows = [
        {"evaluator": t.evaluator, "n": t.ok, "pass_rate": t.pass_rate, "skipped": t.skipped,
         "errors": t.errors, "cost_usd": round(t.cost_usd, 6)}
        for t in result.evaluators
    ] + [
        {"evaluator": f"gate: {g.describe()}", "n": g.n, "pass_rate": g.value,
         "skipped": STATE_WORDS[g.state], "errors": "", "cost_usd": ""}
        for g in result.gate
    ]  # fmt: skip
    key = f"experiment-{result.experiment_id}"
    await acreate_table_artifact(
        table=rows or [{"evaluator": "none"}], key=key,
        description=f"{result.dataset}: {'passed' if result.passed else 'FAILED'}",
    )  # fmt: skip
    await acreate_markdown_artifact(markdown=redact(markdown(result)), key=f"{key}-summary")


#: Branches `--baseline latest-on-main` looks at.
MAIN_BRANCHES = ["main", "master"]


def against_baseline(
    engine: Any, baseline: str | None, dataset: str, current: str, digest: str, confidence: float
) -> tuple[str | None, str | None, list[Any]]:
    """The paired comparison with a baseline experiment (or none), and a note when the two
    were not run on the same dataset content (then only the shared items are compared)."""
    if baseline is None:
        return None, None, []
    if baseline == "latest-on-main":
        found = latest_on_branch(engine, dataset, MAIN_BRANCHES, current)
        if found is None:
            return None, "no completed experiment of this dataset on main yet: no baseline", []
        baseline = found
    before = get_experiment(engine, baseline)
    note = None
    if before.dataset_digest != digest:
        note = (
            f"the baseline ran on other dataset content (digest {before.dataset_digest}, now "
            f"{digest}): only the items both judged are compared"
        )
    comparisons = compare_experiments(
        item_verdicts(engine, baseline), item_verdicts(engine, current), confidence
    )
    return baseline, note, comparisons
