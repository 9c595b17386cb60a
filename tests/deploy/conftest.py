"""A real `prefect server` (Postgres-backed, analytics off) on a free loopback port for the
session, the deployments `assay deploy` generates from deployments/jobs/, and real process
workers."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests import pg

PROJECT = Path(__file__).resolve().parents[2]
POOL = "assay-process"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prefect_env(api_url: str, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api_url,
        "PREFECT_UI_API_URL": api_url,
        "PREFECT_UI_URL": api_url.removesuffix("/api"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "1",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "HF_HUB_OFFLINE": "1",
    }


def server_database_url(admin: str, name: str) -> str | None:
    """An asyncpg URL for the server's own database, or None for an embedded (socket) server."""
    p = pg.psycopg.conninfo.conninfo_to_dict(pg.with_database(admin, name))
    host = str(p.get("host", "127.0.0.1"))
    if host.startswith("/"):
        return None
    user = p.get("user", "postgres")
    password = f":{p['password']}" if p.get("password") else ""
    return f"postgresql+asyncpg://{user}{password}@{host}:{p.get('port', 5432)}/{name}"


def stop(process: subprocess.Popen[bytes], kill: bool = False) -> None:
    """Stop a process and everything it started (a worker's flow-run subprocesses)."""
    with contextlib.suppress(psutil.NoSuchProcess):
        parent = psutil.Process(process.pid)
        family = [*parent.children(recursive=True), parent]
        for p in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill() if kill else p.terminate()
        _gone, alive = psutil.wait_procs(family, timeout=20)
        # A worker that outlives SIGTERM (started with SIGINT ignored, as under `nohup ... &`,
        # it cannot turn the signal into its shutdown) would take the next test's runs with
        # this test's database: it is killed.
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(alive, timeout=10)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


class PrefectServer:
    def __init__(self, api_url: str, home: Path) -> None:
        self.api_url = api_url
        self.ui_url = api_url.removesuffix("/api")
        self.home = home

    def env(self, **extra: str) -> dict[str, str]:
        return {**prefect_env(self.api_url, self.home), **extra}

    def start_worker(self, db_url: str, log: Path, limit: int = 8) -> subprocess.Popen[bytes]:
        env = self.env(ASSAY_DATABASE_URL=db_url)
        env.pop("ASSAY_WAREHOUSE_URL", None)
        command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL,
                   "--type", "process", "--limit", str(limit)]  # fmt: skip
        with log.open("ab") as out:
            return subprocess.Popen(command, cwd=PROJECT, env=env, stdout=out, stderr=out)


@pytest.fixture(scope="session")
def prefect_server(
    admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrefectServer]:
    with running_server(admin_url, tmp_path_factory.mktemp("prefect-home")) as server:
        yield server


@contextlib.contextmanager
def running_server(
    admin_url: str, home: Path, backend: str = "postgres", scheduler: bool = False
) -> Iterator[PrefectServer]:
    """`prefect server start` on a free port with its own Postgres database (or SQLite).

    The shared server runs without its scheduler, so the hourly deployments registered for the
    other tests never start a run of their own in the middle of one; the scheduler's own test
    starts servers with it on, visiting deployments every few seconds.
    """
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    name = pg.create_database(admin_url)
    env = prefect_env(api_url, home)
    env["PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED"] = "true" if scheduler else "false"
    env["PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS"] = "5"
    database = server_database_url(admin_url, name) if backend == "postgres" else None
    if database:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database
    else:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{home / 'prefect.db'}"
    log = home / "server.log"
    with log.open("ab") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
             "--port", str(port)],
            cwd=PROJECT, env=env, stdout=out, stderr=out,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prefect server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield PrefectServer(api_url, home)
    finally:
        stop(server)
        pg.drop_database(admin_url, name)


@pytest.fixture(scope="session")
def deployed(prefect_server: PrefectServer) -> PrefectServer:
    """Every job's deployments, registered through `assay deploy`."""
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "deploy"],
        cwd=PROJECT, env=prefect_server.env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return prefect_server


@pytest.fixture
def worker(deployed: PrefectServer, assay_env: str, tmp_path: Path) -> Iterator["Workers"]:
    workers = Workers(deployed, assay_env, tmp_path)
    workers.start()
    yield workers
    workers.stop_all()


class Workers:
    """Process workers pointed at this test's database; killable mid-run."""

    def __init__(self, server: PrefectServer, db_url: str, tmp_path: Path) -> None:
        self.server, self.db_url, self.log = server, db_url, tmp_path / "worker.log"
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        process = self.server.start_worker(self.db_url, self.log)
        self.running.append(process)
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        stop(process, kill=True)
        self.running.remove(process)

    def stop_all(self) -> None:
        for process in list(self.running):
            stop(process)
        self.running.clear()
