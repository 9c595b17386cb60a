"""Which API keys a job config may send, and where.

A job config is editable by anyone with Prefect UI access, so it must not be able to aim a secret
of the worker at a host of its choosing. Two rules:

- `api_key_env` may name a provider's standard key variable or a variable under the operator's
  prefix (`ASSAY_JUDGE_KEY_PREFIX`, default `ASSAY_JUDGE_KEY_`), never anything else (Assay's own
  database URLs and Slack token least of all). Refused when the config is loaded.
- `api_key_env: secret://BLOCK` names a Prefect Secret block, and only one the operator listed
  (`ASSAY_JUDGE_SECRET_BLOCKS`, comma separated names, `prefix-*` for a prefix; default: none),
  so a config cannot send the block that holds the database URL or the Slack token.
- a custom `api_base` whose host the operator has not trusted (`ASSAY_TRUSTED_API_HOSTS`, comma
  separated hosts; unset, loopback only, so local servers work; `loopback` in the list keeps
  them) receives no key at all: a config that names a key for such a host is refused at load,
  and the provider's default key is never sent there.

`check_endpoint` is the one function that decides, for judges, unit judges and prompt targets.
"""

import ipaddress
import os
from collections.abc import Mapping
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator

from evaluators.errors import KeyNotAllowed

DEFAULT_KEY_PREFIX = "ASSAY_JUDGE_KEY_"
#: The variables providers document for their keys (litellm reads the same ones).
PROVIDER_KEY_VARS = frozenset(
    {
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "AZURE_API_KEY",
        "AZURE_OPENAI_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "VERTEXAI_API_KEY",
        "MISTRAL_API_KEY",
        "CODESTRAL_API_KEY",
        "COHERE_API_KEY",
        "CO_API_KEY",
        "GROQ_API_KEY",
        "TOGETHERAI_API_KEY",
        "TOGETHER_API_KEY",
        "FIREWORKS_API_KEY",
        "FIREWORKS_AI_API_KEY",
        "DEEPSEEK_API_KEY",
        "XAI_API_KEY",
        "OPENROUTER_API_KEY",
        "PERPLEXITYAI_API_KEY",
        "DEEPINFRA_API_KEY",
        "CEREBRAS_API_KEY",
        "HUGGINGFACE_API_KEY",
        "HF_TOKEN",
        "REPLICATE_API_KEY",
        "NVIDIA_NIM_API_KEY",
        "DATABRICKS_API_KEY",
        "AI21_API_KEY",
        "HOSTED_VLLM_API_KEY",
        "LITELLM_API_KEY",
    }
)


def key_prefix(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("ASSAY_JUDGE_KEY_PREFIX") or DEFAULT_KEY_PREFIX


#: `api_key_env: secret://BLOCK` names a Prefect Secret block instead of a variable; the
#: pipeline resolves it on the worker (evaluators never import Prefect).
SECRET_SCHEME = "secret://"


def secret_blocks(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The Secret blocks the operator lets a config name (`name`, or `prefix-*`)."""
    env = os.environ if env is None else env
    listed = env.get("ASSAY_JUDGE_SECRET_BLOCKS") or ""
    return tuple(entry.strip() for entry in listed.split(",") if entry.strip())


def block_allowed(block: str, env: Mapping[str, str] | None = None) -> bool:
    for entry in secret_blocks(env):
        if entry.endswith("*"):
            if block.startswith(entry[:-1]) and len(block) > len(entry) - 1:
                return True
        elif block == entry:
            return True
    return False


def check_key_env(name: str, env: Mapping[str, str] | None = None) -> str:
    """`name` if a config may send that variable's value to a judge; KeyNotAllowed otherwise."""
    if name.startswith(SECRET_SCHEME):
        block = name.removeprefix(SECRET_SCHEME)
        if block_allowed(block, env):
            return name
        raise KeyNotAllowed(
            f"api_key_env {name!r} names a Secret block the operator has not listed for judges: "
            "add it to ASSAY_JUDGE_SECRET_BLOCKS (names, or prefix-*) to allow it"
        )
    prefix = key_prefix(env)
    if name in PROVIDER_KEY_VARS or (name.startswith(prefix) and len(name) > len(prefix)):
        return name
    raise KeyNotAllowed(
        f"api_key_env {name!r} is not a judge key: name a provider's key variable (e.g. "
        f"OPENAI_API_KEY) or one starting with {prefix} (set ASSAY_JUDGE_KEY_PREFIX to change it)"
    )


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback address (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def trusted_hosts(env: Mapping[str, str] | None = None) -> frozenset[str]:
    env = os.environ if env is None else env
    listed = env.get("ASSAY_TRUSTED_API_HOSTS")
    if listed is None:
        return frozenset({"loopback"})
    return frozenset(h.strip().lower() for h in listed.split(",") if h.strip())


def base_is_trusted(api_base: str, env: Mapping[str, str] | None = None) -> bool:
    """Whether the operator trusts `api_base`'s host with the provider's default key."""
    host = (urlsplit(api_base).hostname or "").lower()
    trusted = trusted_hosts(env)
    return bool(host) and (host in trusted or ("loopback" in trusted and is_loopback(host)))


def check_endpoint(
    api_base: str | None, api_key_env: str | None, env: Mapping[str, str] | None = None
) -> None:
    """The one rule for a judge, unit judge or prompt target: the key it names is allowed, and
    a named key goes only to a host the operator trusts. KeyNotAllowed otherwise."""
    if api_key_env is None:
        return
    check_key_env(api_key_env, env)
    if api_base is not None and not base_is_trusted(api_base, env):
        host = urlsplit(api_base).hostname or api_base
        raise KeyNotAllowed(
            f"api_key_env {api_key_env!r} would be sent to {host!r}, a host the operator has not "
            "trusted: add it to ASSAY_TRUSTED_API_HOSTS to allow it"
        )


#: An `api_key_env` field: checked when the config is loaded.
KeyEnvName = Annotated[str, AfterValidator(check_key_env)]
