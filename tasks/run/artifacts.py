"""What a flow run shows in the Prefect UI: a per-evaluator table and a markdown summary.

The numbers come from `tasks.analytics.report` over the rollups of the run's hours, the same
code the `assay report` command and the dashboard use.
"""

from typing import Any

import sqlalchemy as sa
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact

from tasks.alerts.state import open_alerts
from tasks.analytics.formats import money, num, pct
from tasks.analytics.report import ScoreStats, score_rows
from tasks.contract.suite import ContractSummary
from tasks.labels.measure import agreements
from tasks.redact import redact
from tasks.store.rollups import hour_ceil, hour_floor
from tasks.store.runs import RunSummary


def evaluator_table(stats: list[ScoreStats]) -> list[dict[str, Any]]:
    return [
        {
            "evaluator": s.evaluator,
            "n": s.ok,  # judged (ok) scores; skipped and errors are their own columns
            "pass_rate": pct(s.pass_rate),
            "pass_rate_ci": f"{pct(s.pass_rate_low)} to {pct(s.pass_rate_high)}",
            "mean": num(s.mean),
            "p5": num(s.p5),
            "p50": num(s.p50),
            "p95": num(s.p95),
            "errors": s.errors,
            "skipped": s.skipped,
            "cost_usd": round(s.cost_usd, 6),
            "unpriced_calls": s.unknown_cost,
        }
        for s in stats
    ]


def summary_markdown(summary: RunSummary, stats: list[ScoreStats], breaches: list[Any]) -> str:
    details = summary.details
    lines = [
        f"# {summary.deployment}: {summary.kind} run {summary.status}",
        "",
        f"- **Window:** {_second(summary.window_start)} to {_second(summary.window_end)} UTC",
        f"- **Logs:** {summary.pulled:,} pulled, {summary.quarantined:,} quarantined, "
        f"{summary.scored:,} scores written ({summary.errors:,} errors, "
        f"{summary.skipped:,} skipped)",
    ]
    spend = details.get("spend")
    if spend:
        caps = ", ".join(
            f"{shown(spend[key])} {name}"
            for name, key, shown in (
                ("per run", "max_usd_per_run", money),
                ("per day", "max_usd_per_day", money),
                ("calls per run", "max_calls_per_run", lambda n: f"{n:,}"),
            )
            if spend.get(key) is not None
        )
        lines.append(
            f"- **Judge spend:** {money(spend['run_spent_usd'])} in {spend['run_calls']:,} "
            f"calls (today {money(spend['day_spent_usd'])}); caps: {caps or 'none'}; "
            f"{spend['run_refused']:,} calls refused by the budget"
        )
    unscored = details.get("sampling", {}).get("unscored") or {}
    left = {evaluator: sum(strata.values()) for evaluator, strata in unscored.items()}
    if any(left.values()):
        lines.append(
            "- **Unscored (budget):** "
            + ", ".join(f"{e} {n:,}" for e, n in sorted(left.items()) if n)
        )
    if summary.error:
        lines.append(f"- **Error:** {summary.error}")
    lines += ["", "## Evaluators (hours of this run's window)", ""]
    lines += [
        f"- `{s.evaluator}`: pass rate {pct(s.pass_rate)} "
        f"({pct(s.pass_rate_low)} to {pct(s.pass_rate_high)}), mean {num(s.mean)}, "
        f"n={s.ok:,} judged ({s.skipped:,} skipped, {s.errors:,} errors)"
        for s in stats
    ] or ["- no scores"]
    lines += ["", "## Open breaches", ""]
    lines += [
        f"- `{b.evaluator}` {b.metric}{' ' + b.segment if b.segment else ''}: "
        f"{num(b.value)} (opened at {num(b.opened_value)}) since {_second(b.opened_at)} UTC"
        for b in breaches
    ] or ["- none"]
    return "\n".join(lines)


def _second(moment: Any) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}"


async def publish_run_artifacts(
    engine: sa.Engine, summary: RunSummary, evaluators: list[str] | None = None
) -> None:
    """This run's evaluators only (other runs' scores in the same hours are not this run's)."""
    evaluators = evaluators or [e.evaluator for e in summary.evaluators] or None
    start = summary.window_start or summary.window_end
    with engine.connect() as conn:
        stats = score_rows(
            conn,
            summary.deployment,
            hour_floor(start),
            hour_ceil(summary.window_end),
            evaluators=evaluators,
        )
        breaches = open_alerts(conn, summary.deployment)
        agreed = agreements(conn, summary.deployment, weekly=False)
    prefix = f"{summary.deployment.replace('_', '-')}-{summary.kind}"
    if agreed:
        # How far the judges' numbers can be trusted, beside the numbers.
        await acreate_table_artifact(
            table=[
                {"evaluator": a.evaluator, "judge_version": a.evaluator_version[:12],
                 "labels": a.n, "kappa": num(a.kappa.value) if a.enough else a.verdict(),
                 "kappa_ci": f"{num(a.kappa.low)} to {num(a.kappa.high)}" if a.enough else "",
                 "accuracy": pct(a.accuracy.value), "fail_recall": pct(a.recall_on_failures.value),
                 "fail_precision": pct(a.precision_on_failures.value)}
                for a in agreed
            ],
            key=f"{prefix}-agreement",
            description=f"Judges against human labels for {summary.deployment}",
        )  # fmt: skip
    # Artifacts are outward strings like any other: redacted (breach segments come from logs).
    table = [
        {k: redact(v) if isinstance(v, str) else v for k, v in row.items()}
        for row in evaluator_table(stats) or [{"evaluator": "none", "n": 0}]
    ]
    await acreate_table_artifact(
        table=table,
        key=f"{prefix}-evaluators",
        description=f"Per-evaluator results for {summary.deployment}, run {summary.run_id}",
    )
    await acreate_markdown_artifact(
        markdown=redact(summary_markdown(summary, stats, breaches)),
        key=f"{prefix}-summary",
        description=f"Run summary for {summary.deployment}",
    )


async def publish_contract_artifact(deployment: str, contract: ContractSummary) -> None:
    """The contract's findings in the Prefect UI, beside the run."""
    rows = [
        {"expectation": label, "unexpected_rows": n} for label, n in contract.unexpected.items()
    ]
    rows += [
        {"expectation": redact(failure), "unexpected_rows": "batch"}
        for failure in contract.batch_failures
    ]
    description = (
        f"Data contract for {deployment}: {contract.batches} batches, {contract.rows:,} logs, "
        f"{contract.invalid_rows:,} invalid; {contract.expectations_evaluated:,} expectation "
        f"checks, {contract.expectations_failed:,} failed."
    )
    await acreate_table_artifact(
        table=rows or [{"expectation": "all passed", "unexpected_rows": 0}],
        key=f"{deployment.replace('_', '-')}-data-contract",
        description=description,
    )
