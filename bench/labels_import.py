"""`assay labels import` of 1,000,000 lines (issue 24: under 60 s and 500 MiB).

Ours: `tasks.labels.store.import_labels` on a JSONL file of one label per judged log (streamed,
validated row by row, checked against the scores in batches, written set-based in one
transaction). Raw baseline, in the same run: the same lines `json.loads`-ed and COPYed into an
unindexed table of the same columns (no validation, no lookup, no history). Peak memory is the
process's maximum resident set, read before and after the import.

Env: BENCH_IMPORT_LABELS (default 1,000,000).
"""

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from bench.common import END, migrated_database
from bench.labels import SCORES_SQL

LINES = int(os.environ.get("BENCH_IMPORT_LABELS", "1000000"))
RAW_TABLE = """
CREATE UNLOGGED TABLE raw_labels (deployment text, log_id text, criterion text, passed boolean,
                                  note text, annotator text)
"""


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_file(path: Path) -> None:
    with path.open("w", encoding="utf-8") as out:
        for g in range(1, LINES + 1):
            out.write(json.dumps({
                "deployment": "bench", "log_id": f"log-{g}", "criterion": "faithfulness",
                "passed": g % 3 != 0, "annotator": f"ann-{g % 7}",
                "note": "the claim about refunds is not in the retrieved context" if g % 5 == 0
                else None,
            }) + "\n")  # fmt: skip


def raw_copy(conninfo: str, path: Path) -> float:
    started = time.perf_counter()
    with psycopg.connect(conninfo) as conn:
        conn.execute(RAW_TABLE)
        columns = ("deployment", "log_id", "criterion", "passed", "note", "annotator")
        statement = f"COPY raw_labels ({', '.join(columns)}) FROM STDIN"
        with conn.cursor() as cur, cur.copy(statement) as copy, path.open(encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                copy.write_row([row.get(c) for c in columns])
    return time.perf_counter() - started


def main() -> None:
    from tasks.labels.store import import_labels

    with migrated_database() as (conninfo, engine):
        with psycopg.connect(conninfo) as conn:
            conn.execute(SCORES_SQL, {"end": END, "n": LINES, "span": 28 * 86400})
            conn.execute("ANALYZE assay.scores")
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "labels.jsonl"
            write_file(path)
            size_mib = path.stat().st_size / 2**20
            raw_s = raw_copy(conninfo, path)
            before = peak_mib()
            started = time.perf_counter()
            result = import_labels(engine, path)
            ours_s = time.perf_counter() - started
            after = peak_mib()
        with psycopg.connect(conninfo) as conn:
            stored = conn.execute("SELECT count(*) FROM assay.labels").fetchone()
        print(json.dumps({
            "bench": "labels_import",
            "lines": LINES,
            "file_mib": round(size_mib, 1),
            "imported": result.imported,
            "rejected": len(result.rejected),
            "stored": stored[0] if stored else None,
            "raw_copy_s": round(raw_s, 2),
            "ours_s": round(ours_s, 2),
            "ours_over_raw": round(ours_s / raw_s, 2),
            "lines_per_s": round(LINES / ours_s),
            "peak_rss_mib_before": round(before),
            "peak_rss_mib_after": round(after),
            "targets": {"ours_s": "< 60", "peak_rss_mib_after": "< 500"},
        }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
