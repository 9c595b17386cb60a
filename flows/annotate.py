"""`assay annotate serve`: the annotation page, a small Starlette app (the ASGI framework Prefect
already brings) over one queue. Every mutation is a claim-checked transaction in Postgres, so
several annotators at once never get, or overwrite, the same item.

Who answers is never in a request body: see `annotate_access` (tokens, a trusted proxy, the
Host and Origin checks, bounded bodies).

Log text is data end to end: the API returns it as JSON, the page puts it into the document with
`textContent` only, and the Content-Security-Policy allows no inline script at all.
"""

from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from evaluators.errors import describe_validation_error
from flows.annotate_access import Access, annotator, bounded_body, check_host, check_same_origin
from tasks.errors import ClaimLost, Refused
from tasks.labels.annotators import annotator_of
from tasks.labels.queues import QueueInfo, answer, claim_next, get_queue, renew_claim, skip

PAGE = Path(__file__).with_name("annotate.html")
SCRIPT = Path(__file__).with_name("annotate.js")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Empty(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OnItem(BaseModel):
    model_config = ConfigDict(extra="forbid")  # nobody names themselves in a body

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


def annotation_app(
    engine: sa.Engine, queue: QueueInfo, access: Access, claim_s: float = 120.0
) -> Starlette:
    criterion = rubric(queue.evaluator)

    def secured(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        return response

    def problem(message: str, status: int) -> Response:
        return secured(JSONResponse({"error": message}, status_code=status))

    def token_owner(token: str) -> str | None:
        return annotator_of(engine, queue.queue_id, token)

    async def admitted(request: Request, model: type[BaseModel] | None) -> Any:
        """(annotator, body) for a request that passed every check, else the refusal."""
        try:
            check_host(request, access)
            if request.method != "GET":
                check_same_origin(request)
            who = await run_in_threadpool(annotator, request, access, token_owner)
            raw = await bounded_body(request, access.max_body) if model is not None else b""
        except Refused as exc:
            return problem(str(exc), exc.status)
        if model is None:
            return who, None
        try:
            return who, model.model_validate_json(raw or b"{}")
        except ValidationError as exc:
            return problem(describe_validation_error(exc), 422)

    async def progress() -> dict[str, int]:
        fresh = await run_in_threadpool(get_queue, engine, queue.name)
        return {"size": fresh.size, "labelled": fresh.labelled}

    def static(path: Path, media_type: str) -> Any:
        async def serve(request: Request) -> Response:
            try:
                check_host(request, access)
            except Refused as exc:
                return problem(str(exc), exc.status)
            return secured(Response(path.read_text(), media_type=media_type))

        return serve

    async def about(request: Request) -> Response:
        given = await admitted(request, None)
        if isinstance(given, Response):
            return given
        return secured(JSONResponse({
            "queue": queue.name, "deployment": queue.deployment, "evaluator": queue.evaluator,
            "rubric": criterion, "claim_s": claim_s, "annotator": given[0],
            **(await progress()),
        }))  # fmt: skip

    async def next_item(request: Request) -> Response:
        given = await admitted(request, Empty)
        if isinstance(given, Response):
            return given
        item = await run_in_threadpool(claim_next, engine, queue.queue_id, given[0], claim_s)
        if item is None:
            return secured(JSONResponse({"done": True, **(await progress())}))
        return secured(JSONResponse({
            "done": False, "log_id": item.log_id, "stratum": item.stratum, "shown": item.shown,
            **(await progress()),
        }))  # fmt: skip

    async def submit(request: Request) -> Response:
        given = await admitted(request, Answer)
        if isinstance(given, Response):
            return given
        who, body = given
        try:
            judge = await run_in_threadpool(
                answer, engine, queue, body.log_id, who, body.verdict == "pass", body.note or None
            )
        except ClaimLost as exc:
            return problem(str(exc), 409)
        # Only now, after the person answered, does the page learn what the judge said.
        return secured(JSONResponse({
            "judge": {"passed": judge.judge_passed, "score": judge.judge_score,
                      "reason": judge.judge_reason},
            **(await progress()),
        }))  # fmt: skip

    async def pass_on(request: Request) -> Response:
        given = await admitted(request, OnItem)
        if isinstance(given, Response):
            return given
        who, body = given
        await run_in_threadpool(skip, engine, queue.queue_id, body.log_id, who)
        return secured(JSONResponse(await progress()))

    async def renew(request: Request) -> Response:
        given = await admitted(request, OnItem)
        if isinstance(given, Response):
            return given
        who, body = given
        held = await run_in_threadpool(
            renew_claim, engine, queue.queue_id, body.log_id, who, claim_s
        )
        return secured(JSONResponse({"held": held}))

    return Starlette(routes=[
        Route("/", static(PAGE, "text/html")),
        Route("/annotate.js", static(SCRIPT, "text/javascript")),
        Route("/api/queue", about),
        Route("/api/next", next_item, methods=["POST"]),
        Route("/api/answer", submit, methods=["POST"]),
        Route("/api/skip", pass_on, methods=["POST"]),
        Route("/api/renew", renew, methods=["POST"]),
    ])  # fmt: skip
