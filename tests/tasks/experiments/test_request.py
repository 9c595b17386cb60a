"""A check's request is validated as a whole before anything runs (the CLI, the demo and a
deployed check's UI form all build one)."""

import pytest
from pydantic import ValidationError

from tasks.config import parse_job
from tasks.experiments.request import CheckRequest
from tasks.experiments.targets import TargetOutput

JOB = parse_job({"deployment": "geo-bot", "evaluators": [{"name": "exact_match"}]})


def test_a_request_names_every_option_and_keeps_the_defaults_of_assay_check() -> None:
    request = CheckRequest(job=JOB, dataset="capitals", target_prompt="prompt:p.yaml")
    assert (request.tier, request.repeats, request.cache, request.fail_on_gate) == (
        "all", 1, True, False,
    )  # fmt: skip
    assert (request.target_timeout_s, request.target_concurrency) == (60.0, 8)
    again = CheckRequest.model_validate(request.model_dump(mode="json"))
    assert again == request  # what a deployment stores is what the flow gets back


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"target_prompt": "prompt:p.yaml", "target_callable": "m:f"}, "one target"),
        ({"outputs": [], "target_callable": "m:f"}, "one target"),
        ({"outputs": [TargetOutput(item_id="a", output="x")], "repeats": 3}, "repeats"),
        ({"target_concurrency": 0}, "target_concurrency"),
        ({"target_timeout_s": 0}, "target_timeout_s"),
        ({"target_promt": "prompt:p.yaml"}, "target_promt"),  # a typo is not ignored
        ({"dataset": ""}, "dataset"),
    ],
)
def test_a_request_that_cannot_run_is_refused_before_anything_runs(
    fields: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        CheckRequest.model_validate({"job": JOB, "dataset": "capitals", **fields})
