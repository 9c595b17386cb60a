"""The judge runtime of a run: its judge models, their keys (Secret blocks resolved on the
worker, inside the operator's allow-lists), the spend ledger's gate in front, and the prices
that make a paid judge payable at all."""

import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import NamedTuple

import sqlalchemy as sa

from evaluators.base import Evaluator
from evaluators.judges.builtin import JudgeEvaluator
from evaluators.judges.client import Endpoint, JudgeRuntime
from evaluators.judges.keys import check_endpoint
from evaluators.judges.pricing import price_for
from tasks import redact
from tasks.budget.ledger import Ledger, LedgerGate
from tasks.config import EvalJob, build_evaluators
from tasks.errors import ConfigError
from tasks.secrets import is_reference, resolve
from tasks.sessions import session_judges


class Judging(NamedTuple):
    judges: JudgeRuntime | None
    ledger: Ledger | None
    models: list[str]


def judge_models(evaluators: list[Evaluator]) -> list[str]:
    """Every judge model (primary and fallbacks) the paid evaluators may call."""
    models: set[str] = set()
    for evaluator in evaluators:
        if isinstance(evaluator, JudgeEvaluator):
            route = evaluator.route
            models.update(endpoint.model for endpoint in (route.primary, *route.fallbacks))
    return sorted(models)


def judge_env(evaluators: list[Evaluator], extra: Sequence[Endpoint] = ()) -> dict[str, str]:
    """The environment the judge runtime reads keys from, with every `secret://BLOCK` its
    judges (and a check's prompt target, `extra`) name resolved (on the worker, at run time;
    never stored in parameters)."""
    env = dict(os.environ)
    endpoints = [*extra]
    for evaluator in evaluators:
        if isinstance(evaluator, JudgeEvaluator):
            endpoints += [evaluator.route.primary, *evaluator.route.fallbacks]
    for endpoint in endpoints:
        if endpoint.api_key_env and is_reference(endpoint.api_key_env):
            try:  # the worker's own list decides, whatever process loaded the config
                check_endpoint(endpoint.api_base, endpoint.api_key_env)
            except ValueError as refused:
                raise ConfigError(str(refused)) from None
            env[endpoint.api_key_env] = resolve(endpoint.api_key_env)
    return env


def require_prices(job: EvalJob, models: list[str]) -> None:
    """Unknown cost never counts as zero: a judge model must have a price to be paid for."""
    unpriced = [m for m in models if price_for(m, job.budget.prices) is None]
    if unpriced:
        raise ConfigError(
            f"no known price for judge model(s) {', '.join(unpriced)}: litellm's price map "
            "does not list them; set budget.prices (USD per million input and output tokens)"
        )


def ledger_gate(judges: JudgeRuntime | None) -> LedgerGate | None:
    return judges.gate if judges is not None and isinstance(judges.gate, LedgerGate) else None


async def release_unstored(judges: JudgeRuntime | None) -> None:
    """A page that fails after judging stores none of its results: their reservations are
    released, and the logs are judged (and paid for) again when the page is retried."""
    gate = ledger_gate(judges)
    if gate is not None:
        with contextlib.suppress(Exception):
            await gate.release(gate.take())


@asynccontextmanager
async def judging(
    job: EvalJob,
    engine: sa.Engine,
    budget_key: str,
    targets: Sequence[Endpoint] = (),
    spends: bool = True,
) -> AsyncIterator[Judging]:
    """The judge runtime of a run, behind the spend ledger of `budget_key` when the job has
    caps (a backfill's chunks share their parent's key, so its budget covers them all). A
    check's prompt target (`targets`) calls through the same runtime and ledger. A run that
    does not spend (`spends`: a backfill's parent) gets neither.
    Every run passes through here, so this is where its log lines start being redacted."""
    redact.refresh()
    redact.install_log_redaction()
    if not spends:
        yield Judging(None, None, [])
        return
    evaluators = build_evaluators(job)
    # Session judges call through the same runtime and ledger as the log judges.
    targets = [*targets, *(j.route.primary for j in session_judges(job))]
    models = sorted({*judge_models(evaluators), *(t.model for t in targets)})
    ledger = (
        Ledger(engine, job.deployment, budget_key, job.budget)
        if models and job.budget.capped
        else None
    )
    gate = LedgerGate(ledger) if ledger else None
    judges = (
        JudgeRuntime(job.judge_settings(), gate=gate, env=judge_env(evaluators, targets))
        if models
        else None
    )
    try:
        yield Judging(judges, ledger, models)
    finally:
        if gate is not None:
            await gate.close()
        if judges is not None:
            await judges.close()
