"""`assay check` (gate a target's outputs on a dataset) and `assay experiments` (their history)."""

import asyncio
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from flows.cli.common import (
    FormatOption,
    OutputFormat,
    _guarded,
    app,
    console,
    err_console,
    raise_usage,
)


class TierOption(StrEnum):
    free = "free"
    all = "all"


@app.command()
def check(
    dataset: Annotated[str, typer.Argument(help="The dataset to check on.")],
    config: Annotated[
        Path,
        typer.Option(
            help="Job config whose evaluators and rules apply (a deployment's works).",
            exists=True,
        ),
    ],
    outputs: Annotated[
        Path | None,
        typer.Option(help='JSONL of {"item_id": ..., "output": ...}, one per item.', exists=True),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="module:function, your app's entry point: called with each item (a dict "
            "without the expected answer), returning the output; or prompt:FILE.yaml, a "
            "prompt template with {input}/{context} and a litellm model."
        ),
    ] = None,
    repeat: Annotated[
        int,
        typer.Option(
            min=1,
            max=100,
            help="Call the target N times per item; report the spread and gate on the "
            "interval across repeats.",
        ),
    ] = 1,
    cache: Annotated[
        bool,
        typer.Option(
            help="Reuse answers the same target gave to the same item content before "
            "(--no-cache: call it again, e.g. when the answer depends on other code).",
        ),
    ] = True,
    target_timeout: Annotated[
        float, typer.Option(min=0.1, max=3600, help="Seconds one target call may take.")
    ] = 60.0,
    target_concurrency: Annotated[
        int, typer.Option(min=1, max=256, help="Target calls at once.")
    ] = 8,
    tier: Annotated[
        TierOption, typer.Option(help="free: only the evaluators that cost nothing (seconds).")
    ] = TierOption.all,
    name: Annotated[str | None, typer.Option(help="A name for the experiment.")] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            help="An experiment id, or latest-on-main: also fail when an evaluator's pass rate "
            "is significantly lower than the baseline's on the same items (McNemar, paired)."
        ),
    ] = None,
    junit: Annotated[
        Path | None, typer.Option(help="Write JUnit XML (one test case per rule).")
    ] = None,
    markdown: Annotated[
        Path | None, typer.Option(help="Write a Markdown summary (PR comment, job summary).")
    ] = None,
    estimate: Annotated[
        bool,
        typer.Option(
            "--estimate", help="Print items, calls and projected cost; call and spend nothing."
        ),
    ] = False,
    allow_unmeasured: Annotated[
        bool,
        typer.Option(
            "--allow-unmeasured",
            help="Let a rule that could not decide (too few scores, a failing judge) pass.",
        ),
    ] = False,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Score a target's outputs on every item of DATASET with the config's evaluators, and gate
    them with its `gate:` rules (else its alert rules), decided like production alerts.
    Exit 0: the gate passed; 3: it failed; 1: the check could not run or a rule could not
    decide (not measured); 2: usage or config."""
    from flows.check import evaluate_dataset
    from tasks.config import load_job
    from tasks.datasets.store import dataset_info
    from tasks.experiments.prompts import is_prompt, load_prompt
    from tasks.experiments.request import CheckRequest
    from tasks.experiments.targets import outputs_spec, read_outputs
    from tasks.store.db import scores_engine

    if (outputs is None) == (target is None):
        raise_usage(
            "give the target: --outputs FILE.jsonl, --target module:function or "
            "--target prompt:FILE.yaml"
        )
    if repeat > 1 and outputs is not None:
        raise_usage("--repeat needs a target to call (--target), not a file of outputs")
    job = _guarded(lambda: load_job(config))
    _guarded(lambda: dataset_info(scores_engine(), dataset))
    prompt = target if is_prompt(target) else None
    function = None if prompt else target
    # A typo or a bad prompt file is a usage error before anything runs.
    if prompt is not None:
        _guarded(lambda: load_prompt(prompt))
    elif function is not None:
        from tasks.experiments.callables import load_target

        _guarded(lambda: load_target(function))
    produced = _guarded(lambda: read_outputs(outputs)) if outputs is not None else None
    spec = outputs_spec(outputs) if outputs is not None else ""
    if estimate:
        _estimate(job, dataset, produced, spec, function, prompt, tier.value, repeat, output)
        return
    with console.status(f"checking {dataset} …", spinner="dots"):
        result = _guarded(
            lambda: asyncio.run(
                evaluate_dataset(
                    CheckRequest(
                        job=job,
                        dataset=dataset,
                        outputs=produced,
                        target=spec,
                        tier=tier.value,
                        name=name,
                        target_callable=function,
                        target_timeout_s=target_timeout,
                        target_concurrency=target_concurrency,
                        baseline=baseline,
                        target_prompt=prompt,
                        repeats=repeat,
                        cache=cache,
                        allow_unmeasured=allow_unmeasured,
                    )
                )
            )
        )
    if junit is not None or markdown is not None:
        from tasks.experiments.ci_reports import junit_xml
        from tasks.experiments.ci_reports import markdown as markdown_text

        if junit is not None:
            junit.write_text(junit_xml(result), encoding="utf-8")
        if markdown is not None:
            markdown.write_text(markdown_text(result), encoding="utf-8")
    if output is OutputFormat.json:
        print(result.model_dump_json(indent=2))
    else:
        console.print(_renderable(result))
    if result.outcome == "failed":
        raise typer.Exit(3)
    if result.outcome == "not_measured":
        err_console.print(
            f"error: gate not measured: {'; '.join(result.unmeasured)} "
            "(--allow-unmeasured lets such rules pass)",
            markup=False, highlight=False, soft_wrap=True,
        )  # fmt: skip
        raise typer.Exit(1)


def _estimate(
    job: Any,
    dataset: str,
    produced: Any,
    spec: str,
    function: str | None,
    prompt: str | None,
    tier: str,
    repeats: int,
    output: OutputFormat,
) -> None:
    from datetime import UTC, datetime

    from flows.check import experiment
    from flows.render import columns, compact, keep_whole, money
    from tasks.datasets.store import current_items, dataset_info
    from tasks.experiments.answers import cache_key, units
    from tasks.experiments.callables import load_target, target_spec
    from tasks.experiments.estimate import estimate_check
    from tasks.experiments.prompts import load_prompt
    from tasks.experiments.result import Tier
    from tasks.experiments.store import cached_outputs, scored_items
    from tasks.experiments.targets import TargetOutput, item_rows, matched
    from tasks.store.db import scores_engine

    engine = scores_engine()
    info = dataset_info(engine, dataset)
    with engine.connect() as conn:
        items = current_items(conn, dataset)
    planned = units(items, repeats)
    target_model = None
    if function is not None or prompt is not None:
        if prompt is not None:
            loaded, spec = _guarded(lambda: load_prompt(prompt))
            target_model = loaded
        else:
            assert function is not None
            load_target(function)
            spec = target_spec(function)
        # The answers do not exist yet: a stand-in lets the judges' prompts be priced.
        by_id = {u.log_id: TargetOutput(item_id=u.log_id, output="(answer)") for u in planned}
    else:
        by_id = _guarded(lambda: matched(items, produced))
    level: Tier = "free" if tier == "free" else "all"
    experiment_spec, checked = _guarded(
        lambda: experiment(job, dataset, info.digest, spec, level, repeats)
    )
    already = scored_items(engine, experiment_spec.deployment)
    rows = item_rows(planned, by_id, datetime.now(UTC))
    to_call = [u for u in planned if u.log_id not in already]
    uncached = []
    if function is not None or prompt is not None:
        hits = cached_outputs(engine, [cache_key(spec, u) for u in to_call])
        uncached = [u for u in to_call if cache_key(spec, u) not in hits]
    result = _guarded(
        lambda: estimate_check(checked, rows, already, len(uncached), target_model, uncached)
    )
    if output is OutputFormat.json:
        print(result.model_dump_json(indent=2))
        return
    console.print(
        f"{dataset}: {result.items:,} items, {result.already_scored:,} already scored by this "
        f"experiment; target calls {result.target_calls:,}; spend at most "
        f"{money(result.usd)} (run cap {money(result.max_usd_per_run)})"
    )
    table = columns(compact("calls (nothing was called)"), "evaluator", "model", "calls",
                    "tokens in", "at most")  # fmt: skip
    for j in result.judges:
        table.add_row(j.evaluator, j.model, f"{j.calls:,}", f"{j.input_tokens:,}", money(j.usd))
    console.print(keep_whole(table))


def _renderable(result: Any) -> Any:
    from rich.console import Group

    from flows.render import fitted, money, pct

    head = Text.assemble(
        ("experiment ", ""), (result.experiment_id, "bold"),
        f" · {result.dataset} (digest {result.dataset_digest}) · {result.items:,} items · "
        f"tier {result.tier} · {money(result.cost_usd)}",
    )  # fmt: skip
    rows = [
        (t.evaluator, f"{t.ok:,}", pct(t.pass_rate), f"{t.skipped:,}", f"{t.errors:,}",
         f"{t.cached:,}")
        for t in result.evaluators
    ]  # fmt: skip
    table = fitted("evaluators (n = judged; cached = verdicts reused, no call)",
                   ("evaluator", "n", "pass", "skipped", "errors", "cached"),
                   rows, 80, secondary=())  # fmt: skip
    marks = {"passed": "[green]pass[/]", "failed": "[bold red]FAIL[/]",
             "too_few": "[yellow]too few[/]", "not_run": "[dim]not run[/]",
             "not_measured": "[yellow]not measured[/]"}  # fmt: skip
    gate_rows = [(g.describe(), marks[g.state], _value(g), f"{g.n:,}") for g in result.gate]
    gate = fitted("gate (the same statistics as production alerts)",
                  ("rule", "verdict", "value (CI)", "n"), gate_rows, 80, secondary=())  # fmt: skip
    words = {"passed": "gate passed", "failed": "gate FAILED",
             "not_measured": "gate NOT MEASURED"}  # fmt: skip
    verdict = Text(words[result.outcome], style="bold green" if result.passed else "bold red")
    unmeasured = [Text(f"not measured: {why}", style="yellow") for why in result.unmeasured]
    if result.gate and all(g.state != "passed" and g.state != "failed" for g in result.gate):
        unmeasured.append(Text(
            f"no gate rule could decide on {result.items:,} item(s): add items, lower "
            "min_samples, or fix the judge", style="yellow"))  # fmt: skip
    errors = result.target_errors
    failed_calls = (
        [Text(f"the target failed on {len(errors):,} item(s) (no score for them):",
              style="yellow")]
        + [Text(f"  {item}: {why}") for item, why in list(errors.items())[:5]]
        if errors
        else []
    )  # fmt: skip
    calls = (
        [Text(f"target: {result.target_calls:,} call(s), {result.target_cached:,} answer(s) "
              f"cached, {money(result.target_cost_usd)}")]
        if result.target_calls or result.target_cached
        else []
    )  # fmt: skip
    return Group(
        head, *calls, *table, *_spreads(result), *(gate if result.gate else []),
        *_baseline(result), *failed_calls, *unmeasured, verdict,
    )  # fmt: skip


def _spreads(result: Any) -> list[Any]:
    """With --repeat: each evaluator's pass rate per repeat and the items that flipped."""
    from flows.render import fitted, pct

    if not result.spreads:
        return []
    rows = [
        (s.evaluator, " ".join(pct(r) for r in s.pass_rates),
         "–" if s.spread is None else f"{s.spread * 100:.1f} pp",
         f"{s.unstable_items:,} of {s.items:,}")
        for s in result.spreads
    ]  # fmt: skip
    return fitted(
        f"across {result.repeats} repeats (the gate is decided over items)",
        ("evaluator", "pass rate per repeat", "spread", "items that flipped"),
        rows, 80, secondary=(),
    )  # fmt: skip


def _baseline(result: Any) -> list[Any]:
    from flows.render import fitted, pct

    parts: list[Any] = []
    if result.baseline_note:
        parts.append(Text(result.baseline_note, style="yellow"))
    if not result.comparisons:
        return parts
    rows = [
        (c.evaluator, f"{c.shared:,}", pct(c.baseline_pass_rate), pct(c.pass_rate),
         "–" if c.delta is None else f"{c.delta * 100:+.1f} pp",
         "–" if c.p_value is None else f"{c.p_value:.3g}",
         "[bold red]worse[/]" if c.significant_drop else "ok")
        for c in result.comparisons
    ]  # fmt: skip
    parts += fitted(f"against baseline {result.baseline}",
                    ("evaluator", "shared", "baseline", "now", "change", "p", "verdict"),
                    rows, 80, secondary=())  # fmt: skip
    parts.append(Text(f"method: {result.comparisons[0].method}", style="dim"))
    return parts


def _value(g: Any) -> str:
    if g.value is None:
        return "–"
    percent = g.rule.metric.endswith("rate")

    def show(v: float) -> str:
        return f"{v:.1%}" if percent else f"{v:.3f}"

    interval = f" ({show(g.low)}–{show(g.high)})" if g.low is not None else ""
    return show(g.value) + interval


@app.command()
def experiments(
    dataset: Annotated[str | None, typer.Option(help="Only this dataset's experiments.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many, newest first.")] = 20,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Past checks, newest first: dataset and digest, target, commit, gate outcome, cost."""
    from flows.render import columns, compact, keep_whole, money
    from tasks.datasets.store import dataset_info
    from tasks.experiments.store import list_experiments
    from tasks.store.db import scores_engine

    engine = _guarded(scores_engine)
    if dataset is not None:
        _guarded(lambda: dataset_info(engine, dataset))
    found = _guarded(lambda: list_experiments(engine, dataset, limit))
    if output is OutputFormat.json:
        print(json.dumps([e.model_dump(mode="json") for e in found], indent=2))
        return
    table = columns(compact(f"experiments ({len(found)})"), "experiment", "when", "dataset",
                    "gate", "cost", "target", text=("target",))  # fmt: skip
    for e in found:
        gate = {True: "passed", False: "FAILED", None: e.status}[e.gate_passed]
        table.add_row(e.experiment_id, f"{e.created_at:%m-%d %H:%M}", e.dataset, gate,
                      money(e.cost_usd), Text(e.target))  # fmt: skip
    console.print(keep_whole(table))
    if not found:
        err_console.print("no experiments yet: `assay check DATASET --config F --outputs F`")


def _pair(before: Any, after: Any) -> dict[str, Any]:
    source = after or before
    return {
        "input": source.input if source else None,
        "expected": source.expected if source else None,
        "baseline": before.output if before else None,
        "experiment": after.output if after else None,
    }


@app.command()
def compare(
    baseline: Annotated[str, typer.Argument(help="The experiment to compare against (A).")],
    experiment: Annotated[str, typer.Argument(help="The experiment compared (B).")],
    items: Annotated[int, typer.Option(min=0, max=1000, help="Items to show per list.")] = 5,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Per evaluator, B against A on the items both judged (McNemar for pass/fail, a paired
    bootstrap for mean scores), and the items that regressed and improved, with both outputs."""
    from rich.console import Group

    from flows.render import fitted, pct
    from tasks.experiments.store import get_experiment, item_outputs, item_verdicts
    from tasks.stats.paired import compare_experiments
    from tasks.store.db import scores_engine

    engine = _guarded(scores_engine)
    a = _guarded(lambda: get_experiment(engine, baseline))
    b = _guarded(lambda: get_experiment(engine, experiment))
    comparisons = compare_experiments(
        item_verdicts(engine, a.experiment_id), item_verdicts(engine, b.experiment_id)
    )
    changed = sorted({i for c in comparisons for i in (*c.regressed, *c.improved)})
    outputs_a = item_outputs(engine, a.experiment_id, changed)
    outputs_b = item_outputs(engine, b.experiment_id, changed)
    note = (
        None
        if a.dataset_digest == b.dataset_digest
        else f"different dataset content ({a.dataset_digest} vs {b.dataset_digest}): only the "
        "items both judged are compared"
    )
    if output is OutputFormat.json:
        print(json.dumps({
            "baseline": a.model_dump(mode="json"), "experiment": b.model_dump(mode="json"),
            "note": note, "evaluators": [c.model_dump() for c in comparisons],
            "outputs": {i: _pair(outputs_a.get(i), outputs_b.get(i)) for i in changed},
        }, indent=2))  # fmt: skip
        return
    rows = [
        (c.evaluator, f"{c.shared:,}", pct(c.baseline_pass_rate), pct(c.pass_rate),
         "–" if c.delta is None else f"{c.delta * 100:+.1f} pp",
         "–" if c.p_value is None else f"{c.p_value:.3g}",
         "–" if c.mean_difference is None
         else f"{c.mean_difference:+.3f} ({c.mean_low:+.3f} to {c.mean_high:+.3f})",
         "[bold red]worse[/]" if c.significant_drop else "")
        for c in comparisons
    ]  # fmt: skip
    parts: list[Any] = [Text(f"{b.experiment_id} ({b.name}) against {a.experiment_id} "
                             f"({a.name})", style="bold")]  # fmt: skip
    if note:
        parts.append(Text(note, style="yellow"))
    parts += fitted(None, ("evaluator", "shared", "A", "B", "change", "p", "mean diff (CI)", ""),
                    rows, console.width, secondary=("mean diff (CI)",))  # fmt: skip
    if comparisons:
        parts.append(Text(f"method: {comparisons[0].method}", style="dim"))
    for c in comparisons:
        for word, ids in (("regressed", c.regressed), ("improved", c.improved)):
            for item_id in ids[:items]:
                before, after = outputs_a.get(item_id), outputs_b.get(item_id)
                source = after or before
                parts.append(Text.assemble(
                    (f"{c.evaluator} {word}: {item_id}", "bold"),
                    f"\n  input: {(source.input if source else '') or ''}"[:300],
                    f"\n  A: {(before.output if before else '–') or '–'}"[:300],
                    f"\n  B: {(after.output if after else '–') or '–'}"[:300],
                ))  # fmt: skip
    console.print(Group(*parts))
