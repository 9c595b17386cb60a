"""A check's result for CI: JUnit XML (one test case per gate rule and per baseline comparison)
and a Markdown summary for a PR comment or a job summary. Pure: result in, text out."""

import re
import xml.etree.ElementTree as ET

from tasks.experiments.result import CheckResult

STATE_WORDS = {"passed": "pass", "failed": "FAIL", "too_few": "too few", "not_run": "not run",
               "not_measured": "not measured"}  # fmt: skip


#: Characters XML 1.0 cannot hold at all, even escaped (item ids and reasons are user data).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_safe(text: str) -> str:
    """`text` with each character XML cannot hold written as a visible `\\xNN` escape."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _worst(result: CheckResult, evaluator: str) -> str:
    lines = [
        f"{item}: score {score if score is not None else '–'}; {reason or ''}".strip()
        for item, score, reason in result.worst.get(evaluator, [])
    ]
    return "\n".join(lines) or "no failing items recorded"


def junit_xml(result: CheckResult) -> str:
    suite = ET.Element("testsuite", name=f"assay check {result.dataset}")
    cases = 0
    failures = 0
    errors = 0
    for gate in result.gate:
        case = ET.SubElement(suite, "testcase", classname=f"gate.{result.dataset}",
                             name=gate.describe())  # fmt: skip
        cases += 1
        if gate.state == "failed":
            failures += 1
            failure = ET.SubElement(
                case, "failure",
                message=f"{gate.rule.evaluator} {gate.rule.metric} {gate.value} "
                f"(CI {gate.low}-{gate.high}, n={gate.n}) breaks the rule",
            )  # fmt: skip
            failure.text = _worst(result, gate.rule.evaluator)
        elif gate.state in ("not_measured", "too_few") and not result.allow_unmeasured:
            errors += 1  # could not decide: an error of the check, never a pass
            ET.SubElement(case, "error", message=f"not measured: {gate.why or 'too few scores'}")
        elif gate.state in ("not_measured", "too_few", "not_run"):
            ET.SubElement(case, "skipped", message=f"{STATE_WORDS[gate.state]}: {gate.why or ''}")
    for c in result.comparisons:
        case = ET.SubElement(suite, "testcase", classname=f"baseline.{result.baseline}",
                             name=f"{c.evaluator} vs baseline")  # fmt: skip
        cases += 1
        if c.significant_drop:
            failures += 1
            failure = ET.SubElement(
                case, "failure",
                message=f"pass rate {_pct(c.baseline_pass_rate)} -> {_pct(c.pass_rate)} on "
                f"{c.shared} shared items, p={c.p_value:.3g} ({c.method})",
            )  # fmt: skip
            failure.text = "regressed items: " + ", ".join(c.regressed[:20])
    suite.set("tests", str(cases))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    for element in suite.iter():
        element.attrib = {k: _xml_safe(v) for k, v in element.attrib.items()}
        if element.text:
            element.text = _xml_safe(element.text)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(result: CheckResult) -> str:
    verdict = {"passed": "✅ gate passed", "failed": "❌ gate failed",
               "not_measured": "⚠️ gate not measured"}[result.outcome]  # fmt: skip
    lines = [
        f"### Assay check: {result.dataset} — {verdict}",
        "",
        f"Experiment `{result.experiment_id}` · {result.items:,} items (digest "
        f"`{result.dataset_digest}`) · target `{_cell(result.target)}` · tier {result.tier} · "
        f"${result.cost_usd:.4f}",
        "",
        "| evaluator | n | pass rate | skipped | errors | cached |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    if result.target_calls or result.target_cached:
        calls = f"Target: {result.target_calls} call(s), {result.target_cached} from the cache."
        lines[3:3] = ["", calls]
    lines += [
        f"| {_cell(t.evaluator)} | {t.ok} | {_pct(t.pass_rate)} | {t.skipped} | {t.errors} | "
        f"{t.cached} |"
        for t in result.evaluators
    ]
    if result.spreads:
        lines += ["", f"Across {result.repeats} repeats (the gate is decided over items):", "",
                  "| evaluator | pass rate per repeat | spread | items that flipped |",
                  "|---|---|---:|---:|"]  # fmt: skip
        lines += [
            f"| {_cell(s.evaluator)} | {' / '.join(_pct(r) for r in s.pass_rates)} | "
            f"{'–' if s.spread is None else f'{s.spread * 100:.1f} pp'} | "
            f"{s.unstable_items} of {s.items} |"
            for s in result.spreads
        ]
    if result.gate:
        lines += ["", "| gate rule | verdict | value | n |", "|---|---|---:|---:|"]
        lines += [
            f"| {_cell(g.describe())} | {STATE_WORDS[g.state]}"
            f"{f' ({_cell(g.why)})' if g.why and g.state != 'passed' else ''} | "
            f"{'–' if g.value is None else f'{g.value:.3f}'} | {g.n} |"
            for g in result.gate
        ]
    if result.baseline or result.baseline_note:
        lines += ["", f"**Against baseline `{result.baseline or '–'}`**"]
        if result.baseline_note:
            lines += ["", f"> {_cell(result.baseline_note)}"]
        if result.comparisons:
            lines += [
                "",
                "| evaluator | shared | baseline | now | Δ pp | p | regressed | improved |",
                "|---|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for c in result.comparisons:
                delta = "–" if c.delta is None else f"{c.delta * 100:+.1f}"
                p = "–" if c.p_value is None else f"{c.p_value:.3g}"
                lines.append(
                    f"| {_cell(c.evaluator)} | {c.shared} | {_pct(c.baseline_pass_rate)} | "
                    f"{_pct(c.pass_rate)} | {delta} | {p} | {len(c.regressed)} | "
                    f"{len(c.improved)} |"
                )
            lines += ["", f"Method: {result.comparisons[0].method}."]
    if result.target_errors:
        lines += ["", f"The target failed on {len(result.target_errors)} item(s); they have no "
                  "score."]  # fmt: skip
    return "\n".join(lines) + "\n"
