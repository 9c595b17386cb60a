"""Secrets the Prefect way: `secret://BLOCK` instead of a value.

Wherever Assay takes a secret (ASSAY_DATABASE_URL, ASSAY_WAREHOUSE_URL, ASSAY_SLACK_BOT_TOKEN,
ASSAY_SLACK_WEBHOOK_URL, a job's `source.url_env`, a judge's `api_key_env`), `secret://BLOCK`
names a Prefect `Secret` block instead. It is resolved on the worker when the run needs it, so
deployment parameters and settings only ever hold the reference; the value joins the redaction
list as soon as it is read, and is never logged or stored.
"""

import re
from functools import cache
from typing import Any

from tasks.errors import ConfigError
from tasks.redact import remember_secret

SCHEME = "secret://"
_BLOCK_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def is_reference(value: str | None) -> bool:
    return bool(value) and str(value).startswith(SCHEME)


def block_name(reference: str) -> str:
    name = reference.removeprefix(SCHEME)
    if not _BLOCK_NAME.match(name):
        raise ConfigError(
            f"{reference!r} is not a Secret block reference: use secret://NAME with a block "
            "name of lowercase letters, digits and dashes"
        )
    return name


@cache
def _load(name: str) -> str:
    from prefect.blocks.system import Secret

    try:
        block: Any = Secret.load(name, _sync=True)  # type: ignore[call-arg]
    except ValueError:
        raise ConfigError(
            f"no Prefect Secret block named {name!r}: create it in the Prefect UI (Blocks) or "
            f"with Secret(value=...).save({name!r})"
        ) from None
    value = block.get()
    if not isinstance(value, str) or not value:
        raise ConfigError(f"the Secret block {name!r} must hold a non-empty string")
    return value


def resolve(value: str) -> str:
    """`value` itself, or the content of the Secret block it references."""
    if not is_reference(value):
        return value
    secret = _load(block_name(value))
    remember_secret(secret)
    return secret
