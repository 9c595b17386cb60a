"""One judge call through litellm, as a `Completion` or a `CallFailed` that says whether to retry.

Two paths, both litellm's provider layer:
- OpenAI-compatible endpoints (`openai/`, `hosted_vllm/`) use litellm's provider config to build
  the request and parse the response, and send it on one shared aiohttp session. This skips
  `acompletion`'s per-call wrapper, logging object and thread hop (~5-9 ms of CPU per call here),
  which is what caps a judge far below its provider's rate limit.
- Every other provider (anthropic, gemini, bedrock, azure, ollama, the offline `local/` judge, ...)
  goes through `litellm.acompletion`, so any model string litellm knows works unchanged.
Retries, limits and fallbacks live in the client, not here: each transport makes exactly one try.
"""

import time
from typing import Any

import aiohttp
import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from evaluators.errors import CallFailed
from evaluators.judges.quiet_litellm import litellm_module

#: Providers whose wire format is OpenAI's chat completions, served on the fast path.
FAST_PROVIDERS = frozenset({"openai", "hosted_vllm"})
#: The longest judge reply read (ASSAY_JUDGE_MAX_RESPONSE_BYTES): a verdict is a few hundred
#: bytes, and a runaway or hostile server must not fill the worker's memory.
DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024
_CHUNK = 64 * 1024
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})


class JudgeTarget(BaseModel):
    """Where one judge model is reached: a litellm model string plus optional endpoint and key."""

    model_config = ConfigDict(frozen=True)

    model: str
    api_base: str | None = None
    api_key: SecretStr | None = None
    timeout_s: float = 60.0
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES


class Completion(BaseModel):
    text: str | None
    model: str
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: int
    #: What this call cost as charged to the ledger, when the runtime decided it (missing or
    #: implausible usage: the reserved worst case), so the score records the same amount.
    charged_usd: float | None = None
    cost_estimated: bool = False


def parse_retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare for APIs, and backoff still applies


def split_model(model: str, api_base: str | None = None) -> tuple[str, str]:
    """(provider, provider's model name) as litellm resolves the model string."""
    litellm = litellm_module()

    name, provider, _key, _base = litellm.get_llm_provider(model=model, api_base=api_base)
    return provider, name


class _NoCallLogging:
    """litellm's provider configs report to a logging object; the fast path keeps none."""

    def post_call(self, *args: Any, **kwargs: Any) -> None:
        return None


class FastTransport:
    """OpenAI-compatible chat completions over a shared aiohttp session, via litellm's config."""

    def __init__(self, target: JudgeTarget, session: aiohttp.ClientSession) -> None:
        from litellm import LlmProviders
        from litellm.utils import ProviderConfigManager

        self.target = target
        self.session = session
        self.provider, self.name = split_model(target.model, target.api_base)
        config = ProviderConfigManager.get_provider_chat_config(
            model=self.name, provider=LlmProviders(self.provider)
        )
        if config is None:
            raise ValueError(f"litellm has no chat config for {target.model!r}")
        self.config = config
        self.api_key = target.api_key.get_secret_value() if target.api_key else None
        self.url = config.get_complete_url(
            api_base=target.api_base,
            api_key=self.api_key,
            model=self.name,
            optional_params={},
            litellm_params={},
        )
        self.timeout = aiohttp.ClientTimeout(total=target.timeout_s)

    async def complete(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> Completion:
        from litellm import ModelResponse

        optional = self.config.map_openai_params(
            non_default_params=dict(params), optional_params={}, model=self.name, drop_params=True
        )
        headers = self.config.validate_environment(
            headers={},
            model=self.name,
            messages=messages,  # type: ignore[arg-type]
            optional_params=optional,
            litellm_params={},
            api_key=self.api_key,
            api_base=self.target.api_base,
        )
        body = self.config.transform_request(
            model=self.name,
            messages=messages,  # type: ignore[arg-type]
            optional_params=optional,
            litellm_params={},
            headers=headers,
        )
        started = time.perf_counter()
        try:
            async with self.session.post(
                self.url, json=body, headers=headers, timeout=self.timeout
            ) as response:
                raw = await read_capped(response, self.target.max_response_bytes)
                status, response_headers = response.status, dict(response.headers)
        except TimeoutError:
            raise CallFailed(
                f"timed out after {self.target.timeout_s:g}s", retryable=True
            ) from None
        except aiohttp.ClientError as exc:
            raise CallFailed(f"connection failed: {type(exc).__name__}", retryable=True) from None
        latency_ms = int((time.perf_counter() - started) * 1000)
        if status != 200:
            raise CallFailed(
                f"HTTP {status}: {raw[:300].decode('utf-8', 'replace')}",
                status=status,
                retryable=status in RETRYABLE_STATUS,
                retry_after=parse_retry_after(response_headers.get("Retry-After")),
            )
        try:
            parsed = self.config.transform_response(
                model=self.name,
                raw_response=httpx.Response(status, headers=response_headers, content=raw),
                model_response=ModelResponse(),
                logging_obj=_NoCallLogging(),  # type: ignore[arg-type]
                request_data=body,
                messages=messages,  # type: ignore[arg-type]
                optional_params=optional,
                litellm_params={},
                encoding=None,
                api_key=self.api_key,
            )
        except Exception as exc:  # a body that is not a chat completion: the server misbehaved
            raise CallFailed(f"unreadable response: {str(exc)[:300]}", status=status) from None
        return completion_of(parsed, self.target.model, latency_ms)


async def read_capped(response: aiohttp.ClientResponse, cap: int) -> bytes:
    """The body, read in chunks and never more than `cap` bytes: a longer one is a failed call
    (not retried: the same server would send it again)."""
    declared = response.content_length
    if declared is not None and declared > cap:
        raise CallFailed(f"response of {declared:,} bytes is over the {cap:,}-byte cap")
    parts: list[bytes] = []
    size = 0
    while chunk := await response.content.read(_CHUNK):
        size += len(chunk)
        if size > cap:
            raise CallFailed(f"response is over the {cap:,}-byte cap")
        parts.append(chunk)
    return b"".join(parts)


class LitellmTransport:
    """Any provider litellm supports, through `litellm.acompletion` with its retries turned off."""

    def __init__(self, target: JudgeTarget) -> None:
        self.target = target
        self.api_key = target.api_key.get_secret_value() if target.api_key else None

    async def complete(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> Completion:
        litellm = litellm_module()

        started = time.perf_counter()
        try:
            response = await litellm.acompletion(
                model=self.target.model,
                messages=messages,
                api_base=self.target.api_base,
                api_key=self.api_key,
                timeout=self.target.timeout_s,
                num_retries=0,
                max_retries=0,
                drop_params=True,
                **params,
            )
        except Exception as exc:
            raise failure_of(exc) from None
        latency_ms = int((time.perf_counter() - started) * 1000)
        return completion_of(response, self.target.model, latency_ms)


def failure_of(exc: Exception) -> CallFailed:
    """Map a litellm exception onto retry or not, keeping the provider's `Retry-After`."""
    litellm = litellm_module()

    status = getattr(exc, "status_code", None)
    headers = getattr(exc, "litellm_response_headers", None) or {}
    retry_after = parse_retry_after(
        dict(headers).get("retry-after") or dict(headers).get("Retry-After")
    )
    transient = (
        litellm.Timeout,
        litellm.APIConnectionError,
        litellm.RateLimitError,
        litellm.InternalServerError,
        litellm.ServiceUnavailableError,
    )
    retryable = isinstance(exc, transient) or (
        isinstance(status, int) and status in RETRYABLE_STATUS
    )
    if isinstance(
        exc, litellm.BadRequestError | litellm.AuthenticationError | litellm.NotFoundError
    ):
        retryable = False
    message = str(getattr(exc, "message", None) or exc)[:300]
    if "Missing credentials" in message:  # litellm reports a missing key as a 500
        retryable = False
    return CallFailed(
        f"{type(exc).__name__}: {message}",
        status=status if isinstance(status, int) else None,
        retryable=retryable,
        retry_after=retry_after,
    )


def completion_of(response: Any, requested_model: str, latency_ms: int) -> Completion:
    choice = response.choices[0]
    usage = getattr(response, "usage", None)
    return Completion(
        text=choice.message.content,
        model=answering_model(requested_model, getattr(response, "model", None)),
        input_tokens=getattr(usage, "prompt_tokens", None),
        output_tokens=getattr(usage, "completion_tokens", None),
        latency_ms=latency_ms,
    )


def answering_model(requested: str, answered: str | None) -> str:
    """The configured model string, unless the provider says another model answered (e.g. a
    dated snapshot behind an alias); then that model, under the configured provider prefix."""
    prefix, slash, name = requested.partition("/") if "/" in requested else ("", "", requested)
    if not answered:
        return requested
    bare = answered.removeprefix(f"{prefix}/") if prefix else answered
    if bare == name:
        return requested
    return f"{prefix}{slash}{bare}"
