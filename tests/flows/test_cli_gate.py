"""`assay run --fail-on-breach`: the installed CLI exits 3 when the run leaves a rule breached,
0 when it does not (the contract CI pipelines rely on)."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import insert_logs, log

pytestmark = pytest.mark.slow
BASE = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
CONFIG = """deployment: gated
source: {initial_lookback: 1d}
evaluators: [{name: refusal}]
alerts:
  min_samples: 5
  rules: [{evaluator: refusal, metric: pass_rate, op: "<", value: 0.9, mode: raw}]
"""


def assay_run(config: Path, db_url: str) -> subprocess.CompletedProcess[str]:
    assay = Path(sys.executable).parent / "assay"
    env = {**os.environ, "ASSAY_DATABASE_URL": db_url}
    env.pop("ASSAY_SLACK_BOT_TOKEN", None)
    return subprocess.run(
        [str(assay), "run", "gated", "--config", str(config), "--fail-on-breach",
         "--until", (BASE + timedelta(hours=1)).isoformat()],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip


def test_fail_on_breach_exits_3_only_when_a_rule_is_breached(
    engine: sa.Engine, assay_env: str, tmp_path: Path
) -> None:
    config = tmp_path / "gated.yaml"
    config.write_text(CONFIG)
    insert_logs(engine, [log(f"g{i:02d}", BASE + timedelta(minutes=i),
                             response="I cannot help with that request.") for i in range(10)])  # fmt: skip
    breached = assay_run(config, assay_env)
    assert breached.returncode == 3, breached.stdout + breached.stderr
    assert "open breach" in breached.stderr and "refusal" in breached.stderr

    config.write_text(CONFIG.replace("value: 0.9", "value: 0.0"))  # a rule that cannot breach
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM assay.alerts"))
    calm = assay_run(config, assay_env)
    assert calm.returncode == 0, calm.stdout + calm.stderr
