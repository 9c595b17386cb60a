"""Process settings from the environment (prefix ASSAY_). Secrets stay SecretStr end to end."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class AssaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASSAY_", extra="ignore")

    database_url: SecretStr | None = Field(
        default=None,
        description="Postgres for scores and state. Unset: an embedded Postgres under home.",
    )
    warehouse_url: SecretStr | None = Field(
        default=None, description="Where the logs live. Defaults to the database URL."
    )
    home: Path = Field(default=Path(".assay"), description="Local state (embedded Postgres).")
    limit_namespace: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9_.-]{0,40}$",
        description="Prefix of Assay's global concurrency limits on the Prefect server, for "
        "installs that share one server (staging beside production) and must not share their "
        "judges' slots.",
    )
    slack_bot_token: SecretStr | None = None
    slack_channel: str | None = None
    slack_webhook_url: SecretStr | None = None
    slack_base_url: str = "https://slack.com/api/"

    @property
    def has_database(self) -> bool:
        """ASSAY_DATABASE_URL names a database (unset or empty: the embedded Postgres)."""
        return bool(self.database_url and self.database_url.get_secret_value())


@lru_cache(maxsize=1)
def get_settings() -> AssaySettings:
    return AssaySettings()
