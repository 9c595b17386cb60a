"""Headless Debian chromium for the browser tests (dashboard, Prefect UI), driven by playwright
with `executable_path`: never `playwright install`, which downloads browsers."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


def chromium_path() -> str:
    path = os.environ.get("ASSAY_CHROMIUM", "/usr/bin/chromium")
    if not Path(path).exists():
        pytest.fail(f"no chromium at {path}: `apt-get install -y chromium` (.ci/run does)")
    return path


@asynccontextmanager
async def browser_page(errors: list[str]) -> AsyncIterator[Any]:
    """A 1400x1000 page of headless chromium that records page errors in `errors` and whose
    requests to anything but files fail (the dashboard must work offline)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.route("http*://**", lambda route: route.abort())
        try:
            yield page
        finally:
            await browser.close()
