"""Run the installed `assay` as a user would: a subprocess, at a given terminal width."""

import os
import subprocess
import sys
from pathlib import Path

ASSAY = str(Path(sys.executable).parent / "assay")
REPO = Path(__file__).resolve().parents[1]


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
    environment.update(env or {})
    return subprocess.run(
        [ASSAY, *args], capture_output=True, text=True, timeout=timeout, env=environment,
        cwd=cwd or REPO,
    )  # fmt: skip
