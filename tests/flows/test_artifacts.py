"""The run artifact's markdown (what the Prefect UI shows for a run): money always in dollars."""

from datetime import UTC, datetime

from tasks.run.artifacts import summary_markdown
from tasks.store.runs import RunSummary

WHEN = datetime(2026, 12, 1, 12, tzinfo=UTC)


def test_spend_and_caps_are_dollars_and_counts() -> None:
    summary = RunSummary(
        run_id="r1", deployment="help-bot", kind="backfill", status="completed",
        window_start=WHEN, window_end=WHEN, started_at=WHEN, finished_at=WHEN, pulled=10,
        normalized=10, quarantined=0, scored=10, errors=0, skipped=0, error=None,
        details={"spend": {"run_spent_usd": 0.0031, "run_calls": 40, "day_spent_usd": 0.25,
                           "run_refused": 252, "max_usd_per_run": 0.01,
                           "max_usd_per_day": 5, "max_calls_per_run": 1500}},
    )  # fmt: skip
    text = summary_markdown(summary, [], [])
    assert "$0.0031 in 40 calls (today $0.2500)" in text
    assert "caps: $0.0100 per run, $5.00 per day, 1,500 calls per run" in text
