"""`assay check --target prompt:FILE.yaml`, the content cache and `--repeat`, as CI runs them:
the installed CLI, the math dataset in Postgres, a prompt's model and a judge behind the fake
OpenAI-compatible server over HTTP."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.cli import assay
from tests.fakes.llm import FakeLLM, Reply
from tests.flows.test_cli_check import golden  # noqa: F401  (the fixture)

pytestmark = pytest.mark.slow
_QUESTION = re.compile(r"What is (\d+) plus")


def adder(wrong_every: int = 0) -> Any:
    """A model that adds the question's numbers (every `wrong_every`-th answer off by one)."""

    def reply(n: int, body: dict[str, Any]) -> Reply:
        text = " ".join(str(m["content"]) for m in body["messages"])
        found = _QUESTION.search(text)
        if found is None:
            return Reply(content="You are doing great.")
        total = 2 * int(found[1]) + (1 if wrong_every and n % wrong_every == 0 else 0)
        return Reply(content=f"The answer is {total}.")

    return reply


def prompt_file(path: Path, fake: FakeLLM, **extra: Any) -> Path:
    body = {
        "model": "openai/target-a", "api_base": fake.api_base, "system": "You add numbers.",
        "template": "Question: {input}\nNotes: {context}\nLiteral braces: {{x}}", "max_tokens": 50,
        **extra,
    }  # fmt: skip
    path.write_text(json.dumps(body))  # JSON is YAML
    return path


def job_with(golden: Path, **budget: Any) -> Path:  # noqa: F811
    """The math job, with the target model priced and the budget capped (so a ledger runs)."""
    job = json.loads(golden.read_text())
    job["budget"]["prices"]["openai/target-a"] = {"input_usd_per_mtok": 3, "output_usd_per_mtok": 6}
    job["budget"].update({"max_usd_per_run": 5.0, **budget})
    path = golden.with_name("capped.yaml")
    path.write_text(json.dumps(job))
    return path


def test_a_prompt_target_shares_the_ledger_and_an_unchanged_item_costs_nothing_again(
    golden: Path,  # noqa: F811
    assay_env: str,
    tmp_path: Path,
    fake_llm: FakeLLM,
    engine: sa.Engine,
) -> None:
    fake_llm.script("target-a", adder())
    config = job_with(golden)
    prompt = prompt_file(tmp_path / "adder.yaml", fake_llm)
    target = f"prompt:{prompt}"
    planned = assay("check", "math", "--config", str(config), "--target", target, "--estimate",
                    "--format", "json", db_url=assay_env)  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    assert plan["target_calls"] == 41 and plan["judges"][0]["evaluator"] == "(target)"
    assert fake_llm.requests == []  # an estimate calls nothing

    first = assay("check", "math", "--config", str(config), "--target", target, "--format",
                  "json", db_url=assay_env, env={"GITHUB_SHA": "a" * 40})  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    result = json.loads(first.stdout)
    asked = fake_llm.requests_for("target-a")
    assert len(asked) == 41 and len(fake_llm.requests_for("judge")) == 40
    [system, user] = next(r.body["messages"] for r in asked
                          if "What is 3 plus 3?" in str(r.body["messages"]))  # fmt: skip
    assert system == {"role": "system", "content": "You add numbers."}
    assert user["content"] == "Question: What is 3 plus 3?\nNotes: \nLiteral braces: {x}"
    assert result["target"].startswith("prompt:adder.yaml@") and "(openai/target-a)" in result[
        "target"]  # fmt: skip
    assert result["target_calls"] == 41 and result["target_cost_usd"] > 0
    with engine.connect() as conn:
        spent, calls = conn.execute(sa.text(
            "SELECT spent_usd, calls FROM assay.run_spend WHERE run_id = :r"),
            {"r": result["run_id"]}).one()  # fmt: skip
        judged = conn.execute(sa.text("SELECT sum(cost_usd) FROM assay.scores WHERE deployment "
                                      "= :d"), {"d": "experiment-" + result["experiment_id"]}
                              ).scalar_one()  # fmt: skip
    # One ledger for target and judge calls: it holds exactly what both cost.
    assert calls == 81
    assert spent == pytest.approx(judged + result["target_cost_usd"])
    assert result["cost_usd"] == pytest.approx(spent)

    # A new commit is a new experiment, but nothing it would call has changed.
    again = assay("check", "math", "--config", str(config), "--target", target,
                  db_url=assay_env, env={"GITHUB_SHA": "b" * 40})  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(fake_llm.requests) == 81  # no target call, no judge call
    assert "0 call(s), 41 answer(s) cached" in again.stdout
    replay = json.loads(assay("experiments", "--format", "json", db_url=assay_env).stdout)[0]
    assert replay["cost_usd"] == 0 and replay["totals"]["evaluators"]["correctness"]["cached"] == 40

    # An edited prompt is a new target: called again (and judged again only where the answer
    # changed; these answers did not).
    prompt_file(prompt, fake_llm, system="You add numbers carefully.")
    edited = assay("check", "math", "--config", str(config), "--target", target, "--format",
                   "json", db_url=assay_env, env={"GITHUB_SHA": "b" * 40})  # fmt: skip
    assert edited.returncode == 0, edited.stderr
    assert json.loads(edited.stdout)["target_calls"] == 41
    assert (
        len(fake_llm.requests_for("target-a")) == 82 and len(fake_llm.requests_for("judge")) == 40
    )


def test_the_budget_caps_target_and_judge_calls_together(
    golden: Path,  # noqa: F811
    assay_env: str,
    tmp_path: Path,
    fake_llm: FakeLLM,
    engine: sa.Engine,
) -> None:
    fake_llm.script("target-a", adder())
    config = job_with(golden, max_calls_per_run=30)
    prompt = prompt_file(tmp_path / "adder.yaml", fake_llm)
    done = assay("check", "math", "--config", str(config), "--target", f"prompt:{prompt}",
                 "--format", "json", db_url=assay_env)  # fmt: skip
    result = json.loads(done.stdout)
    assert len(fake_llm.requests) == 30  # targets and judges alike came out of 30 calls
    refused = [why for why in result["target_errors"].values() if "budget exhausted" in why]
    assert refused and len(result["target_errors"]) == len(refused)
    with engine.connect() as conn:
        calls = conn.execute(sa.text("SELECT calls FROM assay.run_spend WHERE run_id = :r"),
                             {"r": result["run_id"]}).scalar_one()  # fmt: skip
    assert calls == 30


def test_repeats_report_the_spread_and_gate_over_items(
    golden: Path,  # noqa: F811
    assay_env: str,
    tmp_path: Path,
    fake_llm: FakeLLM,
    engine: sa.Engine,
) -> None:
    fake_llm.script("target-a", adder(wrong_every=4))  # a quarter of the answers are off
    config = job_with(golden)
    prompt = prompt_file(tmp_path / "adder.yaml", fake_llm, temperature=0.7)
    done = assay("check", "math", "--config", str(config), "--target", f"prompt:{prompt}",
                 "--repeat", "3", "--tier", "free", "--format", "json", db_url=assay_env)  # fmt: skip
    assert done.returncode == 3, done.stdout + done.stderr  # ~75% is clearly under 90%
    result = json.loads(done.stdout)
    assert len(fake_llm.requests_for("target-a")) == 123 and result["repeats"] == 3
    spread = next(s for s in result["spreads"] if s["evaluator"] == "numeric_close")
    assert len(spread["pass_rates"]) == 3 and spread["items"] == 40
    assert spread["unstable_items"] > 0
    [gate] = result["gate"]
    assert gate["n"] == 40  # items, not 120 calls: repeats are not independent observations
    with engine.connect() as conn:
        per_item = conn.execute(sa.text(
            "SELECT avg(passed::int) FROM assay.scores WHERE deployment = :d "
            "AND evaluator = 'numeric_close' AND status = 'ok' "
            "GROUP BY split_part(log_id, '#', 1)"),
            {"d": "experiment-" + result["experiment_id"]}).scalars().all()  # fmt: skip
    assert len(per_item) == 40
    assert gate["value"] == pytest.approx(sum(float(v) for v in per_item) / 40)
    assert gate["low"] < gate["value"] < gate["high"] < 0.9
    summary = tmp_path / "summary.md"
    shown = assay("check", "math", "--config", str(config), "--target", f"prompt:{prompt}",
                  "--repeat", "3", "--tier", "free", "--markdown", str(summary),
                  db_url=assay_env)  # fmt: skip
    assert "across 3 repeats" in shown.stdout and "items that flipped" in shown.stdout
    assert "Across 3 repeats (the gate is decided over items)" in summary.read_text()
    assert len(fake_llm.requests_for("target-a")) == 123  # the same experiment: nothing again

    outputs = tmp_path / "o.jsonl"
    outputs.write_text('{"item_id": "q00", "output": "0"}\n')
    refused = assay("check", "math", "--config", str(config), "--outputs", str(outputs),
                    "--repeat", "2", db_url=assay_env)  # fmt: skip
    assert refused.returncode == 2 and "--repeat needs a target to call" in refused.stderr


def test_a_prompt_file_is_data(
    golden: Path,  # noqa: F811
    assay_env: str,
    tmp_path: Path,
    fake_llm: FakeLLM,
) -> None:
    evil = prompt_file(tmp_path / "evil.yaml", fake_llm, template="{input.__class__}")
    refused = assay("check", "math", "--config", str(golden), "--target", f"prompt:{evil}",
                    db_url=assay_env)  # fmt: skip
    assert refused.returncode == 2
    assert "unknown placeholder(s) {input.__class__}" in " ".join(refused.stderr.split())
    stealer = prompt_file(tmp_path / "stealer.yaml", fake_llm, api_key_env="ASSAY_DATABASE_URL")
    refused = assay("check", "math", "--config", str(golden), "--target", f"prompt:{stealer}",
                    db_url=assay_env)  # fmt: skip
    assert refused.returncode == 2 and "ASSAY_DATABASE_URL" in refused.stderr
    missing = assay("check", "math", "--config", str(golden), "--target", "prompt:nope.yaml",
                    db_url=assay_env)  # fmt: skip
    assert missing.returncode == 2 and "cannot read nope.yaml" in missing.stderr
    assert fake_llm.requests == []
