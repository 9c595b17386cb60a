"""Data-contract benchmark: validating a 10,000-log batch against its pull. Prints JSON.

For each of BENCH_BATCHES keyset pages of 10,000 canonical logs (seeded, ~1.6 KB each):
    pull        fetch_page (the same call the flow makes)
    contract    what validation adds: the candidate frame and the GX suite (frame + check_batch)
    admit       the whole admission step: contract plus the pydantic type gate
    normalize   the pydantic normalization the pipeline did before the contract, for reference
Reports medians and contract/pull (target: validation adds < 25% to pull time).

Env: BENCH_BATCHES (default 5).
"""

import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import END, create_database, drop_database, seed
from tasks.config import parse_job
from tasks.contract.suite import admit, check_batch, contract_frame, suite_for
from tasks.store.db import _engine, migrate
from tasks.store.rows import Cursor
from tasks.warehouse.normalize import normalize_rows
from tasks.warehouse.source import fetch_page

BATCH = 10_000
BATCHES = int(os.environ.get("BENCH_BATCHES", "5"))


def main() -> None:
    name, conninfo, url = create_database()
    engine = _engine(url)
    try:
        migrate(engine)
        seed(conninfo, BATCH * BATCHES)
        job = parse_job({"deployment": "bench", "source": {"page_size": BATCH}})
        admit([], "canonical", job.quality)  # import GX and build its context outside timing
        pulls, contracts, validations, normalizations = [], [], [], []
        after = None
        with engine.connect() as conn:
            for _ in range(BATCHES):
                start = time.perf_counter()
                rows = fetch_page(conn, job.source, after, END - timedelta(days=30), END)
                pulls.append(time.perf_counter() - start)
                start = time.perf_counter()
                frame, _, _ = contract_frame(rows, "canonical")
                check_batch(frame, suite_for(job.quality, "canonical", datetime.now(UTC)))
                contracts.append(time.perf_counter() - start)
                start = time.perf_counter()
                admission = admit(rows, "canonical", job.quality)
                validations.append(time.perf_counter() - start)
                assert len(admission.records) == len(rows) == BATCH, admission.summary
                start = time.perf_counter()
                normalize_rows(rows, "canonical")
                normalizations.append(time.perf_counter() - start)
                after = Cursor(ts=rows[-1]["ts"], log_id=rows[-1]["id"])
        pull, contract, validate, normalize = (
            statistics.median(pulls),
            statistics.median(contracts),
            statistics.median(validations),
            statistics.median(normalizations),
        )
        print(
            json.dumps(
                {
                    "batch_logs": BATCH,
                    "batches": BATCHES,
                    "expectations": admission.summary.expectations_evaluated,
                    "pull_ms": round(pull * 1000, 1),
                    "contract_ms": round(contract * 1000, 1),
                    "admit_ms": round(validate * 1000, 1),
                    "normalize_before_ms": round(normalize * 1000, 1),
                    "contract_us_per_log": round(contract / BATCH * 1e6, 1),
                    "validate_over_pull": round(contract / pull, 3),
                    "target_validate_over_pull": "< 0.25",
                },
                indent=2,
            )
        )
    finally:
        engine.dispose()
        drop_database(name)


if __name__ == "__main__":
    main()
