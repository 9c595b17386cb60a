"""`assay deploy`: register deployments/prefect.yaml with the Prefect server."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tasks.errors import AssayError, ConfigError

PROJECT_DIR = Path(__file__).resolve().parent.parent


def deployments_in(prefect_file: Path) -> list[dict[str, Any]]:
    if not prefect_file.exists():
        raise ConfigError(f"no prefect.yaml at {prefect_file}")
    spec = yaml.safe_load(prefect_file.read_text())
    return list(spec.get("deployments") or [])


async def ensure_work_pools(pools: set[str]) -> None:
    """Create missing process pools; a pool that exists keeps its type and settings."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        for name in sorted(pools):
            try:
                await client.read_work_pool(name)
            except ObjectNotFound:
                await client.create_work_pool(WorkPoolCreate(name=name, type="process"))


def deploy_all(prefect_file: Path) -> list[str]:
    """Every deployment of the file, registered with `prefect deploy --all` from the project
    root (entrypoints are relative to it; workers run flows from ASSAY_PROJECT_DIR)."""
    deployments = deployments_in(prefect_file)
    pools = {d["work_pool"]["name"] for d in deployments if d.get("work_pool")}
    asyncio.run(ensure_work_pools(pools))
    env = {**os.environ, "ASSAY_PROJECT_DIR": str(PROJECT_DIR)}
    command = [
        sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all",
        "--prefect-file", str(prefect_file.resolve()),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=PROJECT_DIR, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise AssayError(f"prefect deploy failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return [d["name"] for d in deployments]
