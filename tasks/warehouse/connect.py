"""The job's warehouse: an engine for its source (from the environment variable or Secret block
the operator allowed) and the job fitted to the columns the source really has."""

import os
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import SecretStr

from tasks.config import EvalJob, SourceConfig
from tasks.config.job import check_url_env
from tasks.errors import ConfigError
from tasks.secrets import is_reference, resolve
from tasks.settings import get_settings
from tasks.store.db import engine_for, warehouse_url
from tasks.store.rows import Cursor
from tasks.warehouse.source import fetch_page, source_columns


def source_engine(source: SourceConfig) -> sa.Engine:
    if source.url_env is None:
        setting = "ASSAY_WAREHOUSE_URL" if get_settings().warehouse_url else "ASSAY_DATABASE_URL"
        return engine_for(warehouse_url(), setting)
    try:  # checked at load; again with the worker's own list, which a config cannot widen
        check_url_env(source.url_env)
    except ValueError as refused:
        raise ConfigError(f"source: {refused}") from None
    if is_reference(source.url_env):
        return engine_for(SecretStr(resolve(source.url_env)), "source.url_env")
    value = os.environ.get(source.url_env)
    if not value:
        raise ConfigError(f"source.url_env names {source.url_env}, which is not set")
    return engine_for(SecretStr(resolve(value)), source.url_env)


def fitted_job(job: EvalJob) -> EvalJob:
    """The job with its source fitted to the columns the source really has (see
    `SourceConfig.fitted`): read once per run, in a READ ONLY transaction."""
    with source_engine(job.source).connect() as conn:
        available = source_columns(conn, job.source)
    return job.model_copy(update={"source": job.source.fitted(available)})


def read_page(
    source: SourceConfig, after: Cursor | None, start: datetime, until: datetime
) -> list[dict[str, Any]]:
    """The keyset page after `after` (or from `start`) up to `until`, inclusive."""
    with source_engine(source).connect() as conn:
        return fetch_page(conn, source, after, start, until)
