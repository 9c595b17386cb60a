"""The annotation page as annotators use it: `assay annotate serve` (the installed CLI, a real
ASGI server) driven by two headless chromium users at once, with real clicks and keys. Nobody
gets an item someone else holds, the judge's verdict stays hidden until the person answers, a
closed tab's item comes back after the claim timeout, and a response holding `<script>` is
shown as text and never runs."""

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.browser import CHROMIUM_ARGS, chromium_path
from tests.cli import ASSAY, assay
from tests.conftest import insert_logs, log
from tests.fakes.llm import FakeLLM, Reply, verdict

pytestmark = pytest.mark.slow
BASE = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
XSS = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
CLAIM_S = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(engine: sa.Engine, assay_env: str, tmp_path: Path, fake_llm: FakeLLM) -> Iterator[str]:
    fake_llm.script("judge", lambda n, _b: Reply(content=verdict(0.9 if n % 2 else 0.2,
                                                                 bool(n % 2), f"reason {n}")))  # fmt: skip
    rows = [log(f"a{i}", BASE + timedelta(minutes=i), response=f"Refunds take {i} days.",
                context=json.dumps(["Refunds take 14 days."])) for i in range(5)]  # fmt: skip
    rows.append(log("evil", BASE + timedelta(minutes=9), response=XSS,
                    context=json.dumps(["Refunds take 14 days."])))  # fmt: skip
    insert_logs(engine, rows)
    (tmp_path / "deployments/jobs").mkdir(parents=True)
    (tmp_path / "deployments/jobs/help-bot.yaml").write_text(json.dumps({
        "deployment": "help-bot", "source": {"initial_lookback": "1d"},
        "evaluators": [{"name": "faithfulness", "model": "openai/judge",
                        "api_base": fake_llm.api_base}],
        "budget": {"prices": {"openai/judge": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 2}}},
    }))  # fmt: skip
    done = assay("run", "help-bot", db_url=assay_env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    made = assay("annotate", "queue", "help-bot", "--evaluator", "faithfulness", "--size", "6",
                 "--since", "1d", "--name", "page", "--keep-pii", db_url=assay_env, cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    port = free_port()
    env = {**os.environ, "ASSAY_DATABASE_URL": assay_env}
    server = subprocess.Popen(
        [ASSAY, "annotate", "serve", "--queue", "page", "--port", str(port), "--claim-timeout",
         str(CLAIM_S)], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "api/queue", timeout=2).read()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise AssertionError(
                    server.stdout.read().decode() if server.stdout else ""
                ) from None
            time.sleep(0.3)
    yield url
    server.terminate()
    server.wait(timeout=10)


async def start(browser: Any, url: str, who: str, errors: list[str]) -> Any:
    page = await (await browser.new_context()).new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(url)
    await page.fill("#annotator", who)
    await page.click("#start")
    await page.wait_for_selector("#work:not([hidden])")
    return page


async def current(page: Any) -> tuple[str, str]:
    item = (await page.inner_text("#item-id")).removeprefix("log ")
    return item, await page.inner_text("#response")


async def test_two_annotators_label_a_queue_without_collisions_and_script_never_runs(
    served: str, engine: sa.Engine
) -> None:
    from playwright.async_api import async_playwright

    errors: list[str] = []
    seen: dict[str, str] = {}  # log id -> the response text the page showed
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        alice = await start(browser, served, "alice", errors)
        bob = await start(browser, served, "bob", errors)
        (a_item, a_text), (b_item, b_text) = await current(alice), await current(bob)
        seen |= {a_item: a_text, b_item: b_text}
        assert a_item != b_item  # two annotators never hold the same item
        assert await alice.is_hidden("#judge")  # no anchoring: the judge is not shown yet
        assert "judge said" not in await alice.inner_text("body")

        await alice.keyboard.press("p")  # keyboard: pass
        await alice.wait_for_selector("#judge:not([hidden])")
        revealed = await alice.inner_text("#judge-verdict")
        assert revealed.startswith("You said pass; the judge said ")
        await bob.click("#fail")  # mouse: fail
        await bob.wait_for_selector("#judge:not([hidden])")

        await bob.keyboard.press("n")  # bob takes one more item, then closes the tab
        await bob.wait_for_function(
            "(old) => document.getElementById('item-id').textContent !== 'log ' + old", arg=b_item
        )
        held, held_text = await current(bob)
        seen[held] = held_text
        await bob.context.close()

        mine = [a_item]
        while True:
            await alice.keyboard.press("n")
            await alice.wait_for_function(
                "(mine) => !document.getElementById('finished').hidden || "
                "!mine.includes(document.getElementById('item-id').textContent.slice(4))",
                arg=mine,
            )
            if await alice.is_visible("#finished"):
                break
            item, text = await current(alice)
            seen[item] = text
            mine.append(item)
            await alice.keyboard.press("f")
            await alice.wait_for_selector("#judge:not([hidden])")
        assert held not in mine and len(mine) == 4  # bob's item stayed his while claimed
        progress = await alice.inner_text("#progress")

        time.sleep(CLAIM_S + 1)  # the closed tab stopped renewing: the claim lapses
        await alice.reload()
        await alice.click("#start")
        await alice.wait_for_selector("#work:not([hidden])")
        assert (await current(alice))[0] == held
        await alice.keyboard.press("p")
        await alice.wait_for_selector("#judge:not([hidden])")
        pwned = await alice.evaluate("() => window.__pwned === undefined")
        await browser.close()
    assert not errors, errors
    assert progress == "5 of 6 labelled"
    assert seen["evil"] == XSS and pwned  # shown as text, never run
    with engine.connect() as conn:
        labels = conn.execute(sa.text(
            "SELECT log_id, annotator, passed, queue_id IS NOT NULL AS queued, source "
            "FROM assay.labels WHERE criterion = 'faithfulness'")).all()  # fmt: skip
    assert len(labels) == 6 and len({label.log_id for label in labels}) == 6
    assert {label.annotator for label in labels} == {"alice", "bob"}
    assert all(label.queued and label.source == "annotation" for label in labels)
    assert next(label for label in labels if label.log_id == b_item).passed is False
