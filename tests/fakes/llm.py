"""A fake OpenAI-compatible LLM server on 127.0.0.1, scripted per test.

It runs its own event loop in a thread, so the client under test (litellm, Prefect tasks) gets
real HTTP and real concurrency. Each model name has a script: a function from the request number
and the request body to a `Reply` (status, body or verdict, delay, headers). The server records
what it saw: request bodies, arrival times, peak in-flight requests, and how many 429s it sent.
"""

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.loopback import LoopbackServer


@dataclass
class Reply:
    status: int = 200
    content: str | None = None  # the assistant message text; None means "a passing verdict"
    body: str | None = None  # a raw body instead of a chat completion (malformed JSON etc.)
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # never answer (the client's timeout must fire)


def verdict(score: float = 0.9, passed: bool = True, reason: str = "fine", **extra: Any) -> str:
    return json.dumps({"score": score, "passed": passed, "reason": reason, **extra})


Script = Callable[[int, dict[str, Any]], Reply]


def always(reply: Reply) -> Script:
    return lambda _n, _body: reply


def sequence(*replies: Reply) -> Script:
    """Reply in order; the last reply repeats."""
    return lambda n, _body: replies[min(n, len(replies) - 1)]


@dataclass
class Seen:
    model: str
    body: dict[str, Any]
    at: float
    status: int = 0
    authorization: str | None = None


class FakeLLM(LoopbackServer):
    def __init__(self, latency: float = 0.0, rpm: int | None = None) -> None:
        super().__init__()
        self.latency = latency
        self.rpm = rpm  # when set, a 1-second token bucket of rpm/60 like hosted providers use
        self.scripts: dict[str, Script] = {}
        self.default: Script = always(Reply())
        self.requests: list[Seen] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self.rate_limited = 0
        self._counts: dict[str, int] = {}
        self._hanging: set[asyncio.Task[object]] = set()
        self._bucket = 0.0
        self._bucket_at = 0.0

    # -- scripting ------------------------------------------------------------------------
    def script(self, model: str, script: Script) -> None:
        self.scripts[model] = script

    def reset(self) -> None:
        """Forget scripts and records; requests left hanging by a test are cut off."""
        if self._thread.is_alive():
            self.call(self._release_hangs())
        self.scripts.clear()
        self.requests.clear()
        self._counts.clear()
        self.peak_in_flight = self.in_flight
        self.rate_limited = 0
        self._bucket, self._bucket_at = 0.0, 0.0

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def requests_for(self, model: str) -> list[Seen]:
        return [seen for seen in self.requests if seen.model == model]

    def max_in_window(self, seconds: float) -> int:
        """Most requests that arrived within any window of `seconds` (RPM checks)."""
        times = sorted(seen.at for seen in self.requests)
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while t - times[lo] > seconds:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    # -- lifecycle ------------------------------------------------------------------------
    async def _release_hangs(self) -> None:
        for handler in list(self._hanging):
            handler.cancel()
        await asyncio.sleep(0.05)

    async def before_stop(self) -> None:
        await self._release_hangs()

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/chat/completions", self._chat)
        app.router.add_get("/_stats", self._stats)

    async def _stats(self, _request: web.Request) -> web.StreamResponse:
        """What the server saw, for benchmarks that run it in another process."""
        return web.json_response(
            {
                "requests": len(self.requests),
                "peak_in_flight": self.peak_in_flight,
                "rate_limited": self.rate_limited,
                "arrivals": [seen.at for seen in self.requests],
            }
        )

    # -- the endpoint -----------------------------------------------------------------------
    def _over_rate(self, now: float) -> bool:
        if self.rpm is None:
            return False
        per_second = self.rpm / 60
        self._bucket = min(per_second, self._bucket + (now - self._bucket_at) * per_second)
        self._bucket_at = now
        if self._bucket < 1:
            return True
        self._bucket -= 1
        return False

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        now = time.monotonic()
        body = await request.json()
        model = body.get("model", "")
        seen = Seen(
            model=model, body=body, at=now, authorization=request.headers.get("Authorization")
        )
        self.requests.append(seen)
        if self._over_rate(now):
            self.rate_limited += 1
            seen.status = 429
            return web.json_response(
                {"error": {"message": "rate limited", "type": "rate_limit"}},
                status=429,
                headers={"Retry-After": "1"},
            )
        n = self._counts.get(model, 0)
        self._counts[model] = n + 1
        reply = self.scripts.get(model, self.default)(n, body)
        seen.status = reply.status
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if reply.hang:
                handler = asyncio.current_task()
                assert handler is not None
                self._hanging.add(handler)
                try:
                    await asyncio.sleep(3600)
                finally:
                    self._hanging.discard(handler)
            await asyncio.sleep(reply.delay or self.latency)
        finally:
            self.in_flight -= 1
        if reply.status != 200 and reply.body is not None:  # e.g. an error body echoing the key
            return web.Response(
                text=reply.body, status=reply.status, content_type="application/json"
            )
        if reply.status != 200:
            return web.json_response(
                {"error": {"message": f"scripted {reply.status}", "type": "server_error"}},
                status=reply.status,
                headers=reply.headers,
            )
        if reply.body is not None:
            return web.Response(text=reply.body, content_type="application/json")
        content = reply.content if reply.content is not None else verdict()
        prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
        return web.json_response(
            {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_chars // 4 + 1,
                    "completion_tokens": len(content) // 4 + 1,
                    "total_tokens": prompt_chars // 4 + len(content) // 4 + 2,
                },
            },
            headers=reply.headers,
        )


def main() -> None:
    """`python -m tests.fakes.llm --latency 0.2 --rpm 3000`: serve until stdin closes."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--rpm", type=int, default=None)
    args = parser.parse_args()
    server = FakeLLM(latency=args.latency, rpm=args.rpm).start()
    print(server.port, flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
