"""`assay check` as CI runs it: the installed CLI, a dataset in Postgres, a target's outputs, the
config's evaluators and rules; exit 0 when the gate holds, 3 when a regression breaks it."""

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.cli import assay
from tests.fakes.llm import FakeLLM, Reply, always, verdict

pytestmark = pytest.mark.slow
ITEMS = [
    {"id": f"q{i:02d}", "input": f"What is {i} plus {i}?", "expected": str(2 * i)}
    for i in range(40)
] + [{"id": "open", "input": "Say something kind."}]  # no expected answer: skipped, not failed


def config(fake: FakeLLM) -> str:
    return json.dumps({
        "deployment": "math-bot",
        "evaluators": [
            {"name": "numeric_close"},
            {"name": "refusal"},
            {"name": "correctness", "model": "openai/judge", "api_base": fake.api_base},
        ],
        "budget": {"prices": {"openai/judge": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 2}}},
        "limits": {"default": {"retries": 0, "concurrency": 4}},
        "alerts": {"min_samples": 20, "rules": [
            {"evaluator": "numeric_close", "metric": "pass_rate", "op": "<", "value": 0.9},
        ]},
    })  # fmt: skip


def outputs(path: Path, wrong: int) -> Path:
    """The target's answers; the first `wrong` of them off by one."""
    lines = [{"item_id": item["id"],
              "output": f"The answer is {2 * int(item['id'][1:]) + (1 if n < wrong else 0)}."
              if "expected" in item else "You are doing great."}
             for n, item in enumerate(ITEMS)]  # fmt: skip
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture
def golden(assay_env: str, tmp_path: Path, fake_llm: FakeLLM) -> Path:
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(i) + "\n" for i in ITEMS))
    done = assay("dataset", "import", "math", str(items), "--create", db_url=assay_env)
    assert done.returncode == 0, done.stderr
    job = tmp_path / "math-bot.yaml"
    job.write_text(config(fake_llm))
    fake_llm.script("judge", always(Reply(content=verdict(0.9, True, "agrees"))))
    return job


def test_the_gate_passes_a_good_target_and_fails_a_regression(
    golden: Path, assay_env: str, tmp_path: Path, fake_llm: FakeLLM, engine: sa.Engine
) -> None:
    planned = assay("check", "math", "--config", str(golden), "--outputs",
                    str(outputs(tmp_path / "good.jsonl", wrong=0)), "--estimate",
                    "--format", "json", db_url=assay_env)  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    [correctness] = plan["judges"]
    assert correctness["calls"] == 40 and plan["usd"] > 0 and plan["already_scored"] == 0
    assert fake_llm.requests_for("judge") == []  # an estimate calls nothing
    good = assay("check", "math", "--config", str(golden), "--outputs",
                 str(tmp_path / "good.jsonl"), db_url=assay_env)  # fmt: skip
    assert good.returncode == 0, good.stdout + good.stderr
    assert "gate passed" in good.stdout and "numeric_close" in good.stdout
    judged = len(fake_llm.requests_for("judge"))
    assert judged == 40  # every item with an expected answer (correctness needs one)

    again = assay("check", "math", "--config", str(golden), "--outputs",
                  str(tmp_path / "good.jsonl"), "--format", "json", db_url=assay_env)  # fmt: skip
    assert again.returncode == 0
    assert len(fake_llm.requests_for("judge")) == judged  # the same experiment: nothing re-judged
    replan = json.loads(assay("check", "math", "--config", str(golden), "--outputs",
                              str(tmp_path / "good.jsonl"), "--estimate", "--format", "json",
                              db_url=assay_env).stdout)  # fmt: skip
    assert replan["already_scored"] == 41 and replan["judges"][0]["calls"] == 0
    result = json.loads(again.stdout)
    numeric = next(e for e in result["evaluators"] if e["evaluator"] == "numeric_close")
    assert (numeric["ok"], numeric["skipped"]) == (40, 1)  # no expected answer: skipped
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT count(*), count(DISTINCT (log_id, evaluator)) FROM assay.scores "
            "WHERE deployment = :d"), {"d": "experiment-" + result["experiment_id"]}).one()  # fmt: skip
    assert rows[0] == rows[1] == 41 * 3  # one score per item and evaluator, rerun or not

    bad = assay("check", "math", "--config", str(golden), "--outputs",
                str(outputs(tmp_path / "bad.jsonl", wrong=12)), db_url=assay_env)  # fmt: skip
    assert bad.returncode == 3, bad.stdout + bad.stderr
    assert "FAIL" in bad.stdout and "gate FAILED" in bad.stdout

    history = json.loads(assay("experiments", "--format", "json", db_url=assay_env).stdout)
    assert [e["gate_passed"] for e in history] == [False, True]
    assert history[0]["dataset_digest"] == history[1]["dataset_digest"]


def test_free_tier_calls_no_judge_and_bad_outputs_are_usage_errors(
    golden: Path, assay_env: str, tmp_path: Path, fake_llm: FakeLLM
) -> None:
    free = assay("check", "math", "--config", str(golden), "--tier", "free", "--outputs",
                 str(outputs(tmp_path / "o.jsonl", wrong=0)), "--format", "json",
                 db_url=assay_env)  # fmt: skip
    assert free.returncode == 0, free.stderr
    assert fake_llm.requests_for("judge") == []
    gate = json.loads(free.stdout)["gate"]
    assert [g["state"] for g in gate] == ["passed"]

    partial = tmp_path / "partial.jsonl"
    partial.write_text('{"item_id": "q00", "output": "0"}\n{"item_id": "nope", "output": "1"}\n')
    mismatch = assay("check", "math", "--config", str(golden), "--outputs", str(partial),
                     db_url=assay_env)  # fmt: skip
    assert mismatch.returncode == 2
    message = " ".join(mismatch.stderr.split())
    assert "not in the dataset: nope" in message and "without an output" in message
    unknown = assay("check", "mathh", "--config", str(golden), "--outputs", str(partial),
                    db_url=assay_env)  # fmt: skip
    assert unknown.returncode == 2 and "did you mean 'math'" in unknown.stderr


BOT = """
import asyncio


async def answer(item):
    n = int(item["id"][1:]) if item["id"].startswith("q") else 0
    assert "expected" not in item  # the target never sees the answer
    if item["id"] == "q07":
        raise RuntimeError("the model endpoint said 503")
    if item["id"] == "q08":
        await asyncio.sleep(30)
    return {"output": f"The answer is {2 * n}.", "model": "bot-v2"}


def broken(item):
    raise ValueError("no API key")
"""


def test_a_python_target_is_called_per_item_and_its_failures_are_errors_not_scores(
    golden: Path, assay_env: str, tmp_path: Path, fake_llm: FakeLLM, engine: sa.Engine
) -> None:
    (tmp_path / "mathbot.py").write_text(BOT)
    done = assay("check", "math", "--config", str(golden), "--target", "mathbot:answer",
                 "--target-timeout", "1", "--format", "json", db_url=assay_env,
                 cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["target"].startswith("callable:mathbot:answer@")
    assert result["target_errors"] == {"q07": "RuntimeError: the model endpoint said 503",
                                       "q08": "timed out after 1 s"}  # fmt: skip
    with engine.connect() as conn:
        scored = conn.execute(sa.text("SELECT count(DISTINCT log_id) FROM assay.scores "
                                      "WHERE deployment = :d"),
                              {"d": "experiment-" + result["experiment_id"]}).scalar_one()  # fmt: skip
    assert scored == 39  # 41 items, two of them errors with no guessed score

    crashed = assay("check", "math", "--config", str(golden), "--target", "mathbot:broken",
                    db_url=assay_env, cwd=tmp_path)  # fmt: skip
    assert crashed.returncode == 1 and "failed on all 41 items" in " ".join(crashed.stderr.split())
    missing = assay("check", "math", "--config", str(golden), "--target", "mathbot:nope",
                    db_url=assay_env, cwd=tmp_path)  # fmt: skip
    assert missing.returncode == 2 and "no function 'nope'" in missing.stderr


def test_against_a_baseline_on_main_a_regression_fails_and_noise_does_not(
    golden: Path, assay_env: str, tmp_path: Path
) -> None:
    import xml.etree.ElementTree as ET

    main = {"GITHUB_REF_NAME": "main", "GITHUB_SHA": "a" * 40}
    base = assay("check", "math", "--config", str(golden), "--tier", "free", "--outputs",
                 str(outputs(tmp_path / "base.jsonl", wrong=0)), db_url=assay_env, env=main)  # fmt: skip
    assert base.returncode == 0, base.stderr
    branch = {"GITHUB_HEAD_REF": "feature", "GITHUB_SHA": "b" * 40}

    noise = assay("check", "math", "--config", str(golden), "--tier", "free", "--outputs",
                  str(outputs(tmp_path / "noise.jsonl", wrong=1)), "--baseline",
                  "latest-on-main", "--format", "json", db_url=assay_env, env=branch)  # fmt: skip
    assert noise.returncode == 0, noise.stdout + noise.stderr  # one item worse is not evidence
    [numeric] = [c for c in json.loads(noise.stdout)["comparisons"]
                 if c["evaluator"] == "numeric_close"]  # fmt: skip
    assert numeric["regressed"] == ["q00"] and numeric["p_value"] == 1.0

    # Seven items wrong: the absolute rule still holds (82% is not clearly under 80%), but on
    # the same items against main it is a clear drop, which the paired test sees.
    junit, summary = tmp_path / "check.xml", tmp_path / "summary.md"
    worse = assay("check", "math", "--config", str(golden), "--tier", "free", "--outputs",
                  str(outputs(tmp_path / "worse.jsonl", wrong=7)), "--baseline",
                  "latest-on-main", "--junit", str(junit), "--markdown", str(summary),
                  db_url=assay_env, env=branch)  # fmt: skip
    assert worse.returncode == 3, worse.stdout + worse.stderr
    assert "McNemar" in worse.stdout and "worse" in worse.stdout
    suite = ET.parse(junit).getroot()
    assert suite.tag == "testsuite" and suite.get("failures") == "1"
    [failed] = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failed.get("name") == "numeric_close vs baseline"
    assert "q00" in (failed.find("failure").text or "")  # type: ignore[union-attr]
    text = summary.read_text()
    assert "❌ gate failed" in text and "| numeric_close | 40 | 100.0% | 82.5% | -17.5 |" in text
    history = json.loads(assay("experiments", "--dataset", "math", "--format", "json",
                               db_url=assay_env).stdout)  # fmt: skip
    worse_id, _noise_id, base_id = (e["experiment_id"] for e in history)
    compared = assay("compare", base_id, worse_id, "--format", "json", db_url=assay_env)
    assert compared.returncode == 0, compared.stderr
    data = json.loads(compared.stdout)
    [numeric] = [e for e in data["evaluators"] if e["evaluator"] == "numeric_close"]
    assert len(numeric["regressed"]) == 7 and numeric["significant_drop"] is True
    assert data["outputs"]["q00"] == {"input": "What is 0 plus 0?", "expected": "0",
                                      "baseline": "The answer is 0.",
                                      "experiment": "The answer is 1."}  # fmt: skip
    shown = assay("compare", base_id, worse_id, db_url=assay_env, columns=100)
    assert "numeric_close regressed: q00" in shown.stdout and "McNemar" in shown.stdout
    unknown = assay("compare", base_id, "nope", db_url=assay_env)
    assert unknown.returncode == 2 and "no experiment 'nope'" in unknown.stderr
