"""`evaluate_dataset` as a deployed flow runs it (Prefect's harness): the experiment's table and
its CI summary become artifacts in the Prefect UI, and its scores stay out of production's."""

import pytest
import sqlalchemy as sa

from flows.check import evaluate_dataset
from tasks.config import parse_job
from tasks.datasets.items import DatasetItem
from tasks.datasets.store import add_items, create_dataset
from tasks.experiments.request import CheckRequest
from tasks.experiments.targets import TargetOutput

pytestmark = pytest.mark.usefixtures("prefect_api")


async def test_the_flow_publishes_the_experiment(engine: sa.Engine) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    create_dataset(engine, "capitals")
    add_items(engine, "capitals", [
        DatasetItem(id=f"c{i}", input=f"Capital number {i}?", expected="Paris") for i in range(5)
    ])  # fmt: skip
    job = parse_job({"deployment": "geo-bot", "evaluators": [{"name": "exact_match"}],
                     "gate": [{"evaluator": "exact_match", "metric": "pass_rate", "op": "<",
                               "value": 0.5, "mode": "raw"}],
                     "alerts": {"min_samples": 1}})  # fmt: skip
    outputs = [TargetOutput(item_id=f"c{i}", output="Paris" if i else "Lyon") for i in range(5)]
    result = await evaluate_dataset(
        CheckRequest(
            job=job, dataset="capitals", outputs=outputs, target="outputs:test", tier="all"
        )
    )
    assert result.passed and result.evaluators[0].passed == 4
    async with get_client() as client:
        found = await client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[f"experiment-{result.experiment_id}",
                                        f"experiment-{result.experiment_id}-summary"])))  # fmt: skip
    assert {a.key for a in found} == {f"experiment-{result.experiment_id}",
                                      f"experiment-{result.experiment_id}-summary"}  # fmt: skip
    summary = next(a for a in found if a.key.endswith("-summary"))
    assert "gate passed" in str(summary.data)
    with engine.connect() as conn:
        production = conn.execute(sa.text(
            "SELECT count(*) FROM assay.scores WHERE deployment = 'geo-bot'")).scalar_one()  # fmt: skip
    assert production == 0  # an experiment's scores are not the deployment's
