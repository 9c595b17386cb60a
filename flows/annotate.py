"""`assay annotate serve`: the annotation page, a small Starlette app (the ASGI framework Prefect
already brings) over one queue. Every mutation is a claim-checked transaction in Postgres, so
several annotators at once never get, or overwrite, the same item.

Log text is data end to end: the API returns it as JSON, the page puts it into the document with
`textContent` only, and the Content-Security-Policy allows no inline script at all.
"""

from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, Field, ValidationError, field_validator
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from evaluators.errors import describe_validation_error
from tasks.labels.queues import (
    ClaimLost,
    QueueInfo,
    answer,
    claim_next,
    get_queue,
    renew_claim,
    skip,
)
from tasks.labels.rows import clean_text

PAGE = Path(__file__).with_name("annotate.html")
SCRIPT = Path(__file__).with_name("annotate.js")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Who(BaseModel):
    annotator: str = Field(min_length=1, max_length=200)

    @field_validator("annotator")
    @classmethod
    def _clean(cls, value: str) -> str:
        cleaned = (clean_text(value) or "").strip()
        if not cleaned:
            raise ValueError("annotator is required")
        return cleaned


class OnItem(Who):
    log_id: str = Field(min_length=1, max_length=200)


class Answer(OnItem):
    verdict: Literal["pass", "fail"]
    note: str | None = Field(default=None, max_length=4000)


def rubric(evaluator: str) -> str:
    """What the judge was asked, as the annotator should read it (its template's instructions,
    without the worked example or the log)."""
    from evaluators.judges.builtin import JudgeEvaluator
    from evaluators.registry import build_evaluator

    try:
        judge = build_evaluator(evaluator)
    except Exception:  # a rubric judge needs its job's own text
        return f"The job's {evaluator} rubric (see its job file)."
    if not isinstance(judge, JudgeEvaluator):
        return type(judge).__doc__ or evaluator
    text = judge.template().split("=== user ===")[0]
    return text.split("\nExample")[0].replace("=== system ===", "").strip()


def annotation_app(engine: sa.Engine, queue: QueueInfo, claim_s: float = 120.0) -> Starlette:
    criterion = rubric(queue.evaluator)

    def secured(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        return response

    def problem(message: str, status: int) -> Response:
        return secured(JSONResponse({"error": message}, status_code=status))

    async def body_of(request: Request, model: type[BaseModel]) -> Any:
        try:
            return model.model_validate(await request.json())
        except ValidationError as exc:
            return problem(describe_validation_error(exc), 422)
        except ValueError:
            return problem("the body must be JSON", 400)

    async def progress() -> dict[str, int]:
        fresh = await run_in_threadpool(get_queue, engine, queue.name)
        return {"size": fresh.size, "labelled": fresh.labelled}

    async def page(_request: Request) -> Response:
        return secured(Response(PAGE.read_text(), media_type="text/html"))

    async def script(_request: Request) -> Response:
        return secured(Response(SCRIPT.read_text(), media_type="text/javascript"))

    async def about(_request: Request) -> Response:
        return secured(JSONResponse({
            "queue": queue.name, "deployment": queue.deployment, "evaluator": queue.evaluator,
            "rubric": criterion, "claim_s": claim_s, **(await progress()),
        }))  # fmt: skip

    async def next_item(request: Request) -> Response:
        who = await body_of(request, Who)
        if isinstance(who, Response):
            return who
        item = await run_in_threadpool(claim_next, engine, queue.queue_id, who.annotator, claim_s)
        if item is None:
            return secured(JSONResponse({"done": True, **(await progress())}))
        return secured(JSONResponse({
            "done": False, "log_id": item.log_id, "stratum": item.stratum, "shown": item.shown,
            **(await progress()),
        }))  # fmt: skip

    async def submit(request: Request) -> Response:
        given = await body_of(request, Answer)
        if isinstance(given, Response):
            return given
        try:
            judge = await run_in_threadpool(
                answer, engine, queue, given.log_id, given.annotator, given.verdict == "pass",
                given.note or None,
            )  # fmt: skip
        except ClaimLost as exc:
            return problem(str(exc), 409)
        # Only now, after the person answered, does the page learn what the judge said.
        return secured(JSONResponse({
            "judge": {"passed": judge.judge_passed, "score": judge.judge_score,
                      "reason": judge.judge_reason},
            **(await progress()),
        }))  # fmt: skip

    async def pass_on(request: Request) -> Response:
        given = await body_of(request, OnItem)
        if isinstance(given, Response):
            return given
        await run_in_threadpool(skip, engine, queue.queue_id, given.log_id, given.annotator)
        return secured(JSONResponse(await progress()))

    async def renew(request: Request) -> Response:
        given = await body_of(request, OnItem)
        if isinstance(given, Response):
            return given
        held = await run_in_threadpool(
            renew_claim, engine, queue.queue_id, given.log_id, given.annotator, claim_s
        )
        return secured(JSONResponse({"held": held}))

    return Starlette(routes=[
        Route("/", page), Route("/annotate.js", script), Route("/api/queue", about),
        Route("/api/next", next_item, methods=["POST"]),
        Route("/api/answer", submit, methods=["POST"]),
        Route("/api/skip", pass_on, methods=["POST"]),
        Route("/api/renew", renew, methods=["POST"]),
    ])  # fmt: skip
