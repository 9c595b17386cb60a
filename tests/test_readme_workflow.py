"""The GitHub Actions workflow the README documents: valid YAML, a Postgres service, and only
`assay` commands and options the installed CLI really has."""

import re
import shlex
from pathlib import Path

import yaml

from tests.cli import assay

README = Path(__file__).resolve().parents[1] / "README.md"


def workflow() -> dict:  # type: ignore[type-arg]
    text = README.read_text()
    section = text[text.index("## Datasets and checks in CI") :]
    block = re.search(r"```yaml\n(# \.github/workflows/.*?)```", section, re.S)
    assert block, "the README's CI section has no workflow"
    return yaml.safe_load(block.group(1))  # type: ignore[no-any-return]


def test_the_documented_workflow_runs_real_commands() -> None:
    flow = workflow()
    job = flow["jobs"]["check"]
    assert job["services"]["postgres"]["image"].startswith("postgres")
    assert "ASSAY_DATABASE_URL" in job["env"]
    commands = [" ".join(str(s["run"]).split()) for s in job["steps"] if "run" in s]
    assays = [shlex.split(c) for c in commands if c.startswith("assay ")]
    assert [a[1] for a in assays] == ["migrate", "dataset", "check"]
    check = next(a for a in assays if a[1] == "check")
    assert {"--junit", "--markdown", "--baseline", "--outputs", "--config"} <= set(check)
    assert any("GITHUB_STEP_SUMMARY" in c and "assay.md" in c for c in commands)
    for args in assays:  # every option the workflow uses exists in the installed CLI
        command = args[1:3] if args[1] == "dataset" else args[1:2]
        helped = assay(*command, "--help", db_url="postgresql://unused@127.0.0.1/x",
                       columns=200)  # fmt: skip
        assert helped.returncode == 0, helped.stderr
        for option in (a for a in args if a.startswith("--")):
            assert option in helped.stdout, f"assay {' '.join(command)} has no {option}"
