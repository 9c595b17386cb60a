"""The first hour's commands, timed as a user runs them (the installed `assay`, a fresh database):
`assay demo` end to end, then `assay estimate` over a small window (targets: demo under 60 s,
estimate under 3 s, on 2 cores).

Raw baselines in the same run: the interpreter starting and importing the CLI (`assay --help`,
the floor every command pays), and `assay estimate --contract`, the same estimate with the
data contract checked (what `estimate` always did before: Great Expectations' 3 s import). The
figures measured at the start of the issue, with the old code on this machine, are printed
beside them for reference: demo 107.6 s, estimate 6.7 s for 11 logs.
"""

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import create_database, drop_database

ASSAY = str(Path(sys.executable).parent / "assay")
BEFORE_ISSUE = {"demo_s": 107.6, "estimate_s": 6.68}


def timed(*args: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([ASSAY, *args], capture_output=True, text=True, env=env, timeout=900)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"assay {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed


def main() -> None:
    name, _conninfo, url = create_database()
    env = {**os.environ, "ASSAY_DATABASE_URL": url}
    for secret in ("ASSAY_SLACK_BOT_TOKEN", "ASSAY_WAREHOUSE_URL", "PREFECT_API_URL"):
        env.pop(secret, None)
    try:
        help_s = min(timed("--help", env=env) for _ in range(3))
        demo_s = timed("demo", env=env)
        now = datetime.now(UTC)
        window = ["--start", (now - timedelta(minutes=10)).isoformat(),
                  "--end", (now - timedelta(minutes=5)).isoformat()]  # fmt: skip
        estimate_s = min(timed("estimate", "support-bot", *window, env=env) for _ in range(3))
        contract_s = min(
            timed("estimate", "support-bot", *window, "--contract", env=env) for _ in range(3)
        )
    finally:
        drop_database(name)
    print(json.dumps({
        "bench": "cli",
        "cli_start_s": round(help_s, 2),
        "demo_s": round(demo_s, 1),
        "estimate_small_window_s": round(estimate_s, 2),
        "estimate_with_contract_s": round(contract_s, 2),
        "estimate_over_cli_start": round(estimate_s / help_s, 1),
        "estimate_contract_ratio": round(estimate_s / contract_s, 2),
        "before_issue": BEFORE_ISSUE,
        "demo_speedup_vs_before": round(BEFORE_ISSUE["demo_s"] / demo_s, 1),
        "targets": {"demo_s": 60, "estimate_s": 3},
        "meets_targets": demo_s < 60 and estimate_s < 3,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
