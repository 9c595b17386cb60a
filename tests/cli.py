"""Run the installed `assay` as a user would: a subprocess, at a given terminal width."""

import os
import subprocess
import sys
from pathlib import Path

ASSAY = str(Path(sys.executable).parent / "assay")
REPO = Path(__file__).resolve().parents[1]
#: Set by the conftest for tests that run the CLI: the API URL of the session's Prefect server.
SHARED_PREFECT_API = "ASSAY_TESTS_PREFECT_API_URL"


def assay(
    *args: str,
    db_url: str,
    columns: int = 80,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "ASSAY_DATABASE_URL": db_url, "COLUMNS": str(columns)}
    for name in ("ASSAY_SLACK_BOT_TOKEN", "ASSAY_WAREHOUSE_URL", "PREFECT_API_URL"):
        environment.pop(name, None)
    # The session's Prefect server (tests/conftest.py), not a temporary one per call (9-13 s).
    if shared := os.environ.get(SHARED_PREFECT_API):
        environment["PREFECT_API_URL"] = shared
    environment.update(env or {})
    return subprocess.run(
        [ASSAY, *args], capture_output=True, text=True, timeout=timeout, env=environment,
        cwd=cwd or REPO,
    )  # fmt: skip
