"""The annotation page as annotators use it: `assay annotate serve` (the installed CLI, a real
ASGI server) driven by two headless chromium users at once, each signed in by the personal
link `assay annotate invite` gave them, with real clicks and keys. Nobody
gets an item someone else holds, the judge's verdict stays hidden until the person answers, a
closed tab's item comes back after the claim timeout, and a response holding `<script>` is
shown as text and never runs."""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.annotation import XSS, free_port, invite, make_queue, serving
from tests.browser import CHROMIUM_ARGS, chromium_path
from tests.fakes.llm import FakeLLM

pytestmark = pytest.mark.slow
CLAIM_S = 10


@pytest.fixture
def served(
    engine: sa.Engine, assay_env: str, tmp_path: Path, fake_llm: FakeLLM
) -> Iterator[tuple[str, dict[str, str]]]:
    """The page's URL and the personal links of alice and bob."""
    make_queue(engine, assay_env, tmp_path, fake_llm)
    port = free_port()
    links = invite(assay_env, tmp_path, f"http://127.0.0.1:{port}/", "Alice", "bob")
    with serving(assay_env, tmp_path, port, "--claim-timeout", str(CLAIM_S)) as url:
        yield url, links


async def start(browser: Any, link: str, who: str, errors: list[str]) -> Any:
    page = await (await browser.new_context()).new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(link)
    await page.wait_for_selector("#login:not([hidden])")
    assert await page.inner_text("#annotator") == who  # the link says who, not a text box
    assert "#token" not in page.url  # the token left the address bar (history, Referer)
    await page.click("#start")
    await page.wait_for_selector("#work:not([hidden])")
    return page


async def current(page: Any) -> tuple[str, str]:
    item = (await page.inner_text("#item-id")).removeprefix("log ")
    return item, await page.inner_text("#response")


async def test_two_annotators_label_a_queue_without_collisions_and_script_never_runs(
    served: tuple[str, dict[str, str]], engine: sa.Engine
) -> None:
    from playwright.async_api import async_playwright

    url, links = served
    assert set(links) == {"alice", "bob"}  # names are normalised: "Alice" is alice
    errors: list[str] = []
    seen: dict[str, str] = {}  # log id -> the response text the page showed
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        stranger = await (await browser.new_context()).new_page()
        await stranger.goto(url)  # no link, no way in
        await stranger.wait_for_selector("#error:not(:empty)")  # CSS: the page's CSP has no eval
        assert "open the link you were given" in await stranger.inner_text("#error")
        assert await stranger.is_hidden("#login") and await stranger.is_hidden("#work")
        alice = await start(browser, links["alice"], "alice", errors)
        bob = await start(browser, links["bob"], "bob", errors)
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
        await alice.reload()  # the tab keeps its sign-in
        await alice.wait_for_selector("#login:not([hidden])")
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
