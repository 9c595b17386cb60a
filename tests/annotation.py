"""An annotation queue made the way a user makes one (a judged run, `assay annotate queue`), and
`assay annotate serve` started as a real server on a free port."""

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from tests.cli import ASSAY, assay
from tests.conftest import insert_logs, log
from tests.fakes.llm import FakeLLM, Reply, verdict

BASE = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
XSS = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_queue(
    engine: sa.Engine, db_url: str, cwd: Path, fake_llm: FakeLLM, name: str = "page"
) -> None:
    """Six judged logs of help-bot (one response holds a script) in a queue of six."""
    fake_llm.script("judge", lambda n, _b: Reply(content=verdict(0.9 if n % 2 else 0.2,
                                                                 bool(n % 2), f"reason {n}")))  # fmt: skip
    rows = [log(f"a{i}", BASE + timedelta(minutes=i), response=f"Refunds take {i} days.",
                context=json.dumps(["Refunds take 14 days."])) for i in range(5)]  # fmt: skip
    rows.append(log("evil", BASE + timedelta(minutes=9), response=XSS,
                    context=json.dumps(["Refunds take 14 days."])))  # fmt: skip
    insert_logs(engine, rows)
    (cwd / "deployments/jobs").mkdir(parents=True)
    (cwd / "deployments/jobs/help-bot.yaml").write_text(json.dumps({
        "deployment": "help-bot", "source": {"initial_lookback": "1d"},
        "evaluators": [{"name": "faithfulness", "model": "openai/judge",
                        "api_base": fake_llm.api_base}],
        "budget": {"prices": {"openai/judge": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 2}}},
    }))  # fmt: skip
    done = assay("run", "help-bot", db_url=db_url, cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    made = assay("annotate", "queue", "help-bot", "--evaluator", "faithfulness", "--size", "6",
                 "--since", "1d", "--name", name, "--keep-pii", db_url=db_url, cwd=cwd)  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr


def invite(db_url: str, cwd: Path, url: str, *names: str, queue: str = "page") -> dict[str, str]:
    """name -> personal link, as `assay annotate invite --format json` gives them."""
    made = assay("annotate", "invite", "--queue", queue, "--url", url, *names, "--format",
                 "json", db_url=db_url, cwd=cwd)  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    return dict(json.loads(made.stdout)["links"])


def token_of(link: str) -> str:
    return link.split("#token=", 1)[1]


@contextmanager
def serving(db_url: str, cwd: Path, port: int, *options: str) -> Iterator[str]:
    """`assay annotate serve --queue page` on `port` until the block ends; yields its URL."""
    env = {**os.environ, "ASSAY_DATABASE_URL": db_url}
    server = subprocess.Popen(
        [ASSAY, "annotate", "serve", "--queue", "page", "--port", str(port), *options],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise AssertionError(
                    server.stdout.read().decode() if server.stdout else ""
                ) from None
            time.sleep(0.3)
    try:
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)
