"""Quality, usage and spend over a time range, from the hourly rollups.

The report, the dashboard and the run artifacts all come through here, so each number has one
implementation. Rates carry Wilson intervals on Kish's effective sample size, means a normal
interval on the weighted variance; percentiles come from the weighted 0.01-wide histogram,
read in SQL by the same functions the analytics views use.
"""

import math
from datetime import datetime, timedelta
from statistics import NormalDist
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel

from tasks.stats.intervals import difference_interval, wilson
from tasks.store.sql import query

Bucket = Literal["all", "hour", "day"]
By = Literal["all", "model", "provider", "prompt_slug", "topic", "customer_id", "environment"]


def rate_with_interval(
    hits: float, total: float, total_sq: float, confidence: float
) -> tuple[float | None, float | None, float | None]:
    """A weighted rate and its Wilson interval on the effective n (sum w)^2 / sum w^2."""
    if total <= 0:
        return None, None, None
    rate = min(1.0, max(0.0, hits / total))
    low, high = wilson(rate, total * total / total_sq if total_sq else 0.0, confidence)
    return rate, low, high


class ScoreStats(BaseModel):
    """One evaluator over one slice and time bucket. Stable field names (JSON and CSV)."""

    deployment: str
    evaluator: str
    segment: str  # 'all' or the slice's value
    bucket: datetime
    versions: list[str]
    n: int
    ok: int
    errors: int
    skipped: int
    judged: int
    failed: int
    population: float  # weighted: logs the sample stands for
    pass_rate: float | None
    pass_rate_low: float | None
    pass_rate_high: float | None
    mean: float | None
    mean_low: float | None
    mean_high: float | None
    p5: float | None
    p25: float | None
    p50: float | None
    p75: float | None
    p95: float | None
    error_rate: float | None
    cost_usd: float
    unknown_cost: int
    previous_pass_rate: float | None = None
    pass_rate_change: float | None = None
    #: Newcombe's interval for the change (from both windows' Wilson intervals), same level.
    pass_rate_change_low: float | None = None
    pass_rate_change_high: float | None = None
    #: The pass rate corrected by human labels (prediction-powered inference), where people
    #: labelled this judge's verdicts: estimate, interval, and how many labels it rests on.
    corrected_pass_rate: float | None = None
    corrected_low: float | None = None
    corrected_high: float | None = None
    human_labels: int = 0

    @property
    def change_significant(self) -> bool | None:
        if self.pass_rate_change_low is None or self.pass_rate_change_high is None:
            return None
        return self.pass_rate_change_low > 0 or self.pass_rate_change_high < 0


class UsageStats(BaseModel):
    deployment: str
    segment: str
    bucket: datetime
    requests: int
    input_tokens: int
    output_tokens: int
    tokens_per_query: float | None
    cost_usd: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    error_rate: float | None
    error_rate_low: float | None
    error_rate_high: float | None
    refusal_rate: float | None
    refusal_rate_low: float | None
    refusal_rate_high: float | None
    repeat_query_rate: float | None
    feedback_positive_rate: float | None
    feedback_positive_rate_low: float | None
    feedback_positive_rate_high: float | None
    #: Logs of this segment the data contract quarantined, and their share of all its logs:
    #: quality figures cover only the admitted ones.
    quarantined: int = 0
    quarantined_share: float | None = None


class SpendDay(BaseModel):
    deployment: str
    day: Any
    spent_usd: float
    calls: int
    max_usd_per_day: float | None


class Report(BaseModel):
    deployment: str | None
    since: datetime
    until: datetime
    by: By
    confidence: float
    evaluators: list[ScoreStats]
    usage: list[UsageStats]
    spend: list[SpendDay]
    warnings: list[str] = []

    @property
    def eval_cost_usd(self) -> float:
        return sum(s.cost_usd for s in self.evaluators)


def score_stats(row: Any, confidence: float) -> ScoreStats:
    pass_rate, pass_low, pass_high = rate_with_interval(
        row.passed_w, row.judged_w, row.judged_w2, confidence
    )
    mean = mean_low = mean_high = None
    if row.w > 0:
        mean = row.wx / row.w
        variance = max(0.0, row.wx2 / row.w - mean * mean)
        n_eff = row.w * row.w / row.w2 if row.w2 else 0.0
        margin = NormalDist().inv_cdf(0.5 + confidence / 2) * math.sqrt(variance / n_eff)
        mean_low, mean_high = max(0.0, mean - margin), min(1.0, mean + margin)
    return ScoreStats(
        deployment=row.deployment,
        evaluator=row.evaluator,
        segment=row.value,
        bucket=row.bucket,
        versions=sorted(row.versions),
        n=row.n,
        ok=row.ok,
        errors=row.errors,
        skipped=row.skipped,
        judged=row.judged,
        failed=row.failed,
        population=row.w,
        pass_rate=pass_rate,
        pass_rate_low=pass_low,
        pass_rate_high=pass_high,
        mean=mean,
        mean_low=mean_low,
        mean_high=mean_high,
        error_rate=row.error_w / row.all_w if row.all_w > 0 else None,
        cost_usd=row.cost_usd,
        unknown_cost=row.unknown_cost,
        p5=row.p5,
        p25=row.p25,
        p50=row.p50,
        p75=row.p75,
        p95=row.p95,
    )


def usage_stats(row: Any, confidence: float) -> UsageStats:
    def rate(hits: int, total: int) -> tuple[float | None, float | None, float | None]:
        return rate_with_interval(hits, total, total, confidence)

    error = rate(row.errors, row.requests)
    refusal = rate(row.refusals, row.requests)
    feedback = rate(row.feedback_positive, row.feedback_n)
    return UsageStats(
        deployment=row.deployment,
        segment=row.value,
        bucket=row.bucket,
        requests=row.requests,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        tokens_per_query=(row.input_tokens + row.output_tokens) / row.token_requests
        if row.token_requests
        else None,
        cost_usd=row.cost_usd if row.cost_requests else None,  # no cost column: unknown, not $0
        error_rate=error[0],
        error_rate_low=error[1],
        error_rate_high=error[2],
        refusal_rate=refusal[0],
        refusal_rate_low=refusal[1],
        refusal_rate_high=refusal[2],
        repeat_query_rate=row.repeats / row.requests if row.requests else None,
        feedback_positive_rate=feedback[0],
        feedback_positive_rate_low=feedback[1],
        feedback_positive_rate_high=feedback[2],
        latency_p50_ms=row.latency_p50_ms,
        latency_p95_ms=row.latency_p95_ms,
        latency_p99_ms=row.latency_p99_ms,
    )


def _filters(
    deployment: str | None, since: datetime, until: datetime, by: By, bucket: Bucket
) -> dict[str, Any]:
    return {
        "deployment": deployment,
        "since": since,
        "until": until,
        "dim": by,
        "bucket": bucket,
    }


def score_rows(
    conn: sa.Connection,
    deployment: str | None,
    since: datetime,
    until: datetime,
    by: By = "all",
    evaluators: list[str] | None = None,
    bucket: Bucket = "all",
    confidence: float = 0.95,
) -> list[ScoreStats]:
    params = {**_filters(deployment, since, until, by, bucket), "evaluators": evaluators or None}
    rows = conn.execute(sa.text(query("analytics", "score_cells")), params)
    return [score_stats(row, confidence) for row in rows]


def usage_rows(
    conn: sa.Connection,
    deployment: str | None,
    since: datetime,
    until: datetime,
    by: By = "all",
    bucket: Bucket = "all",
    confidence: float = 0.95,
) -> list[UsageStats]:
    rows = conn.execute(
        sa.text(query("analytics", "usage_cells")), _filters(deployment, since, until, by, bucket)
    )
    return [usage_stats(row, confidence) for row in rows]


def spend_rows(
    conn: sa.Connection, deployment: str | None, since: datetime, until: datetime
) -> list[SpendDay]:
    """The spend ledger's days that [since, until) touches, with the daily cap."""
    rows = conn.execute(
        sa.text(query("analytics", "spend_days")),
        {"deployment": deployment, "since": since, "until": until - timedelta(microseconds=1)},
    )
    return [SpendDay.model_validate(r._asdict()) for r in rows]


def change_interval(now: ScoreStats, before: ScoreStats) -> tuple[float, float] | None:
    """The change's interval from both windows' Wilson intervals (see `difference_interval`)."""
    bounds = [(s.pass_rate, s.pass_rate_low, s.pass_rate_high) for s in (now, before)]
    if any(v is None for triple in bounds for v in triple):
        return None
    return difference_interval(*bounds)  # type: ignore[arg-type]


def with_changes(current: list[ScoreStats], previous: list[ScoreStats]) -> list[ScoreStats]:
    """Attach the previous window's pass rate (same length, just before) to each row, and the
    change with its interval."""
    before = {(p.deployment, p.evaluator, p.segment): p for p in previous}
    changed = []
    for row in current:
        prior = before.get((row.deployment, row.evaluator, row.segment))
        update: dict[str, float | None] = {}
        if prior is not None and prior.pass_rate is not None and row.pass_rate is not None:
            update["previous_pass_rate"] = prior.pass_rate
            update["pass_rate_change"] = row.pass_rate - prior.pass_rate
            if bounds := change_interval(row, prior):
                update["pass_rate_change_low"], update["pass_rate_change_high"] = bounds
        elif prior is not None:
            update["previous_pass_rate"] = prior.pass_rate
        changed.append(row.model_copy(update=update))
    return changed


def with_quarantine(
    conn: sa.Connection,
    usage: list[UsageStats],
    deployment: str | None,
    since: datetime,
    until: datetime,
    by: By,
) -> list[UsageStats]:
    counts = {
        (row.deployment, row.value): row.quarantined
        for row in conn.execute(
            sa.text(query("analytics", "quarantine_by_segment")),
            {"deployment": deployment, "since": since, "until": until, "dim": by},
        )
    }
    out = []
    for u in usage:
        lost = counts.get((u.deployment, u.segment), 0)
        total = u.requests + lost
        share = lost / total if total else None
        out.append(u.model_copy(update={"quarantined": lost, "quarantined_share": share}))
    return out


#: Segments whose quarantine shares differ by at least this much (and beyond their 95% Wilson
#: intervals) are flagged: quality is measured on what the contract let through.
BIAS_GAP = 0.02


def quarantine_bias(usage: list[UsageStats], by: By) -> list[str]:
    """Warn when segments lose clearly different shares of their logs to the quarantine."""
    if by == "all":
        return []
    warnings = []
    per_deployment: dict[str, list[UsageStats]] = {}
    for u in usage:
        if u.quarantined_share is not None:
            per_deployment.setdefault(u.deployment, []).append(u)
    for name, rows in per_deployment.items():
        if len(rows) < 2:
            continue
        low = min(rows, key=lambda u: u.quarantined_share or 0.0)
        high = max(rows, key=lambda u: u.quarantined_share or 0.0)
        assert low.quarantined_share is not None and high.quarantined_share is not None
        high_low = wilson(high.quarantined_share, high.requests + high.quarantined, 0.95)[0]
        low_high = wilson(low.quarantined_share, low.requests + low.quarantined, 0.95)[1]
        if high.quarantined_share - low.quarantined_share >= BIAS_GAP and high_low > low_high:
            warnings.append(
                f"{name}: the data contract quarantined {high.quarantined_share:.1%} of "
                f"{by}={high.segment}'s logs but {low.quarantined_share:.1%} of "
                f"{by}={low.segment}'s; quality covers admitted logs only, so comparing these "
                "segments may be biased (see `assay quarantine`; `quality.empty_response: "
                "evaluate` scores empty answers as failures instead)"
            )
    return warnings


def with_corrections(conn: sa.Connection, rows: list[ScoreStats], confidence: float) -> None:
    """Beside each whole-deployment pass rate a judge produced, the estimate corrected by the
    human labels of the same judge versions (their measured bias; see tasks/stats/ppi.py)."""
    import numpy as np

    from tasks.labels.measure import label_pairs
    from tasks.stats.ppi import corrected_from_rate

    judged = [r for r in rows if r.segment == "all" and r.pass_rate is not None]
    if not judged:
        return
    pairs = label_pairs(conn, None, None)
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    for row in judged:
        labelled = [p for (d, e, v), ps in pairs.items() if d == row.deployment
                    and e == row.evaluator and v in row.versions for p in ps]  # fmt: skip
        if not labelled or row.pass_rate_low is None or row.pass_rate_high is None:
            continue
        assert row.pass_rate is not None
        # The judged rate's own variance, read back from its interval (Wilson, weighted n).
        rate_var = ((row.pass_rate_high - row.pass_rate_low) / (2 * z)) ** 2
        found = corrected_from_rate(
            row.pass_rate, rate_var,
            np.array([p.judge_passed for p in labelled]),
            np.array([p.human_passed for p in labelled]),
            np.array([float(p.weight) for p in labelled]), confidence,
        )  # fmt: skip
        row.corrected_pass_rate, row.corrected_low = found.estimate, found.low
        row.corrected_high, row.human_labels = found.high, found.labels


def build_report(
    engine: sa.Engine,
    deployment: str | None,
    since: datetime,
    until: datetime,
    by: By = "all",
    evaluators: list[str] | None = None,
    confidence: float = 0.95,
) -> Report:
    """Everything over [since, until), each evaluator compared with the window just before."""
    length = until - since
    with engine.connect() as conn:
        current = score_rows(conn, deployment, since, until, by, evaluators, "all", confidence)
        previous = score_rows(
            conn, deployment, since - length, since, by, evaluators, "all", confidence
        )
        usage = usage_rows(conn, deployment, since, until, by, "all", confidence)
        usage = with_quarantine(conn, usage, deployment, since, until, by)
        spend_days = spend_rows(conn, deployment, since, until)
        with_corrections(conn, current, confidence)
    return Report(
        deployment=deployment,
        since=since,
        until=until,
        by=by,
        confidence=confidence,
        evaluators=with_changes(current, previous),
        usage=usage,
        spend=spend_days,
        warnings=quarantine_bias(usage, by),
    )
