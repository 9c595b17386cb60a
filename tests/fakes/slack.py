"""A fake Slack API on 127.0.0.1: `chat.postMessage` and incoming webhooks, scripted per test.

slack-sdk reaches it with `WebClient(base_url=fake.api_base)` / `WebhookClient(fake.webhook_url)`.
It records every payload it accepted and can answer `ratelimited` (429 + Retry-After), 500, or
`channel_not_found`, in a scripted order (`fake.fail_next(...)`) or until told otherwise.
"""

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.loopback import LoopbackServer


@dataclass
class Posted:
    kind: str  # "api" or "webhook"
    payload: dict[str, Any]
    headers: dict[str, str]


class FakeSlack(LoopbackServer):
    def __init__(self) -> None:
        super().__init__()
        self.posted: list[Posted] = []
        self.attempts = 0
        self.down = False  # answer 500 to everything while set
        self._script: list[str] = []  # next answers: "ratelimited", "500", "channel_not_found"
        self.valid_token: str | None = None  # auth.test accepts only this token when set

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook/T000/B000/secret"

    def fail_next(self, *answers: str) -> None:
        self._script.extend(answers)

    def reset(self) -> None:
        self.valid_token = None
        self.posted.clear()
        self._script.clear()
        self.attempts = 0
        self.down = False

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/chat.postMessage", self._post_message)
        app.router.add_post("/api/auth.test", self._auth_test)
        app.router.add_post("/webhook/{path:.*}", self._webhook)

    def _scripted_failure(self) -> web.Response | None:
        self.attempts += 1
        answer = "500" if self.down else (self._script.pop(0) if self._script else None)
        if answer == "ratelimited":
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "1"}
            )
        if answer == "500":
            return web.Response(status=500, text="internal error")
        if answer == "channel_not_found":
            return web.json_response({"ok": False, "error": "channel_not_found"})
        return None

    async def _payload(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            return dict(await request.json())
        form = await request.post()
        payload: dict[str, Any] = dict(form)
        for key in ("blocks", "attachments"):
            if isinstance(payload.get(key), str):
                payload[key] = json.loads(payload[key])
        return payload

    async def _post_message(self, request: web.Request) -> web.Response:
        payload = await self._payload(request)
        if failure := self._scripted_failure():
            return failure
        headers = {k: v for k, v in request.headers.items()}
        self.posted.append(Posted("api", payload, headers))
        return web.json_response(
            {"ok": True, "channel": payload.get("channel"), "ts": f"{len(self.posted)}.000"}
        )

    async def _auth_test(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.valid_token is not None and token != self.valid_token:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        return web.json_response({"ok": True, "team": "Acme", "user": "assay", "team_id": "T1"})

    async def _webhook(self, request: web.Request) -> web.Response:
        payload = await self._payload(request)
        if failure := self._scripted_failure():
            return failure
        self.posted.append(Posted("webhook", payload, dict(request.headers)))
        return web.Response(text="ok")
