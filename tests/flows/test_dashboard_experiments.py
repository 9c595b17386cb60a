"""The dashboard's experiments page in headless chromium: pass rate per evaluator across a
dataset's experiments, and the side-by-side diff of two experiments' items (whose hostile text
stays text)."""

import json
from pathlib import Path
from typing import Any

import pytest

from tests.browser import CHROMIUM_ARGS, chromium_path
from tests.cli import assay

pytestmark = pytest.mark.slow
XSS = "<script>window.__pwned = 1</script><img src=x onerror='window.__pwned = 2'>"
ITEMS = [{"id": f"q{i}", "input": f"What is {i} plus {i}?", "expected": str(2 * i)}
         for i in range(12)]  # fmt: skip
CONFIG = {
    "deployment": "math-bot",
    "evaluators": [{"name": "numeric_close"}, {"name": "contains_expected"}, {"name": "refusal"}],
}


def check(tmp_path: Path, db_url: str, name: str, wrong: set[int]) -> str:
    """A check of answers, `wrong` of them off by one (q3's is hostile markup when wrong)."""
    lines = []
    for i in range(12):
        answer = str(2 * i + (1 if i in wrong else 0))
        if i == 3 and i in wrong:
            answer = XSS
        lines.append(json.dumps({"item_id": f"q{i}", "output": f"It is {answer}."}))
    outputs = tmp_path / f"{name}.jsonl"
    outputs.write_text("\n".join(lines) + "\n")
    done = assay("check", "math", "--config", str(tmp_path / "job.json"), "--outputs",
                 str(outputs), "--name", name, "--format", "json", db_url=db_url)  # fmt: skip
    assert done.returncode in (0, 3), done.stdout + done.stderr
    return str(json.loads(done.stdout)["experiment_id"])


async def test_the_experiments_page_charts_pass_rates_and_diffs_two_experiments(
    assay_env: str, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    (tmp_path / "items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in ITEMS))
    (tmp_path / "job.json").write_text(json.dumps(CONFIG))
    imported = assay("dataset", "import", "math", str(tmp_path / "items.jsonl"), "--create",
                     db_url=assay_env)  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    first = check(tmp_path, assay_env, "baseline", wrong=set())
    second = check(tmp_path, assay_env, "candidate", wrong={3, 5, 7})
    out = tmp_path / "dashboard.html"
    made = assay("dashboard", "--out", str(out), db_url=assay_env)
    assert made.returncode == 0, made.stderr
    assert "<script>window.__pwned" not in out.read_text()

    errors: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.route("http*://**", lambda route: route.abort())
        await page.goto(out.as_uri())
        await page.wait_for_selector("#chart-experiments .main-svg", timeout=15_000)
        chart: Any = await page.evaluate("""() => {
            const gd = document.getElementById('chart-experiments');
            return gd.data.map(t => ({name: t.name, y: t.y}));
        }""")
        assert await page.input_value("#f-exp-a") == first
        assert await page.input_value("#f-exp-b") == second
        title = await page.inner_text("#experiment-diff-title")
        changed = await page.eval_on_selector_all(
            "#experiment-diff-table tr[data-item]", "rows => rows.map(r => r.dataset.item)"
        )
        hostile = await page.inner_text("#experiment-diff-table tr[data-item='q3']")
        worse = await page.eval_on_selector_all(
            "#experiment-diff-table tr[data-item='q5'] td.worse", "cells => cells.length"
        )
        await page.check("#f-exp-all")
        every = await page.eval_on_selector_all(
            "#experiment-diff-table tr[data-item]", "rows => rows.length"
        )
        await page.select_option("#f-exp-a", second)  # the same experiment on both sides
        alike = await page.inner_text("#experiment-diff-title")
        pwned = await page.evaluate("() => window.__pwned === undefined")
        await browser.close()
    assert not errors, errors
    rates = {t["name"]: t["y"] for t in chart}
    assert set(rates) == {"contains_expected", "numeric_close", "refusal"}
    assert rates["numeric_close"] == pytest.approx([1.0, 9 / 12])
    assert sorted(changed) == ["q3", "q5", "q7"]
    assert "(3 of 12 items judged differently)" in title
    assert XSS in hostile and pwned  # shown as text, never run
    assert worse == 2  # numeric_close and contains_expected went from pass to fail
    assert every == 12
    assert "(0 of 12 items judged differently)" in alike
