"""Headless Debian chromium for the browser tests (dashboard, Prefect UI), driven by playwright
with `executable_path`: never `playwright install`, which downloads browsers."""

import os
from pathlib import Path

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
