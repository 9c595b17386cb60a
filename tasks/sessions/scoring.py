"""A unit's scores: free unit evaluators on every unit, unit judges on their sample (strata and
minimums as for logs), through the run's judge runtime."""

import asyncio

from evaluators.base import Score
from evaluators.heuristics.unit_checks import UnitEvaluator
from evaluators.judges.client import JudgeRuntime
from evaluators.judges.sessions import UnitJudge
from tasks.budget.sampling import stratum_key, stratum_sample
from tasks.config import EvalJob
from tasks.sessions.pending import Unit
from tasks.store.rows import MAX_REASON_CHARS, ScoreRow

#: (unit id, evaluator, version) a unit already has a score for: a backfill leaves them be.
Present = set[tuple[str, str, str]]


def unit_row(
    deployment: str,
    unit: Unit,
    evaluator: UnitEvaluator,
    score: Score,
    run_id: str,
    weight: float = 1.0,
    revision: int = 1,
) -> ScoreRow:
    return ScoreRow(
        deployment=deployment, unit_kind=unit.kind, log_id=unit.unit_id,
        evaluator=evaluator.score_name, evaluator_version=evaluator.evaluator_version,
        log_ts=unit.last_ts, judge_model=score.judge_model, status=score.status,
        score=score.score, passed=score.passed, label=score.label,
        reason=score.reason[:MAX_REASON_CHARS] if score.reason else None,
        cost_usd=score.cost_usd, tokens=score.tokens, latency_ms=score.latency_ms,
        weight=weight, run_id=run_id, unit_revision=revision, **unit.segment,
    )  # fmt: skip


def free_rows(
    deployment: str,
    unit: Unit,
    evaluators: list[UnitEvaluator],
    run_id: str,
    revision: int = 1,
    present: Present | None = None,
) -> list[ScoreRow]:
    rows = []
    for evaluator in evaluators:
        if (unit.unit_id, evaluator.score_name, evaluator.evaluator_version) in (present or ()):
            continue
        try:
            score = evaluator.evaluate(unit.unit)
        except Exception as exc:  # an evaluator bug costs one row, not the run
            score = Score.error(f"{type(exc).__name__}: {exc}"[:MAX_REASON_CHARS])
        rows.append(unit_row(deployment, unit, evaluator, score, run_id, revision=revision))
    return rows


def unit_sample(
    job: EvalJob, units: list[Unit], judges: list[UnitJudge]
) -> list[tuple[Unit, UnitJudge, float]]:
    """(unit, judge, weight) of each unit a judge samples: per judge, each stratum's (the job's
    `stratify_by`, read off the unit's first LLM call) lowest inclusion points, the rate's share
    and at least `min_per_stratum`, as for logs."""
    by = list(job.sampling.stratify_by)
    strata: dict[str, list[Unit]] = {}
    for unit in units:
        strata.setdefault(stratum_key(unit.segment, by), []).append(unit)
    work: list[tuple[Unit, UnitJudge, float]] = []
    for judge in judges:
        for members in strata.values():
            by_id = {u.unit_id: u for u in members}
            chosen, weight = stratum_sample(list(by_id), judge.score_name, job.sampling)
            work += [(by_id[u], judge, weight) for u in chosen]
    return work


async def judged_rows(
    job: EvalJob,
    units: list[Unit],
    judges: list[UnitJudge],
    runtime: JudgeRuntime | None,
    run_id: str,
    revisions: dict[str, int],
    present: Present | None = None,
) -> list[ScoreRow]:
    """The unit judges' verdicts on their sample of these units (`unit_sample`), but for those
    `present` already. A refused budget is a skipped row, counted like a log's; a failed call
    an error row: nothing is guessed."""
    work = [(u, j, w) for u, j, w in unit_sample(job, units, judges)
            if (u.unit_id, j.score_name, j.evaluator_version) not in (present or ())]  # fmt: skip

    async def one(unit: Unit, judge: UnitJudge, weight: float) -> ScoreRow:
        if runtime is None:
            score = Score.error("no judge runtime")
        else:
            try:
                score = await judge.judge(unit.unit, runtime)
            except Exception as exc:  # the judge path raised: this unit's error, not the run's
                score = Score.error(f"{type(exc).__name__}: {exc}"[:MAX_REASON_CHARS])
        return unit_row(job.deployment, unit, judge, score, run_id, weight,
                        revisions.get(unit.unit_id, 1))  # fmt: skip

    return list(await asyncio.gather(*(one(u, j, w) for u, j, w in work)))
