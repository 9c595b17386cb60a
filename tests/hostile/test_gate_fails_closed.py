"""A CI gate never passes on nothing: a judge that is down, or a dataset too small for its rules,
leaves the rule *not measured*, and `assay check` exits 1 saying which rule and why (JUnit: an
error; markdown: "not measured"); `--allow-unmeasured` lets it through only when asked."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.cli import assay
from tests.fakes.llm import FakeLLM, Reply, always, verdict

pytestmark = pytest.mark.slow
ITEMS = [{"id": f"q{i:02d}", "input": f"Question {i}?", "expected": "yes"} for i in range(30)]


def job(fake: FakeLLM, min_samples: int = 20) -> str:
    return json.dumps({
        "deployment": "gated-bot",
        "evaluators": [{"name": "correctness", "model": "openai/judge", "api_base": fake.api_base}],
        "budget": {"prices": {"openai/judge": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 2}}},
        "limits": {"default": {"retries": 0, "concurrency": 4}},
        "alerts": {"min_samples": min_samples, "rules": [
            {"evaluator": "correctness", "metric": "pass_rate", "op": "<", "value": 0.8}]},
    })  # fmt: skip


@pytest.fixture
def dataset(assay_env: str, tmp_path: Path) -> Path:
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(i) + "\n" for i in ITEMS))
    assert (
        assay("dataset", "import", "gated", str(items), "--create", db_url=assay_env).returncode
        == 0
    )
    answers = tmp_path / "answers.jsonl"
    answers.write_text(
        "".join(json.dumps({"item_id": i["id"], "output": "yes"}) + "\n" for i in ITEMS)
    )
    return answers


def check(config: Path, answers: Path, db: str, *extra: str) -> "object":
    return assay("check", "gated", "--config", str(config), "--outputs", str(answers), *extra,
                 db_url=db)  # fmt: skip


@pytest.mark.parametrize("broken", [Reply(status=500, body="upstream down"),
                                    Reply(content="I think it is fine, probably")])  # fmt: skip
def test_a_gate_whose_judge_is_down_is_not_measured_and_exits_1(
    dataset: Path, assay_env: str, tmp_path: Path, fake_llm: FakeLLM, broken: Reply
) -> None:
    config = tmp_path / "job.yaml"
    config.write_text(job(fake_llm))
    fake_llm.script("judge", always(broken))
    junit, markdown = tmp_path / "gate.xml", tmp_path / "gate.md"

    done = check(config, dataset, assay_env, "--junit", str(junit), "--markdown", str(markdown))

    assert done.returncode == 1, done.stdout + done.stderr  # not 0 (passed), not 3 (failed)
    assert "gate passed" not in done.stdout
    assert "not measured" in done.stderr and "correctness pass_rate" in done.stderr
    assert "max_judge_error_rate" in done.stderr or "min_samples" in done.stderr
    suite = ET.parse(junit).getroot()
    assert suite.get("errors") == "1" and suite.find("testcase/error") is not None
    assert "not measured" in markdown.read_text() and "gate passed" not in markdown.read_text()

    allowed = check(config, dataset, assay_env, "--allow-unmeasured")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr  # today's rule, when asked


def test_a_dataset_too_small_for_any_rule_is_said_and_does_not_pass(
    dataset: Path, assay_env: str, tmp_path: Path, fake_llm: FakeLLM
) -> None:
    config = tmp_path / "job.yaml"
    config.write_text(job(fake_llm, min_samples=100))  # 30 items can never decide
    fake_llm.script("judge", always(Reply(content=verdict(0.9, True))))

    done = check(config, dataset, assay_env)

    assert done.returncode == 1, done.stdout + done.stderr
    assert "no gate rule could decide on 30 item(s)" in done.stdout
    assert "the rule needs 100 (min_samples)" in done.stderr

    config.write_text(job(fake_llm, min_samples=20))  # enough items: the gate decides
    assert check(config, dataset, assay_env).returncode == 0
