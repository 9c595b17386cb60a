"""`assay labels import`, `assay annotate queue|serve`, `assay agreement`: human labels beside
the scores, probability-sampled annotation queues, and how well judges agree with people."""

import csv
import io
import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from flows.cli.analytics import SEGMENTS
from flows.cli.common import (
    FormatOption,
    OutputFormat,
    _guarded,
    _load,
    _since,
    app,
    check_names,
    console,
    err_console,
    raise_usage,
)

labels_app = typer.Typer(help="Human labels: what people decided about logs.", no_args_is_help=True)
app.add_typer(labels_app, name="labels")
annotate_app = typer.Typer(
    help="Annotation queues: sample judged logs and label them in a browser.",
    no_args_is_help=True,
)
app.add_typer(annotate_app, name="annotate")


@labels_app.command("import")
def import_labels(
    file: Annotated[Path, typer.Argument(help="JSONL or CSV of labels.", exists=True)],
    output: FormatOption = OutputFormat.table,
) -> None:
    """Import labels: rows with `deployment` and `log_id` (or `dataset` and `item_id`),
    `criterion`, at least one of `passed`/`score`/`label`, `annotator`, optional `note` and
    `created_at`. Bad rows are listed with their line and reason and the rest is imported
    (exit 1 when any row was rejected); unknown fields are ignored with a warning."""
    from tasks.labels.store import import_labels as run_import
    from tasks.store.db import scores_engine

    result = _guarded(lambda: run_import(scores_engine(), file))
    if output is OutputFormat.json:
        print(result.model_dump_json(indent=2))
    else:
        console.print(f"{result.imported:,} label(s) imported, {len(result.rejected):,} rejected")
        if result.ignored_fields:
            err_console.print(f"ignored unknown field(s): {', '.join(result.ignored_fields)}")
        for reject in result.rejected[:50]:
            err_console.print(Text(f"line {reject.line}: {reject.reason}"))
        if len(result.rejected) > 50:
            err_console.print(f"… and {len(result.rejected) - 50:,} more (--format json lists all)")
    if result.rejected:
        raise typer.Exit(1)


@annotate_app.command("queue")
def queue(
    deployment: Annotated[str, typer.Argument(help="The deployment whose judged logs to sample.")],
    evaluator: Annotated[str, typer.Option(help="The judge whose verdicts people check.")],
    size: Annotated[int, typer.Option(min=1, max=100_000, help="Logs in the queue.")] = 100,
    since: Annotated[str, typer.Option(help="Window start: 7d, 24h or a timestamp.")] = "7d",
    by: Annotated[
        str | None, typer.Option(help=f"Also stratify by a segment: {', '.join(SEGMENTS[1:])}.")
    ] = None,
    oversample_uncertain: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.9,
            help="Share of the queue for logs the judge scored near its threshold (weighted).",
        ),
    ] = 0.0,
    name: Annotated[str | None, typer.Option(help="Queue name (default: from the rest).")] = None,
    keep_pii: Annotated[
        bool, typer.Option("--keep-pii", help="Show annotators unmasked text.")
    ] = False,
    config: Annotated[
        Path | None, typer.Option(help="Job config (default: NAME.yaml in deployments/jobs).")
    ] = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Draw a probability sample of the evaluator's judged logs, stratified by the judge's
    verdict (and optionally a segment), each with its inclusion probability, so agreement and
    error rates estimated from the labels are unbiased for all judged logs."""
    from flows.render import columns, compact, keep_whole
    from tasks.alerts.examples import log_texts
    from tasks.labels.queues import create_queue
    from tasks.store.db import scores_engine

    check_names(deployment, [evaluator])
    if by is not None and by not in SEGMENTS[1:]:
        raise_usage(f"--by {by!r}: one of {', '.join(SEGMENTS[1:])}")
    job = _guarded(lambda: _load(deployment, config))
    now = datetime.now(UTC)
    start = _guarded(lambda: _since(since, now))
    label = name or f"{deployment}-{evaluator}-{now:%Y%m%d-%H%M%S}"
    made = _guarded(lambda: create_queue(
        scores_engine(), job, label, evaluator, (start, now), size, by,  # type: ignore[arg-type]
        oversample_uncertain, lambda ids: log_texts(job, ids, keep_pii),
    ))  # fmt: skip
    if output is OutputFormat.json:
        print(made.model_dump_json(indent=2))
        return
    console.print(
        f"queue {made.name}: {made.size:,} logs of {deployment}'s {evaluator} verdicts "
        f"(judge version {made.evaluator_version[:12]}), {start:%Y-%m-%d %H:%M} to "
        f"{now:%Y-%m-%d %H:%M} UTC"
    )
    table = columns(compact("design (weight = population / sample)"), "stratum", "judged",
                    "in queue", "weight")  # fmt: skip
    for stratum, s in made.design.items():
        weight = f"{s.population / s.sample:.2f}" if s.sample else "–"
        table.add_row(stratum, f"{s.population:,}", f"{s.sample:,}", weight)
    console.print(keep_whole(table))
    console.print(
        f"Invite annotators: `assay annotate invite --queue {made.name} NAME...`, then "
        f"`assay annotate serve --queue {made.name}`"
    )


@annotate_app.command("invite")
def invite(
    queue: Annotated[str, typer.Option(help="The queue they will label.")],
    names: Annotated[list[str], typer.Argument(help="Annotators (one link each).")],
    url: Annotated[
        str, typer.Option(help="Where the page is served, as annotators open it.")
    ] = "http://127.0.0.1:8765/",
    output: FormatOption = OutputFormat.table,
) -> None:
    """Issue each annotator a personal link to the queue (a new link replaces their old one).
    The token in it is shown only now; Postgres keeps its SHA-256. Names are normalised (NFKC,
    casefolded); invisible characters and mixed scripts are refused."""
    from tasks.labels.annotators import invite as issue
    from tasks.labels.queues import get_queue
    from tasks.store.db import scores_engine

    engine = _guarded(scores_engine)
    found = _guarded(lambda: get_queue(engine, queue))
    tokens = _guarded(lambda: issue(engine, found.queue_id, names))
    base = url if url.endswith("/") else url + "/"
    links = {name: f"{base}#token={token}" for name, token in tokens.items()}
    if output is OutputFormat.json:
        print(json.dumps({"queue": found.name, "links": links}, indent=2))
        return
    err_console.print(f"{len(links)} link(s) for queue {found.name}; send each to its person:")
    for name, link in links.items():
        print(f"{name}\t{link}")


@annotate_app.command("revoke")
def revoke(
    queue: Annotated[str, typer.Option(help="The queue.")],
    name: Annotated[str, typer.Argument(help="The annotator whose link stops working.")],
) -> None:
    """Stop an annotator's link working at once; the item they hold goes back to the queue."""
    from tasks.labels.annotators import revoke as withdraw
    from tasks.labels.queues import get_queue
    from tasks.store.db import scores_engine

    engine = _guarded(scores_engine)
    found = _guarded(lambda: get_queue(engine, queue))
    if not _guarded(lambda: withdraw(engine, found.queue_id, name)):
        raise_usage(f"{name!r} has no live link for queue {found.name}")
    console.print(f"revoked {name}'s link for queue {found.name}")


@annotate_app.command("serve")
def serve(
    queue: Annotated[str, typer.Option(help="The queue to label.")],
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8765,
    host: Annotated[
        str, typer.Option(help="Interface (default: this machine only).")
    ] = "127.0.0.1",
    public_name: Annotated[
        list[str] | None,
        typer.Option(
            help="Host name annotators open (checked against the Host header); "
            "required off loopback."
        ),
    ] = None,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(
            help="Reverse proxy address or network whose identity header is trusted "
            "(single sign-on)."
        ),
    ] = None,
    identity_header: Annotated[
        str, typer.Option(help="The header a trusted proxy names the user in.")
    ] = "X-Forwarded-User",
    claim_timeout: Annotated[
        float, typer.Option(min=10, max=86_400, help="Seconds before an abandoned item is freed.")
    ] = 120.0,
) -> None:
    """Serve the annotation page for a queue to the annotators invited to it (`assay annotate
    invite`) or signed in by a trusted proxy: each gets items nobody else holds, one at a time;
    the judge's verdict is shown only after they answer."""
    import uvicorn

    from evaluators.judges.keys import is_loopback
    from flows.annotate import annotation_app
    from flows.annotate_access import LOOPBACK_NAMES, Access, parse_proxies
    from tasks.labels.annotators import invited
    from tasks.labels.queues import get_queue
    from tasks.store.db import scores_engine

    proxies = _guarded(lambda: parse_proxies(trusted_proxy or []))
    if not is_loopback(host) and not public_name:
        raise_usage(
            f"serving on {host} needs --public-name: the host name annotators open, so a "
            "request under any other name (DNS rebinding) is refused"
        )
    engine = _guarded(scores_engine)
    found = _guarded(lambda: get_queue(engine, queue))
    people = _guarded(lambda: invited(engine, found.queue_id))
    if not people and not proxies:
        raise_usage(
            f"no identity configured for queue {found.name}: nobody could sign in. Invite "
            f"annotators (`assay annotate invite --queue {found.name} NAME...`) or name the "
            "reverse proxy that signs them in (--trusted-proxy)"
        )
    access = Access(
        names=tuple(public_name or ()) + (LOOPBACK_NAMES if is_loopback(host) else ()),
        trusted_proxies=proxies, identity_header=identity_header,
    )  # fmt: skip
    signed = f"{people} invited annotator(s)" + (" and a trusted proxy" if proxies else "")
    console.print(
        f"annotating {found.name} ({found.labelled:,} of {found.size:,} labelled) on "
        f"http://{host}:{port}/ for {signed}  (Ctrl+C stops)"
    )
    # proxy_headers=False: the peer address decides whether a proxy is trusted, never an
    # X-Forwarded-For header a client chose.
    uvicorn.run(annotation_app(engine, found, access, claim_timeout), host=host, port=port,
                log_level="warning", proxy_headers=False, server_header=False)  # fmt: skip


class AgreementFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


@app.command()
def agreement(
    deployment: Annotated[str | None, typer.Argument(help="Only this deployment.")] = None,
    evaluator: Annotated[str | None, typer.Option(help="Only this judge.")] = None,
    min_labels: Annotated[
        int, typer.Option(min=2, max=100_000, help="Fewer labels: no number, 'not enough'.")
    ] = 20,
    weekly: Annotated[bool, typer.Option(help="Also per week of judging.")] = True,
    suggest_threshold: Annotated[
        bool,
        typer.Option(
            "--suggest-threshold",
            help="For score-based judges: the pass threshold that agrees best with people.",
        ),
    ] = False,
    output: Annotated[
        AgreementFormat, typer.Option("--format", help="table, json or csv.")
    ] = AgreementFormat.table,
) -> None:
    """How well each judge (per version) agrees with human labels: Cohen's kappa, accuracy,
    precision and recall on failures, TPR/TNR and Spearman, with bootstrap intervals weighted by
    the annotation queues' sampling; and inter-annotator kappa where people overlap."""
    from tasks.labels.measure import agreements, threshold_suggestions
    from tasks.store.db import scores_engine

    check_names(deployment, [evaluator] if evaluator else [])
    engine = _guarded(scores_engine)
    with engine.connect() as conn:
        found = agreements(conn, deployment, evaluator, min_labels, weekly=weekly)
        suggestions = (
            threshold_suggestions(conn, deployment, evaluator, _thresholds(found))
            if suggest_threshold
            else {}
        )
    if output is AgreementFormat.json:
        print(json.dumps({
            "agreement": [a.model_dump() for a in found],
            "threshold_suggestions": [
                {"deployment": k[0], "evaluator": k[1], "evaluator_version": k[2],
                 **(v.model_dump() if v else {})}
                for k, v in suggestions.items()
            ],
        }, indent=2))  # fmt: skip
        return
    if output is AgreementFormat.csv:
        print(_csv(found), end="")
        return
    _print_agreement(found, suggestions)


def _thresholds(found: list[Any]) -> dict[str, float]:
    """The current pass threshold of each judge these results cover (registry defaults)."""
    from evaluators.judges.builtin import JudgeEvaluator
    from evaluators.registry import build_evaluator

    thresholds: dict[str, float] = {}
    for a in found:
        try:
            judge = build_evaluator(a.evaluator.split(":", 1)[0])
        except Exception:  # a rubric needs its template: no default threshold to suggest from
            continue
        if isinstance(judge, JudgeEvaluator):
            thresholds[a.evaluator] = judge.threshold
    return thresholds


METRICS = ("kappa", "accuracy", "precision_on_failures", "recall_on_failures", "tpr", "tnr",
           "spearman")  # fmt: skip


def _csv(found: list[Any]) -> str:
    from tasks.datasets.items import escape_cell

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["deployment", "evaluator", "evaluator_version", "period", "n", "enough",
                     *[f"{m}{s}" for m in METRICS for s in ("", "_low", "_high")],
                     "inter_annotator_kappa", "inter_annotator_logs"])  # fmt: skip
    for a in found:
        values = [getattr(getattr(a, m), k) for m in METRICS for k in ("value", "low", "high")]
        people = a.inter_annotator_kappa
        writer.writerow([escape_cell(a.deployment), escape_cell(a.evaluator),
                         escape_cell(a.evaluator_version), a.period, a.n, a.enough,
                         *["" if v is None else f"{v:.4f}" for v in values],
                         "" if people is None else f"{people:.4f}",
                         a.inter_annotator_logs])  # fmt: skip
    return out.getvalue()


def _interval(e: Any, percent: bool = False) -> str:
    if e.value is None:
        return "–"

    def show(v: float) -> str:
        return f"{v:.0%}" if percent else f"{v:.2f}"

    return show(e.value) + (f" ({show(e.low)}–{show(e.high)})" if e.low is not None else "")


def _print_agreement(found: list[Any], suggestions: dict[Any, Any]) -> None:
    from flows.render import fitted

    if not found:
        err_console.print(
            "no labels beside judged scores yet: `assay annotate queue DEPLOYMENT --evaluator E` "
            "or `assay labels import FILE`"
        )
        return
    rows = []
    for a in found:
        if not a.enough:
            rows.append((a.deployment, a.evaluator, a.evaluator_version[:8], a.period,
                         f"{a.n:,}", a.verdict(), "", "", ""))  # fmt: skip
            continue
        rows.append((
            a.deployment, a.evaluator, a.evaluator_version[:8], a.period, f"{a.n:,}",
            _interval(a.kappa), _interval(a.accuracy, True),
            _interval(a.recall_on_failures, True), _interval(a.precision_on_failures, True),
        ))  # fmt: skip
    console.print(*fitted(
        "judge vs people (95% bootstrap CI, weighted by queue sampling)",
        ("deployment", "evaluator", "version", "period", "labels", "kappa", "accuracy",
         "fail recall", "fail precision"),
        rows, console.width,
        secondary=("accuracy", "fail recall", "fail precision"), keys=2,
    ))  # fmt: skip
    console.print(Text(
        "fail recall: of the logs people failed, the share the judge failed too; fail "
        "precision: of the logs the judge failed, the share people failed too.", style="dim",
    ))  # fmt: skip
    for a in found:
        if a.period == "overall" and a.inter_annotator_logs:
            kappa = "–" if a.inter_annotator_kappa is None else f"{a.inter_annotator_kappa:.2f}"
            console.print(f"{a.deployment} {a.evaluator}: people agree with each other at kappa "
                          f"{kappa} on {a.inter_annotator_logs:,} logs labelled twice")  # fmt: skip
    for (name, judge, version), s in suggestions.items():
        if s is None:
            continue
        console.print(
            f"{name} {judge} ({version[:8]}): pass_threshold {s.current:g} gives kappa "
            f"{_k(s.current_kappa)}; {s.suggested:g} would give {_k(s.suggested_kappa)} "
            f"({s.n:,} labels)"
        )


def _k(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"
