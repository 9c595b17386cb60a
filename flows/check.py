"""`evaluate_dataset`: a check of a target's outputs on a golden dataset, with the evaluators and
thresholds of a deployment's job config, as one more kind of run of the one lifecycle."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from prefect import flow, get_run_logger

from evaluators.base import Cost
from evaluators.judges.client import Endpoint, JudgeRuntime
from tasks.config import EvalJob, QualityConfig, SamplingConfig, SourceConfig
from tasks.datasets.store import current_items, dataset_info
from tasks.errors import ConfigError, GateFailed, GateUnmeasured, TargetFailed
from tasks.experiments.answers import Answerer, Answers, Unit, ask_all, cache_key, units
from tasks.experiments.callables import callable_answerer, load_target, target_spec
from tasks.experiments.gate import decide, gate_outcome, spreads, totals
from tasks.experiments.prompts import load_prompt, prompt_answerer
from tasks.experiments.request import CheckRequest
from tasks.experiments.result import CheckResult, Tier
from tasks.experiments.store import (
    ExperimentSpec,
    cache_outputs,
    cached_outputs,
    failing_items,
    finish_experiment,
    get_experiment,
    git_from_env,
    item_verdicts,
    latest_on_branch,
    save_outputs,
    scored_items,
    start_experiment,
    target_spend,
)
from tasks.experiments.targets import TargetOutput, item_rows, matched
from tasks.run.kinds import KINDS
from tasks.run.lifecycle import run_lifecycle
from tasks.stats.paired import compare_experiments
from tasks.store.db import scores_engine


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
    job: EvalJob, dataset: str, digest: str, target: str, tier: Tier, repeats: int = 1
) -> tuple[ExperimentSpec, EvalJob]:
    """The experiment a check is (the same inputs, the same experiment) and the job it runs."""
    checked = check_job(job, tier)
    commit, branch = git_from_env()
    spec = ExperimentSpec(
        dataset=dataset, dataset_digest=digest, target=target, config=job.deployment,
        config_json=checked.model_dump_json(), tier=tier, git_commit=commit, git_branch=branch,
        repeats=repeats,
    )  # fmt: skip
    return spec, checked.model_copy(update={"deployment": spec.deployment})


class Target(NamedTuple):
    """What a check evaluates: a file of outputs, or something it calls."""

    spec: str  # as the experiment records it (file, code or prompt by content digest)
    fixed: dict[str, TargetOutput] | None = None  # --outputs
    answerer: Callable[[JudgeRuntime | None], Answerer] | None = None
    endpoints: tuple[Endpoint, ...] = ()  # a prompt's model, called through the run's runtime


def choose_target(
    items: list[Any],
    outputs: list[TargetOutput] | None,
    spec: str,
    target_callable: str | None,
    target_prompt: str | None,
    repeats: int,
) -> Target:
    if target_prompt is not None:
        prompt, recorded = load_prompt(target_prompt)

        def ask_prompt(runtime: JudgeRuntime | None) -> Answerer:
            assert runtime is not None  # the prompt's model makes the run build one
            return prompt_answerer(prompt, runtime)

        return Target(recorded, answerer=ask_prompt, endpoints=(prompt.endpoint,))
    if target_callable is not None:
        function = load_target(target_callable)
        return Target(target_spec(target_callable), answerer=lambda _r: callable_answerer(function))
    if repeats > 1:
        raise ConfigError("--repeat needs a target to call (--target), not a file of outputs")
    return Target(spec, fixed=matched(items, outputs or []))


async def answer_page(
    engine: Any, target: Target, ask: Answerer | None, page: list[Unit], settings: "Calling"
) -> Answers:
    """The page's answers: a file's as given, else the cache's, else the target's own."""
    if target.fixed is not None or ask is None:
        fixed = target.fixed or {}
        return Answers(outputs=[fixed[u.stored.item.id] for u in page])
    keys = {u.log_id: cache_key(target.spec, u) for u in page}
    hits = cached_outputs(engine, list(keys.values())) if settings.cache else {}
    found = Answers()
    todo = []
    for unit in page:
        hit = hits.get(keys[unit.log_id])
        if hit is None:
            todo.append(unit)
            continue
        found.outputs.append(TargetOutput(item_id=unit.log_id, output=hit.output,
                                          latency_ms=hit.latency_ms, cost_usd=hit.cost_usd,
                                          model=hit.model))  # fmt: skip
        found.cached.add(unit.log_id)
    asked = await ask_all(ask, todo, settings.timeout_s, settings.concurrency)
    found.fresh = [(keys[o.item_id], o) for o in asked.outputs]
    found.outputs += asked.outputs
    found.errors = asked.errors
    return found


class Calling(NamedTuple):
    experiment_id: str
    timeout_s: float
    concurrency: int
    cache: bool


@flow(name="evaluate_dataset", log_prints=False)
async def evaluate_dataset(request: CheckRequest) -> CheckResult:
    """Score a target's outputs for every current item of the request's dataset and decide the
    gate. The target is a file of outputs, a Python callable (`module:function`) or a prompt
    file (`prompt:FILE.yaml`); what it is called for is only what this experiment has not
    scored yet, and an answer the same target gave to the same item before comes from the
    cache. With `repeats` > 1 the target answers each item that many times and the gate is
    decided over items, across the repeats."""
    job, dataset, r = request.job, request.dataset, request
    logger = get_run_logger()
    engine = scores_engine()
    info = dataset_info(engine, dataset)
    with engine.connect() as conn:
        items = current_items(conn, dataset)
    chosen = choose_target(
        items, r.outputs, r.target, r.target_callable, r.target_prompt, r.repeats
    )
    spec, checked = experiment(job, dataset, info.digest, chosen.spec, r.tier, r.repeats)
    label = r.name or f"{dataset} · {chosen.spec}"
    created = start_experiment(engine, spec, label, len(items), datetime.now(UTC))
    calling = Calling(spec.experiment_id, r.target_timeout_s, r.target_concurrency, r.cache)
    errors: dict[str, str] = {}
    calls = 0
    try:
        # What this experiment already scored (a rerun after a crash, or an unchanged CI
        # rerun) is neither called nor judged nor written again.
        done = scored_items(engine, spec.deployment)
        todo = [u for u in units(items, r.repeats) if u.log_id not in done]
        logger.info("experiment %s: %d of %d calls to go on %s, target %s", spec.experiment_id,
                    len(todo), len(items) * r.repeats, dataset, chosen.spec)  # fmt: skip
        async with run_lifecycle(
            checked, KINDS["check"], window_end=created + timedelta(seconds=1),
            targets=chosen.endpoints,
        ) as run:  # fmt: skip
            if todo:  # every model the run may call has a price before anything runs
                await run.slots()
            ask = chosen.answerer(run.judged.judges) if chosen.answerer else None
            answered = 0
            size = checked.source.page_size
            for start in range(0, len(todo), size):
                page = todo[start : start + size]
                got = await answer_page(engine, chosen, ask, page, calling)
                calls += len(got.outputs) - len(got.cached) + len(got.errors)
                answered += len(got.outputs)
                errors.update(got.errors)
                save_outputs(engine, spec.experiment_id, got.outputs, got.errors, got.cached)
                rows = item_rows(page, {o.item_id: o for o in got.outputs}, created)
                if rows:
                    await run.process(rows)
                # Cached only once the page (and the spend of these calls) is committed: a
                # crash before that leaves no answer that was never paid for in the ledger.
                cache_outputs(engine, chosen.spec, spec.experiment_id, got.fresh)
            if todo and not answered:
                first = next(iter(errors.items()))
                raise TargetFailed(
                    f"the target failed on all {len(todo)} items (e.g. {first[0]}: {first[1]})"
                )
    except BaseException:
        finish_experiment(engine, spec.experiment_id, "failed", None, [],
                          {"target_errors": errors}, 0.0, None)  # fmt: skip
        raise
    assert run.summary is not None
    result = await settle_check(
        engine, job, checked, spec, info.digest, label, items, chosen, run.summary.run_id,
        errors, calls, r.baseline, r.allow_unmeasured,
    )  # fmt: skip
    if r.fail_on_gate and result.outcome == "not_measured":
        raise GateUnmeasured(
            f"experiment {result.experiment_id}: gate not measured ({'; '.join(result.unmeasured)})"
        )
    if r.fail_on_gate and not result.passed:
        failed = [g.describe() for g in result.gate if g.state == "failed"]
        failed += [f"{c.evaluator} worse than {result.baseline}"
                   for c in result.comparisons if c.significant_drop]  # fmt: skip
        raise GateFailed(f"experiment {result.experiment_id}: gate failed ({'; '.join(failed)})")
    return result


async def settle_check(
    engine: Any,
    job: EvalJob,
    checked: EvalJob,
    spec: ExperimentSpec,
    digest: str,
    label: str,
    items: list[Any],
    chosen: Target,
    run_id: str,
    errors: dict[str, str],
    calls: int,
    baseline: str | None,
    allow_unmeasured: bool = False,
) -> CheckResult:
    """The gate, the baseline comparison and the experiment's record, once its items are in."""
    evaluated = set(checked.score_names())
    item_ids = {s.item.id for s in items} if spec.repeats > 1 else None
    with engine.connect() as conn:
        gate = decide(conn, spec.deployment, job, evaluated, item_ids)
        sums = totals(conn, spec.deployment)
        spread = spreads(conn, spec.deployment, item_ids, spec.repeats) if item_ids else []
    compared_with, note, comparisons = against_baseline(
        engine, baseline, spec.dataset, spec.experiment_id, digest, job.alerts.confidence
    )
    passed, unmeasured = gate_outcome(
        gate, any(c.significant_drop for c in comparisons), allow_unmeasured
    )
    target_usd, from_cache = target_spend(engine, spec.experiment_id)
    cost = sum(t.cost_usd for t in sums) + target_usd
    worst = {
        t.evaluator: [(r.item_id, r.score, r.reason)
                      for r in failing_items(engine, spec.experiment_id, t.evaluator)]
        for t in sums if t.ok > t.passed
    }  # fmt: skip
    finish_experiment(
        engine, spec.experiment_id, "completed", passed,
        [g.model_dump(mode="json") for g in gate],
        {"evaluators": {t.evaluator: t.model_dump() for t in sums}, "target_errors": errors,
         "spreads": [s.model_dump() for s in spread], "target_cost_usd": target_usd},
        cost, run_id,
    )  # fmt: skip
    result = CheckResult(
        experiment_id=spec.experiment_id, name=label, dataset=spec.dataset,
        dataset_digest=digest, target=chosen.spec, tier=spec.tier, items=len(items),
        evaluators=sums, gate=gate, passed=passed, cost_usd=cost, run_id=run_id,
        target_errors=errors, baseline=compared_with, baseline_note=note,
        comparisons=comparisons, worst=worst, repeats=spec.repeats, spreads=spread,
        target_calls=calls, target_cached=from_cache, target_cost_usd=target_usd,
        unmeasured=[f"{g.describe()}: {g.why}" for g in unmeasured],
        allow_unmeasured=allow_unmeasured,
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
