"""Shared fixtures: a real Postgres database per test (cloned from a migrated template),
Prefect's test harness once per session, and helpers to load logs."""

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from evaluators import offline  # noqa: F401
from tests import pg
from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under xdist (`make test`), the deploy tests share one worker and so one session
    `prefect server` with its process workers; everything else spreads over the rest.

    `tryfirst`: xdist's worker hook turns the `xdist_group` marker into the node id's group
    suffix, so the marker has to be there before it runs (without it, every worker that drew
    a deploy test started a server and process workers of its own)."""
    for item in items:
        if item.nodeid.startswith("tests/deploy/"):
            item.add_marker(pytest.mark.xdist_group("deploy"))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Stop at once if the grouping did not take (pytest 9 ignores the node id xdist 3.8 sets,
    which scattered the deploy tests over every worker: a third more time for the suite)."""
    if not getattr(session.config.option, "loadgroup", False):
        return
    scattered = [i.nodeid for i in session.items
                 if i.nodeid.startswith("tests/deploy/") and not i.nodeid.endswith("@deploy")]  # fmt: skip
    if scattered:
        raise pytest.UsageError(
            f"--dist loadgroup did not group {scattered[0]} (pytest/xdist pins)"
        )


@pytest.fixture(scope="session")
def admin_url() -> str:
    return pg.admin_url()


@pytest.fixture(scope="session")
def template_db(admin_url: str) -> Iterator[str]:
    """A database with every migration applied, cloned for each test (fast, isolated)."""
    from tasks.store.db import _engine, migrate

    name = pg.create_database(admin_url)
    url = pg.as_sqlalchemy_url(pg.with_database(admin_url, name))
    engine = _engine(url)
    migrate(engine)
    engine.dispose()
    yield name
    pg.drop_database(admin_url, name)


@pytest.fixture
def db_url(admin_url: str, template_db: str) -> Iterator[str]:
    name = pg.create_database(admin_url, template=template_db)
    url = pg.as_sqlalchemy_url(pg.with_database(admin_url, name))
    yield url
    from tasks.store.db import _engine

    _engine(url).dispose()
    pg.drop_database(admin_url, name)


@pytest.fixture
def assay_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point Assay's settings at this test's database."""
    from tasks.settings import get_settings

    monkeypatch.setenv("ASSAY_DATABASE_URL", db_url)
    monkeypatch.delenv("ASSAY_WAREHOUSE_URL", raising=False)
    get_settings.cache_clear()
    yield db_url
    get_settings.cache_clear()


@pytest.fixture
def engine(assay_env: str) -> sa.Engine:
    from tasks.store.db import scores_engine

    return scores_engine()


#: Set by the xdist controller: the API URL of the one `prefect server` every worker shares.
SHARED_PREFECT_SERVER = "ASSAY_TESTS_SHARED_PREFECT_API_URL"


def pytest_configure(config: pytest.Config) -> None:
    """Under xdist, one Postgres-backed `prefect server` for every worker, started before they
    are (they inherit its URL), instead of a SQLite test harness per worker: each harness cost
    about 10 s of CPU to start and a little more to keep, on the two cores the suite shares.
    The deploy tests keep a server of their own (with process workers and schedules).

    Each worker gets a Prefect home of its own: the CLI runs that start a temporary server
    (the demo, the kill tests) keep its SQLite database there, one per worker at a time."""
    if hasattr(config, "workerinput"):
        home = (
            Path(os.environ.get("PREFECT_HOME", ".assay/prefect")) / config.workerinput["workerid"]
        )
        home.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(home.resolve())
        # The workers share one server: each keeps its own judge limits on it, as an install
        # sharing a server with another would (a test's limit is not another worker's).
        os.environ["ASSAY_LIMIT_NAMESPACE"] = config.workerinput["workerid"]
        return
    if not getattr(config.option, "numprocesses", None):
        return
    import contextlib
    import tempfile

    from tests.deploy.conftest import running_server, server_database_url

    admin = pg.admin_url()
    if server_database_url(admin, "probe") is None:  # an embedded Postgres: a harness each
        return
    stack = contextlib.ExitStack()
    home = Path(tempfile.mkdtemp(prefix="assay-tests-prefect-"))
    server = stack.enter_context(running_server(admin, home))
    config.stash[_SHARED_SERVER_KEY] = stack
    os.environ[SHARED_PREFECT_SERVER] = server.api_url


_SHARED_SERVER_KEY = pytest.StashKey[object]()


def pytest_unconfigure(config: pytest.Config) -> None:
    stack = config.stash.get(_SHARED_SERVER_KEY, None)
    if stack is not None:
        stack.close()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """A real local Prefect API for the session: the workers' shared server under xdist, else
    Prefect's test harness (started once); yields its API URL."""
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    shared = os.environ.get(SHARED_PREFECT_SERVER)
    if shared:
        with temporary_settings(updates={PREFECT_API_URL: shared}):
            yield shared
        return
    with prefect_test_harness(server_startup_timeout=90):
        yield str(PREFECT_API_URL.value())


def insert_logs(engine: sa.Engine, rows: list[dict[str, object]]) -> None:
    from tasks.demo.seed import SUPPORT_COLUMNS, copy_rows

    with engine.begin() as conn:
        copy_rows(conn, "assay.llm_logs", SUPPORT_COLUMNS, ({**BLANK_LOG, **r} for r in rows))


BLANK_LOG: dict[str, object] = {
    column: None
    for column in (
        "context", "model", "provider", "prompt_slug", "topic", "customer_id", "user_id",
        "session_id", "environment", "input_tokens", "output_tokens", "latency_ms", "cost_usd",
        "feedback", "metadata",
    )
} | {"status": "ok", "response": "A helpful answer of reasonable length."}  # fmt: skip


def log(log_id: str, ts: datetime, **fields: object) -> dict[str, object]:
    return {"id": log_id, "ts": ts, "prompt": f"question {log_id}", **fields}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


@pytest.fixture(scope="session")
def fake_llm_server() -> Iterator[FakeLLM]:
    from tests.fakes.llm import FakeLLM

    with FakeLLM() as server:
        yield server


@pytest.fixture
def fake_llm(fake_llm_server: FakeLLM) -> FakeLLM:
    """The fake OpenAI-compatible server, with this test's script and records only."""
    fake_llm_server.reset()
    fake_llm_server.latency = 0.0
    fake_llm_server.rpm = None
    return fake_llm_server


@pytest.fixture(scope="session")
def fake_slack_server() -> Iterator[FakeSlack]:
    from tests.fakes.slack import FakeSlack

    server = FakeSlack().start()
    yield server
    server.stop()


@pytest.fixture
def fake_slack(
    fake_slack_server: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeSlack]:
    """The fake Slack API, with Assay's bot-token settings pointing at it."""
    from tasks.settings import get_settings

    fake_slack_server.reset()
    monkeypatch.setenv("ASSAY_SLACK_BOT_TOKEN", "xoxb-test-token-never-posted")
    monkeypatch.setenv("ASSAY_SLACK_CHANNEL", "#llm-quality")
    monkeypatch.setenv("ASSAY_SLACK_BASE_URL", fake_slack_server.api_base)
    get_settings.cache_clear()
    yield fake_slack_server
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def _cli_uses_the_session_prefect_server(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test that runs the installed CLI (tests/cli.py) points it at the session's Prefect
    server, so each call does not start and stop a temporary one."""
    from tests import cli

    helpers = ("tests.cli", "tests.annotation")  # modules whose functions run the CLI
    if not any(getattr(v, "__module__", None) in helpers for v in vars(request.module).values()):
        return
    monkeypatch.setenv(cli.SHARED_PREFECT_API, request.getfixturevalue("prefect_api"))
