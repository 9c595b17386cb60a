"""`assay check` on 2,000 items: free evaluators plus one judge at 200 ms latency (concurrency 50).

Targets: items per second at least 80% of the judge-throughput ceiling measured in the same run
(our judge path alone, 2,000 calls at the same latency and concurrency), and a fully cached rerun
of the same experiment under 5% of the first run's wall time with zero judge calls. A rerun on a
new commit (a new experiment) is measured too: its verdicts come from the cross-experiment cache
(zero judge calls; its free evaluators run again). The Prefect
flow machinery is warmed up first on a 5-item check, so its one-off start is not counted.

Env: BENCH_CHECK_ITEMS (default 2000).
"""

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# A Prefect home of its own: judge concurrency limits left on a shared home by other runs (the
# tests create `openai/judge` at 4) would cap this run's concurrency and skew the ratio.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="assay-bench-prefect-")

from bench.common import create_database, drop_database, fake_server, server_stats
from bench.judges import CONCURRENCY, judge_path_run

ITEMS = int(os.environ.get("BENCH_CHECK_ITEMS", "2000"))
LATENCY = 0.2


def check_job(base: str) -> Any:
    from tasks.config import parse_job

    return parse_job({
        "deployment": "bench-check",
        "evaluators": [
            {"name": "exact_match"}, {"name": "contains_expected"}, {"name": "refusal"},
            {"name": "pii"},
            {"name": "correctness", "model": "openai/judge", "api_base": f"{base}/v1"},
        ],
        "limits": {"default": {"concurrency": CONCURRENCY}},
        "budget": {"prices": {"openai/judge": {"input_usd_per_mtok": 0.15,
                                               "output_usd_per_mtok": 0.6}}},
    })  # fmt: skip


def dataset(engine: Any, name: str, n: int) -> list[Any]:
    from tasks.datasets.items import DatasetItem
    from tasks.datasets.store import add_items, create_dataset
    from tasks.experiments.targets import TargetOutput

    create_dataset(engine, name)
    add_items(engine, name, [
        DatasetItem(id=f"i{i:05d}", input=f"Question {i}: how long do refunds take?",
                    context=["Refunds take 14 days."], expected="14 days")
        for i in range(n)
    ])  # fmt: skip
    return [TargetOutput(item_id=f"i{i:05d}", output=f"Refunds take 14 days ({i}).")
            for i in range(n)]  # fmt: skip


async def timed_check(job: Any, name: str, outputs: list[Any]) -> tuple[float, Any]:
    from flows.check import evaluate_dataset
    from tasks.experiments.request import CheckRequest

    started = time.perf_counter()
    result = await evaluate_dataset(
        CheckRequest(job=job, dataset=name, outputs=outputs, target=f"bench:{name}", tier="all")
    )
    return time.perf_counter() - started, result


async def main() -> None:
    from tasks.settings import get_settings
    from tasks.store.db import _engine, migrate

    name, _conninfo, url = create_database()
    os.environ["ASSAY_DATABASE_URL"] = url
    get_settings.cache_clear()
    try:
        engine = _engine(url)
        migrate(engine)
        with fake_server(latency=LATENCY) as base:
            ceiling = await judge_path_run(base, ITEMS)
            job = check_job(base)
            await timed_check(job, "warmup", dataset(engine, "warmup", 5))
            outputs = dataset(engine, "bench", ITEMS)
            before = server_stats(base)["requests"]
            first_s, first = await timed_check(job, "bench", outputs)
            middle = server_stats(base)["requests"]
            rerun_s, rerun = await timed_check(job, "bench", outputs)
            after = server_stats(base)["requests"]
            os.environ["GITHUB_SHA"] = "0" * 40  # CI on the next commit: a new experiment
            commit_s, commit = await timed_check(job, "bench", outputs)
            last = server_stats(base)["requests"]
        items_per_s = ITEMS / first_s
        print(json.dumps({
            "bench": "check",
            "items": ITEMS,
            "judge_latency_s": LATENCY,
            "concurrency": CONCURRENCY,
            "first_run": {"wall_s": round(first_s, 2), "items_per_s": round(items_per_s, 1),
                          "judge_calls": middle - before, "passed": first.passed},
            "judge_path_ceiling_calls_per_s": ceiling["calls_per_s"],
            "items_per_s_over_ceiling": round(items_per_s / ceiling["calls_per_s"], 2),
            "cached_rerun": {"wall_s": round(rerun_s, 2), "judge_calls": after - middle,
                             "same_experiment": rerun.experiment_id == first.experiment_id},
            "rerun_over_first": round(rerun_s / first_s, 3),
            "new_commit_rerun": {"wall_s": round(commit_s, 2), "judge_calls": last - after,
                                 "new_experiment": commit.experiment_id != first.experiment_id,
                                 "cached_verdicts": sum(t.cached for t in commit.evaluators),
                                 "over_first": round(commit_s / first_s, 3)},
            "targets": {"items_per_s_over_ceiling": ">= 0.8", "rerun_over_first": "< 0.05",
                        "rerun_judge_calls": 0, "new_commit_rerun_judge_calls": 0},
        }, indent=2))  # fmt: skip
        engine.dispose()
    finally:
        drop_database(name)


if __name__ == "__main__":
    asyncio.run(main())
