"""`assay check --estimate`: what a check would call and cost, spending nothing. Judge calls are
counted per applicable item (the judge's template must be fillable: `correctness` needs an
expected answer) and priced from the rendered prompts' tokens, like `assay estimate`."""

from pydantic import BaseModel

from evaluators.judges.builtin import JudgeEvaluator
from evaluators.judges.client import count_tokens
from evaluators.judges.pricing import price_for
from tasks.config import EvalJob
from tasks.pipeline import build_evaluators
from tasks.warehouse.normalize import normalize_rows


class JudgeEstimate(BaseModel):
    evaluator: str
    model: str
    calls: int
    input_tokens: int
    usd: float | None  # None: no known price


class CheckEstimate(BaseModel):
    items: int
    already_scored: int
    target_calls: int  # a callable target is called this often (its own cost is its own)
    judges: list[JudgeEstimate]
    usd: float | None
    max_usd_per_run: float | None


def estimate_check(
    job: EvalJob, rows: list[dict[str, object]], already: set[str], target_calls: int
) -> CheckEstimate:
    records = [r for r in normalize_rows(rows, "canonical")[0] if r.id not in already]
    judges = [e for e in build_evaluators(job) if isinstance(e, JudgeEvaluator)]
    found: list[JudgeEstimate] = []
    total: float | None = 0.0
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
