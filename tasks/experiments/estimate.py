"""`assay check --estimate`: what a check would call and cost, spending nothing. Judge calls are
counted per applicable item (the judge's template must be fillable: `correctness` needs an
expected answer) and priced from the rendered prompts' tokens, like `assay estimate`."""

from typing import TYPE_CHECKING

from pydantic import BaseModel

from evaluators.judges.builtin import JudgeEvaluator
from evaluators.judges.client import count_tokens
from evaluators.judges.pricing import price_for
from tasks.config import EvalJob, build_evaluators
from tasks.warehouse.normalize import normalize_rows

if TYPE_CHECKING:
    from tasks.experiments.answers import Unit
    from tasks.experiments.prompts import PromptTarget

#: How a prompt target's own calls appear among the estimate's rows.
TARGET_ROW = "(target)"


class JudgeEstimate(BaseModel):
    evaluator: str
    model: str
    calls: int
    input_tokens: int
    usd: float | None  # None: no known price


class CheckEstimate(BaseModel):
    items: int
    already_scored: int
    target_calls: int  # the target is called this often (answers in the cache are not)
    judges: list[JudgeEstimate]
    usd: float | None
    max_usd_per_run: float | None


def prompt_estimate(job: EvalJob, prompt: "PromptTarget", calls: "list[Unit]") -> JudgeEstimate:
    """A prompt target's calls, priced like a judge's: counted input, the whole output budget
    (a callable target's own cost is the user's code's business)."""
    tokens = sum(count_tokens(prompt.model, prompt.messages(u.stored)) for u in calls)
    price = price_for(prompt.model, job.budget.prices)
    usd = (
        None
        if price is None
        else price.cost(tokens, 0) + price.cost(0, prompt.max_tokens) * len(calls)
    )
    return JudgeEstimate(evaluator=TARGET_ROW, model=prompt.model, calls=len(calls),
                         input_tokens=tokens, usd=usd)  # fmt: skip


def estimate_check(
    job: EvalJob,
    rows: list[dict[str, object]],
    already: set[str],
    target_calls: int,
    prompt: "PromptTarget | None" = None,
    prompt_calls: "list[Unit] | None" = None,
) -> CheckEstimate:
    records = [r for r in normalize_rows(rows, "canonical")[0] if r.id not in already]
    judges = [e for e in build_evaluators(job) if isinstance(e, JudgeEvaluator)]
    found: list[JudgeEstimate] = []
    total: float | None = 0.0
    if prompt is not None:
        found.append(prompt_estimate(job, prompt, prompt_calls or []))
        total = found[0].usd
    for judge in judges:
        calls = tokens = 0
        for record in records:
            if judge.needs_response and not record.response:
                continue
            try:
                messages = judge.messages(record)
            except KeyError:
                continue
            calls += 1
            tokens += count_tokens(judge.model, messages)
        price = price_for(judge.model, job.budget.prices)
        usd = (
            None
            if price is None
            else price.cost(tokens, 0) + price.cost(0, judge.max_output_tokens) * calls
        )
        found.append(JudgeEstimate(evaluator=judge.score_name, model=judge.model, calls=calls,
                                   input_tokens=tokens, usd=usd))  # fmt: skip
        total = None if usd is None or total is None else total + usd
    return CheckEstimate(
        items=len(rows), already_scored=len(rows) - len(records), target_calls=target_calls,
        judges=found, usd=total, max_usd_per_run=job.budget.max_usd_per_run,
    )  # fmt: skip
