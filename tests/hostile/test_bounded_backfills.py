"""Bounded backfills: the chunk count is said before anything starts, more than 10,000 chunks
need --yes, and a plan never grows past a fixed bound whatever the range."""

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flows.backfill import MAX_CHUNKS, chunk_count, chunk_windows
from tasks.errors import ConfigError
from tests.cli import assay


def test_ten_years_of_hourly_chunks_is_refused_before_anything_runs(
    assay_env: str, tmp_path: Path
) -> None:
    job = tmp_path / "b.yaml"
    job.write_text("deployment: b\nevaluators: [{name: refusal}]\n")
    started = time.monotonic()
    done = assay("backfill", "b", "--config", str(job), "--start", "2016-12-01",
                 "--end", "2026-12-01", "--chunk", "1h", db_url=assay_env)  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "87,648 chunks" in done.stderr and "--yes" in done.stderr
    assert time.monotonic() - started < 60  # refused up front, not after planning and running


def test_a_plan_is_counted_by_arithmetic_and_bounded() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    assert chunk_count(start, start + timedelta(days=30), timedelta(seconds=1)) == 2_592_000
    assert len(chunk_windows(start, start + timedelta(hours=25), timedelta(hours=1))) == 25
    with pytest.raises(ConfigError, match=f"more than {MAX_CHUNKS:,}"):
        chunk_windows(start, start + timedelta(days=30), timedelta(seconds=1))
