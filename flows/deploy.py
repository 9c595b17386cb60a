"""`assay deploy`: the Prefect deployments, generated from the job files.

`deployments/jobs/NAME.yaml` is the job: what `assay run|estimate|backfill|digest NAME` run and
what the schedule runs. `deployments/deploy.yaml` only says *how* each job is deployed (schedule,
work pool, backfill defaults). `assay deploy` combines the two into a prefect.yaml (printable
with `--print`) and registers it with `prefect deploy`; every job file gets an hourly deployment
and a `NAME-backfill` deployment.

Edits made in the Prefect UI change a deployment's parameters on the server, not the files:
`assay deploy --check` lists, field by field, where they differ (exit 3), and `assay run NAME
--from-server` runs with the server's parameters.
"""

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evaluators.errors import describe_validation_error
from tasks.config import EvalJob, load_job
from tasks.errors import AssayError, ConfigError, did_you_mean
from tasks.redact import redact
from tasks.safe_yaml import load_yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent
JOBS_DIR = PROJECT_DIR / "deployments" / "jobs"
DEPLOY_FILE = PROJECT_DIR / "deployments" / "deploy.yaml"
EVALUATE_ENTRYPOINT = "flows/evaluate.py:evaluate_recent"
BACKFILL_ENTRYPOINT = "flows/backfill.py:backfill"
CHECK_ENTRYPOINT = "flows/check.py:evaluate_dataset"


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cron: str = Field(default="7 * * * *", description="When the hourly run starts.")
    timezone: str = "UTC"
    active: bool = True


class BackfillDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chunk: str = "1d"
    max_parallel: int = Field(default=2, ge=1, le=64)


class HowToDeploy(BaseModel):
    """How one job is deployed; every field falls back to `defaults`."""

    model_config = ConfigDict(extra="forbid")

    work_pool: str | None = None
    schedule: Schedule | None = None
    backfill: BackfillDefaults | None = None
    description: str | None = None
    tags: list[str] = Field(default_factory=list)


class CheckDeployment(BaseModel):
    """A scheduled check of a golden dataset (e.g. nightly against the production prompt): a
    deployment of `evaluate_dataset` whose run fails when the gate does."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(description="The dataset to check on.")
    config: str = Field(description="Job config (evaluators, gate), relative to the project.")
    target: str = Field(description="module:function or prompt:FILE.yaml (project-relative).")
    tier: Literal["free", "all"] = "all"
    repeat: int = Field(default=1, ge=1, le=100)
    baseline: str | None = Field(default=None, description="An experiment id or latest-on-main.")
    schedule: Schedule | None = None
    work_pool: str | None = None
    description: str | None = None
    tags: list[str] = Field(default_factory=list)


class DeployFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    defaults: HowToDeploy = Field(default_factory=HowToDeploy)
    deployments: dict[str, HowToDeploy] = Field(default_factory=dict)
    checks: dict[str, CheckDeployment] = Field(default_factory=dict)


def read_deploy_file(path: Path = DEPLOY_FILE) -> DeployFile:
    if not path.exists():
        return DeployFile()
    data = load_yaml(path.read_text(), str(path)) or {}
    try:
        return DeployFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path} is invalid: {describe_validation_error(exc)}") from None


def read_jobs(jobs_dir: Path = JOBS_DIR) -> list[EvalJob]:
    jobs = []
    for path in sorted(jobs_dir.glob("*.yaml")):
        job = load_job(path)
        if job.deployment != path.stem:
            raise ConfigError(f"{path} configures {job.deployment!r}; name the file after it")
        jobs.append(job)
    return jobs


def prefect_spec(jobs: list[EvalJob], how: DeployFile) -> dict[str, Any]:
    """The prefect.yaml for these jobs: per job, an hourly and a backfill deployment."""
    unknown = sorted(set(how.deployments) - {job.deployment for job in jobs})
    if unknown:
        raise ConfigError(
            f"deployments/deploy.yaml names {', '.join(unknown)}, which have no job file in "
            "deployments/jobs/"
        )
    pull = [{"prefect.deployments.steps.set_working_directory": {
        "directory": "{{ $ASSAY_PROJECT_DIR }}"}}]  # fmt: skip
    deployments: list[dict[str, Any]] = []
    for job in jobs:
        mine = how.deployments.get(job.deployment, HowToDeploy())
        pool = mine.work_pool or how.defaults.work_pool or "assay-process"
        schedule = mine.schedule or how.defaults.schedule or Schedule()
        backfill = mine.backfill or how.defaults.backfill or BackfillDefaults()
        tags = ["assay", *how.defaults.tags, *mine.tags, job.deployment]
        params = job.model_dump(mode="json", exclude_defaults=True)
        work_pool = {"name": pool, "work_queue_name": "default"}
        deployments.append(
            {
                "name": job.deployment,
                "description": mine.description or f"Hourly evaluation of {job.deployment}.",
                "entrypoint": EVALUATE_ENTRYPOINT,
                "tags": [*tags, "hourly"],
                "schedules": [schedule.model_dump()],
                "concurrency_limit": 1,
                "work_pool": work_pool,
                "pull": pull,
                "parameters": {"job": params, "kind": "scheduled"},
            }
        )
        deployments.append(
            {
                "name": f"{job.deployment}-backfill",
                "description": f"Evaluate a past range of {job.deployment}'s logs (start, end), "
                "optionally with only some evaluators and a budget of its own, in chunks.",
                "entrypoint": BACKFILL_ENTRYPOINT,
                "tags": [*tags, "backfill"],
                "work_pool": work_pool,
                "pull": pull,
                "parameters": {"job": params, **backfill.model_dump()},
            }
        )
    deployments += [check_deployment(name, check, how, pull) for name, check in how.checks.items()]
    return {"name": "assay", "prefect-version": "3.8.8", "deployments": deployments}


def check_deployment(
    name: str, check: CheckDeployment, how: DeployFile, pull: list[Any]
) -> dict[str, Any]:
    job = load_job(PROJECT_DIR / check.config)
    target = (
        {"target_prompt": check.target}
        if check.target.startswith("prompt:")
        else {"target_callable": check.target}
    )
    schedule = check.schedule or how.defaults.schedule or Schedule()
    return {
        "name": name,
        "description": check.description
        or f"Check {check.target} on the dataset {check.dataset}; the run fails when the gate "
        "does.",
        "entrypoint": CHECK_ENTRYPOINT,
        "tags": ["assay", *how.defaults.tags, *check.tags, "check", check.dataset],
        "schedules": [schedule.model_dump()],
        "concurrency_limit": 1,
        "work_pool": {
            "name": check.work_pool or how.defaults.work_pool or "assay-process",
            "work_queue_name": "default",
        },
        "pull": pull,
        "parameters": {
            "request": {
                "job": job.model_dump(mode="json", exclude_defaults=True),
                "dataset": check.dataset,
                "tier": check.tier,
                "name": f"{name} (scheduled)",
                "repeats": check.repeat,
                "baseline": check.baseline,
                "fail_on_gate": True,
                **target,
            }
        },
    }


def generated_prefect_yaml(jobs_dir: Path = JOBS_DIR, deploy_file: Path = DEPLOY_FILE) -> str:
    spec = prefect_spec(read_jobs(jobs_dir), read_deploy_file(deploy_file))
    header = (
        "# Generated by `assay deploy` from deployments/jobs/*.yaml and deployments/deploy.yaml;\n"
        "# edit those, not this.\n"
    )
    return header + yaml.dump(spec, Dumper=_PlainDumper, sort_keys=False)


class _PlainDumper(yaml.SafeDumper):
    """Repeated values written out in full, not as anchors: the file is read by people."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


async def ensure_work_pools(pools: set[str]) -> None:
    """Create missing process pools; a pool that exists keeps its type and settings."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        for name in sorted(pools):
            try:
                await client.read_work_pool(name)
            except ObjectNotFound:
                await client.create_work_pool(WorkPoolCreate(name=name, type="process"))


class SourceCheck(BaseModel):
    """Whether the jobs about to be deployed can read their source tables from here."""

    missing: list[str] = Field(default_factory=list)  # refused: the table is not there
    unchecked: list[str] = Field(default_factory=list)  # said: no warehouse here, unreachable


def check_sources(jobs: list[EvalJob]) -> SourceCheck:
    """A job whose source table does not exist is refused at deploy (its hourly runs would fail
    on every run); a warehouse this machine cannot reach, or none configured here (a worker
    may have the credentials a laptop does not), is said and not held against the job. No
    embedded Postgres is started to look."""
    from tasks.settings import get_settings
    from tasks.warehouse.connect import source_engine
    from tasks.warehouse.source import missing_table, source_columns

    settings = get_settings()
    found = SourceCheck()
    for job in jobs:
        source = job.source
        if source.table is None:  # a `query:` is checked by `assay doctor` and the first run
            continue
        if source.url_env is None and settings.warehouse_url is None and not settings.has_database:
            found.unchecked.append(f"{job.deployment}: no warehouse URL set here")
            continue
        try:
            with source_engine(source).connect() as conn:
                columns = source_columns(conn, source)
                conn.rollback()
        except Exception as exc:  # unreachable from here: the worker may reach it
            found.unchecked.append(f"{job.deployment}: {redact(str(exc).splitlines()[0])}")
            continue
        if absent := missing_table(job.deployment, source, columns):
            what, fix = absent
            found.missing.append(f"{job.deployment}: {what}; {fix}")
    return found


def only_these(spec: dict[str, Any], only: list[str]) -> dict[str, Any]:
    """The spec with only the deployments of the named jobs (each job's hourly and backfill
    deployment) and checks; an unknown name is a ConfigError with the names there are."""
    deployments = list(spec.get("deployments") or [])
    known = {d["name"].removesuffix("-backfill") for d in deployments}
    for name in only:
        if name not in known:
            raise ConfigError(
                f"no job or check named {name!r} to deploy{did_you_mean(name, known)}"
            )
    wanted = set(only)
    kept = [d for d in deployments if d["name"].removesuffix("-backfill") in wanted]
    return {**spec, "deployments": kept}


def deploy_all(prefect_file: Path | None = None, only: list[str] | None = None) -> list[str]:
    """Register the deployments (generated from the job files, or an explicit prefect.yaml;
    with `only`, those of the named jobs and checks) with `prefect deploy --all` from the
    project root; workers run flows from ASSAY_PROJECT_DIR (the pull step)."""
    with tempfile.TemporaryDirectory() as tmp:
        if prefect_file is None:
            prefect_file = Path(tmp) / "prefect.yaml"
            prefect_file.write_text(generated_prefect_yaml())
        elif not prefect_file.exists():
            raise ConfigError(f"no prefect.yaml at {prefect_file}")
        spec = yaml.safe_load(prefect_file.read_text())
        if only:
            spec = only_these(spec, only)
            prefect_file = Path(tmp) / "prefect-only.yaml"
            prefect_file.write_text(yaml.dump(spec, Dumper=_PlainDumper, sort_keys=False))
        deployments = list(spec.get("deployments") or [])
        pools = {d["work_pool"]["name"] for d in deployments if d.get("work_pool")}
        asyncio.run(ensure_work_pools(pools))
        env = {**os.environ, "ASSAY_PROJECT_DIR": str(PROJECT_DIR)}
        command = [
            sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all",
            "--prefect-file", str(prefect_file.resolve()),
        ]  # fmt: skip
        done = subprocess.run(command, cwd=PROJECT_DIR, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise AssayError(f"prefect deploy failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    names = [d["name"] for d in deployments]
    asyncio.run(
        shape_backfill_forms([j for j in read_jobs() if f"{j.deployment}-backfill" in names])
    )
    return names


async def shape_backfill_forms(jobs: list[EvalJob]) -> None:
    """Reorder each backfill deployment's custom-run form (see `form_schema`)."""
    from prefect import get_client
    from prefect.client.schemas.actions import DeploymentUpdate

    from flows.backfill import form_schema

    async with get_client() as client:
        for job in jobs:
            found = await client.read_deployment_by_name(f"backfill/{job.deployment}-backfill")
            schema = form_schema(found.parameter_openapi_schema or {}, job)
            await client.update_deployment(
                found.id, DeploymentUpdate(parameter_openapi_schema=schema)
            )


# -- drift between the files and the server ---------------------------------------------------
class Drift(BaseModel):
    deployment: str
    field: str
    in_files: Any = None
    on_server: Any = None


class CheckResult(BaseModel):
    drift: list[Drift] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)  # missing or invalid deployments


def differences(path: str, files: Any, server: Any) -> list[tuple[str, Any, Any]]:
    """Field-by-field differences between two JSON values (dotted paths, list indexes)."""
    if isinstance(files, dict) and isinstance(server, dict):
        found = []
        for key in sorted(set(files) | set(server), key=str):
            found += differences(f"{path}.{key}" if path else str(key), files.get(key),
                                 server.get(key))  # fmt: skip
        return found
    if isinstance(files, list) and isinstance(server, list) and len(files) == len(server):
        found = []
        for i, (a, b) in enumerate(zip(files, server, strict=True)):
            found += differences(f"{path}[{i}]", a, b)
        return found
    return [] if files == server else [(path, files, server)]


async def server_jobs(names: list[str]) -> dict[str, dict[str, Any] | None]:
    """Each hourly deployment's `job` parameter as the server holds it (None: not deployed)."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    found: dict[str, dict[str, Any] | None] = {}
    async with get_client() as client:
        for name in names:
            try:
                deployment = await client.read_deployment_by_name(f"evaluate_recent/{name}")
            except ObjectNotFound:
                found[name] = None
                continue
            found[name] = dict(deployment.parameters.get("job") or {})
    return found


def check_drift(jobs: list[EvalJob]) -> CheckResult:
    result = CheckResult()
    on_server = asyncio.run(server_jobs([job.deployment for job in jobs]))
    for job in jobs:
        params = on_server[job.deployment]
        if params is None:
            result.problems.append(f"{job.deployment}: job file without a deployment (deploy it)")
            continue
        try:
            server_job = EvalJob.model_validate(params)
        except ValidationError as exc:
            result.problems.append(
                f"{job.deployment}: the server's parameters no longer validate: "
                f"{describe_validation_error(exc)}"
            )
            continue
        for field, in_files, on in differences(
            "", job.model_dump(mode="json"), server_job.model_dump(mode="json")
        ):
            result.drift.append(
                Drift(deployment=job.deployment, field=field, in_files=in_files, on_server=on)
            )
    return result


def job_from_server(name: str) -> EvalJob:
    params = asyncio.run(server_jobs([name]))[name]
    if params is None:
        raise ConfigError(f"no deployment evaluate_recent/{name} on the Prefect server")
    try:
        return EvalJob.model_validate(params)
    except ValidationError as exc:
        raise ConfigError(
            f"the server's parameters of {name} are invalid: {describe_validation_error(exc)}"
        ) from None
