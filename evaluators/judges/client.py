"""The judge client: limits, retries with backoff that honours `Retry-After`, fallbacks, a circuit
breaker, one repair attempt for a malformed verdict, and cost capture. One instance per run.
"""

import asyncio
import math
import os
import random
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Protocol, Self

import aiohttp
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, model_validator

from evaluators.errors import BreakerOpen, BudgetRefused, CallFailed, VerdictUnparseable
from evaluators.judges import local
from evaluators.judges.breaker import BreakerPolicy, CircuitBreaker
from evaluators.judges.keys import KeyEnvName, base_is_trusted, check_endpoint
from evaluators.judges.limits import ModelLimiter, ModelLimits
from evaluators.judges.pricing import Price, price_for
from evaluators.judges.quiet_litellm import litellm_module
from evaluators.judges.transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    FAST_PROVIDERS,
    Completion,
    FastTransport,
    JudgeTarget,
    LitellmTransport,
    split_model,
)
from evaluators.judges.verdict import REPAIR_INSTRUCTION, RESPONSE_FORMAT, Verdict, parse_verdict

Transport = FastTransport | LitellmTransport | local.LocalTransport

MAX_RETRY_AFTER_S = 120.0
StructuredOutput = Literal["auto", "json_schema", "off"]
#: Env vars litellm reads for OpenAI-wire providers when the job names no key.
DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "hosted_vllm": "HOSTED_VLLM_API_KEY"}


def max_response_bytes(env: Mapping[str, str]) -> int:
    """ASSAY_JUDGE_MAX_RESPONSE_BYTES (default 1 MiB): the longest judge reply read."""
    value = env.get("ASSAY_JUDGE_MAX_RESPONSE_BYTES")
    try:
        return max(1024, int(value)) if value else DEFAULT_MAX_RESPONSE_BYTES
    except ValueError:
        return DEFAULT_MAX_RESPONSE_BYTES


def _endpoint_from_string(value: Any) -> Any:
    return {"model": value} if isinstance(value, str) else value


class Endpoint(BaseModel):
    """A judge model and, when not the provider's default, where and with which key to reach it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(
        min_length=3, description="litellm model string: openai/gpt-4o-mini, gemini/..., local/..."
    )
    api_base: str | None = Field(default=None, description="OpenAI-compatible or proxy base URL.")
    api_key_env: KeyEnvName | None = Field(
        default=None,
        description="Env var holding the API key (a provider's, or ASSAY_JUDGE_KEY_*).",
    )

    @model_validator(mode="after")
    def _key_goes_only_to_trusted_hosts(self) -> Self:
        check_endpoint(self.api_base, self.api_key_env)
        return self


FallbackEndpoint = Annotated[Endpoint, BeforeValidator(_endpoint_from_string)]


class JudgeRoute(BaseModel):
    """Primary judge model then fallbacks, tried in order when one keeps failing."""

    model_config = ConfigDict(frozen=True)

    primary: Endpoint
    fallbacks: tuple[Endpoint, ...] = ()
    temperature: float = 0.0
    max_output_tokens: int = 400
    structured_output: StructuredOutput = "auto"


class JudgeSettings(BaseModel):
    """Run-wide judge policy from the job config."""

    model_config = ConfigDict(frozen=True)

    limits: dict[str, ModelLimits] = Field(default_factory=dict)
    default_limits: ModelLimits = ModelLimits()
    breaker: BreakerPolicy = BreakerPolicy()
    prices: dict[str, Price] = Field(default_factory=dict)
    token_margin: float = 0.1

    def limits_for(self, model: str) -> ModelLimits:
        return self.limits.get(model, self.default_limits)


class SpendGate(Protocol):
    """A budget that a call must reserve its worst-case cost from before it is sent.

    `reserve` returns a reservation (or None: refused); `settle` replaces it with the actual cost.
    `exhausted`: the cap cannot cover another call, so calls are refused before they wait for
    a rate-limit slot.
    """

    exhausted: bool

    async def reserve(self, model: str, amount_usd: float) -> Any: ...

    async def settle(self, reservation: Any, actual_usd: float) -> None: ...


class JudgeResult(BaseModel):
    status: Literal["ok", "error", "skipped"]
    verdict: Verdict | None = None
    reason: str | None = None
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    latency_ms: int | None = None
    fallback_used: bool = False
    budget_refused: bool = False


class Generation(BaseModel):
    """A plain completion (a prompt target's answer), with what it cost."""

    text: str | None
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    latency_ms: int = 0


class ModelStats(BaseModel):
    calls: int = 0
    failed_calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    verdicts: int = 0
    bad_verdicts: int = 0
    fallback_answers: int = 0
    skipped_by_breaker: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    unknown_cost_calls: int = 0
    #: Calls whose usage was missing or implausible: charged (and recorded) at the worst case.
    estimated_cost_calls: int = 0
    budget_refusals: int = 0
    breaker: str | None = None

    def add_usage(self, input_tokens: int, output_tokens: int, cost_usd: float | None) -> None:
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        if cost_usd is None:
            self.unknown_cost_calls += 1
        else:
            self.cost_usd += cost_usd


class _Spend(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    latency_ms: int = 0

    def add(self, completion: Completion, price: Price | None) -> None:
        tokens_in, tokens_out = completion.input_tokens or 0, completion.output_tokens or 0
        self.input_tokens += tokens_in
        self.output_tokens += tokens_out
        self.latency_ms += completion.latency_ms
        if completion.charged_usd is not None and self.cost_usd is not None:
            self.cost_usd += completion.charged_usd  # what the ledger was charged
        elif price is None or self.cost_usd is None:
            self.cost_usd = None
        else:
            self.cost_usd += price.cost(tokens_in, tokens_out)


def retry_delay(attempt: int, limits: ModelLimits, retry_after: float | None) -> float:
    """Exponential backoff with full jitter on top, never shorter than the provider's
    `Retry-After` (capped, so a bogus header cannot stall a run for hours)."""
    backoff = min(limits.backoff_s * 2**attempt, limits.max_backoff_s)
    backoff += random.uniform(0, limits.backoff_s)
    return max(min(retry_after or 0.0, MAX_RETRY_AFTER_S), backoff)


def count_tokens(model: str, messages: list[dict[str, Any]]) -> int:
    """Input tokens as litellm counts them for this model (its tokenizer, else cl100k)."""
    if model.startswith(f"{local.PROVIDER}/"):
        return local.rough_tokens(messages)
    litellm = litellm_module()
    try:
        return int(litellm.token_counter(model=model, messages=messages))
    except Exception:  # an exotic model string: fall back to a generous character estimate
        return sum(len(str(m.get("content", ""))) for m in messages) // 3 + 8


def estimate_tokens(messages: list[dict[str, Any]], max_output_tokens: int) -> int:
    """Cheap upper-ish bound for the TPM limiter (4 characters a token, plus the answer)."""
    return sum(len(str(m.get("content", ""))) for m in messages) // 4 + max_output_tokens


class JudgeRuntime:
    """Shared by every judge of one run: transports, limiters, breakers and stats per model.

    `slots` caps in-flight calls per model in this process below the configured concurrency,
    e.g. to the share of a global (cross-worker) limit this process holds.
    """

    def __init__(
        self,
        settings: JudgeSettings,
        env: Mapping[str, str] | None = None,
        slots: Mapping[str, int] | None = None,
        gate: SpendGate | None = None,
    ) -> None:
        self.settings = settings
        self.gate = gate
        self.env = os.environ if env is None else env
        self.slots = dict(slots or {})
        self.stats: dict[str, ModelStats] = {}
        self._session: aiohttp.ClientSession | None = None
        self._transports: dict[Endpoint, Transport] = {}
        self._limiters: dict[str, ModelLimiter] = {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self._prices: dict[str, Price | None] = {}
        self._structured: dict[str, bool] = {}

    async def __aenter__(self) -> "JudgeRuntime":
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- per-model state, built once ------------------------------------------------------------
    def stats_for(self, model: str) -> ModelStats:
        return self.stats.setdefault(model, ModelStats())

    def breaker(self, model: str) -> CircuitBreaker:
        if model not in self._breakers:
            self._breakers[model] = CircuitBreaker(model, self.settings.breaker)
        return self._breakers[model]

    def limiter(self, model: str) -> ModelLimiter:
        if model not in self._limiters:
            self._limiters[model] = ModelLimiter(
                self.settings.limits_for(model), slots=self.slots.get(model)
            )
        return self._limiters[model]

    def price(self, model: str) -> Price | None:
        if model not in self._prices:
            self._prices[model] = price_for(model, self.settings.prices)
        return self._prices[model]

    def api_key(self, endpoint: Endpoint, provider: str) -> SecretStr | None:
        if endpoint.api_key_env:
            # Checked at load too; again here, with the worker's own allow-lists, so a config
            # loaded elsewhere (another process, older settings) cannot widen them.
            try:
                check_endpoint(endpoint.api_base, endpoint.api_key_env, self.env)
            except ValueError as refused:
                raise CallFailed(str(refused)) from None
            if not self.env.get(endpoint.api_key_env):
                raise CallFailed(f"api_key_env {endpoint.api_key_env} is not set")
            return SecretStr(self.env[endpoint.api_key_env])
        if endpoint.api_base and not base_is_trusted(endpoint.api_base, self.env):
            # A host the operator has not trusted gets no default key; a placeholder also stops
            # litellm from reading the provider's variable itself.
            return SecretStr("no-key")
        env_name = DEFAULT_KEY_ENV.get(provider)
        key = self.env.get(env_name) if env_name else None
        if key:
            return SecretStr(key)
        # Self-hosted OpenAI-compatible servers often need no key, but the wire wants one.
        return SecretStr("no-key") if endpoint.api_base and provider in FAST_PROVIDERS else None

    def transport(self, endpoint: Endpoint) -> Transport:
        if endpoint not in self._transports:
            if endpoint.model.startswith(f"{local.PROVIDER}/"):
                self._transports[endpoint] = local.LocalTransport(
                    JudgeTarget(model=endpoint.model, api_base=endpoint.api_base)
                )
                return self._transports[endpoint]
            provider, _name = split_model(endpoint.model, endpoint.api_base)
            target = JudgeTarget(
                model=endpoint.model,
                api_base=endpoint.api_base,
                api_key=self.api_key(endpoint, provider),
                timeout_s=self.settings.limits_for(endpoint.model).timeout_s,
                max_response_bytes=max_response_bytes(self.env),
            )
            if provider in FAST_PROVIDERS:
                if self._session is None:
                    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
                    self._session = aiohttp.ClientSession(connector=connector)
                self._transports[endpoint] = FastTransport(target, self._session)
            else:
                self._transports[endpoint] = LitellmTransport(target)
        return self._transports[endpoint]

    def wants_schema(self, route: JudgeRoute, model: str) -> bool:
        if route.structured_output != "auto":
            return route.structured_output == "json_schema"
        if model not in self._structured:
            if model.startswith(f"{local.PROVIDER}/"):
                return False
            litellm = litellm_module()

            try:
                self._structured[model] = bool(litellm.supports_response_schema(model=model))
            except Exception:
                self._structured[model] = False
        return self._structured[model]

    # -- one call with retries --------------------------------------------------------------------
    async def _call(
        self,
        endpoint: Endpoint,
        route: JudgeRoute,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
    ) -> Completion:
        limits = self.settings.limits_for(endpoint.model)
        stats = self.stats_for(endpoint.model)
        transport = self.transport(endpoint)
        tokens = estimate_tokens(messages, route.max_output_tokens)
        # A plain loop rather than tenacity: measured here, tenacity's per-attempt state machine
        # cost ~0.3 ms of CPU per call, a quarter of the whole judge path.
        for attempt in range(limits.retries + 1):
            try:
                return await self._attempt(endpoint, transport, messages, params, tokens)
            except CallFailed as exc:
                if not exc.retryable or attempt == limits.retries:
                    raise
                stats.retries += 1
                await asyncio.sleep(retry_delay(attempt, limits, exc.retry_after))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def charge(
        self,
        model: str,
        completion: Completion,
        reserved: float,
        tokens: int,
        worst_case: Any,
    ) -> float:
        """The cost of one answered call, decided once for the ledger and the score alike.

        Usage the provider did not report, or reported as negative or far beyond what the
        request could use, is not believed: the call is charged the reserved worst case (marked
        estimated), so the ledger equals the sum of score costs and never decreases.
        """
        price = self.price(model)
        tokens_in, tokens_out = completion.input_tokens, completion.output_tokens
        plausible_ceiling = max(tokens, 1) * 20 + 100_000
        believable = (
            tokens_in is not None
            and tokens_out is not None
            and 0 <= tokens_in <= plausible_ceiling
            and 0 <= tokens_out <= plausible_ceiling
        )
        if price is not None and believable:
            assert tokens_in is not None and tokens_out is not None
            return price.cost(tokens_in, tokens_out)
        if not believable:
            self.stats_for(model).estimated_cost_calls += 1
            completion.input_tokens = max(0, min(tokens_in or 0, plausible_ceiling))
            completion.output_tokens = max(0, min(tokens_out or 0, plausible_ceiling))
            if price is not None:
                completion.charged_usd = reserved if self.gate is not None else worst_case()
                completion.cost_estimated = True
                return completion.charged_usd
        return reserved

    def worst_case_usd(self, model: str, messages: list[dict[str, Any]], max_tokens: int) -> float:
        """What one call can cost at most: counted input tokens (plus a margin for tokenizer
        differences) and the whole output budget, at the model's price."""
        price = self.price(model)
        if price is None:
            raise BudgetRefused(f"no known price for {model}: set budget.prices for it")
        counted = count_tokens(model, messages)
        return price.cost(math.ceil(counted * (1 + self.settings.token_margin)), max_tokens)

    async def _attempt(
        self,
        endpoint: Endpoint,
        transport: Transport,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        tokens: int,
    ) -> Completion:
        stats = self.stats_for(endpoint.model)
        timeout_s = self.settings.limits_for(endpoint.model).timeout_s
        reserved, reservation = 0.0, None
        if self.gate is not None:
            # Reserved before waiting for a rate-limit slot: once the cap is reached, calls are
            # refused at once rather than one per slot at the RPM's pace.
            reserved, reservation = await self._reserve(endpoint, messages, params)
        actual = 0.0
        try:
            async with self.limiter(endpoint.model).admit(tokens):
                # Checked again after waiting for a slot: the breaker may have tripped while
                # this call queued behind others.
                breaker = self.breaker(endpoint.model)
                if breaker.open:
                    raise BreakerOpen(breaker.tripped_reason or "circuit open")
                stats.calls += 1
                try:
                    async with asyncio.timeout(timeout_s + 5):  # backstop for the transport's
                        completion = await transport.complete(messages, params)
                except TimeoutError:
                    stats.failed_calls += 1
                    actual = reserved  # a timed-out call may still have been billed
                    raise CallFailed(f"timed out after {timeout_s:g}s", retryable=True) from None
                except CallFailed as exc:
                    stats.failed_calls += 1
                    stats.rate_limited += exc.status == 429
                    raise
                actual = self.charge(
                    endpoint.model,
                    completion,
                    reserved,
                    tokens,
                    lambda: self.worst_case_usd(endpoint.model, messages, params["max_tokens"]),
                )
                return completion
        finally:
            if self.gate is not None:
                await self.gate.settle(reservation, actual)

    async def _reserve(
        self, endpoint: Endpoint, messages: list[dict[str, Any]], params: dict[str, Any]
    ) -> tuple[float, Any]:
        """The call's worst case, reserved on the spend gate; BudgetRefused when it cannot be."""
        assert self.gate is not None
        reserved = self.worst_case_usd(endpoint.model, messages, params["max_tokens"])
        reservation = await self.gate.reserve(endpoint.model, reserved)
        if reservation is None:
            self.stats_for(endpoint.model).budget_refusals += 1
            raise BudgetRefused(
                f"budget exhausted: it cannot cover one more {endpoint.model} call "
                f"(worst case ${reserved:.6f})"
            )
        return reserved, reservation

    def _params(self, route: JudgeRoute, model: str) -> dict[str, Any]:
        params: dict[str, Any] = {
            "temperature": route.temperature,
            "max_tokens": route.max_output_tokens,
        }
        if self.wants_schema(route, model):
            params["response_format"] = RESPONSE_FORMAT
        return params

    # -- an answer to a prompt (a check's prompt target) -----------------------------------------
    async def generate(
        self,
        endpoint: Endpoint,
        messages: list[dict[str, Any]],
        temperature: float,
        max_tokens: int,
    ) -> Generation:
        """One answer on the same limits, retries, breaker and spend gate as the judges, so a
        run's caps cover both. Raises CallFailed, BreakerOpen or BudgetRefused."""
        breaker = self.breaker(endpoint.model)
        if breaker.open:
            self.stats_for(endpoint.model).skipped_by_breaker += 1
            raise BreakerOpen(breaker.tripped_reason or "circuit open")
        route = JudgeRoute(primary=endpoint, temperature=temperature,
                           max_output_tokens=max_tokens, structured_output="off")  # fmt: skip
        params = {"temperature": temperature, "max_tokens": max_tokens}
        try:
            completion = await self._call(endpoint, route, messages, params)
        except CallFailed as exc:
            breaker.record(False, str(exc))
            raise
        breaker.record(True, None)
        spend = _Spend()
        spend.add(completion, self.price(endpoint.model))
        self.stats_for(endpoint.model).add_usage(
            spend.input_tokens, spend.output_tokens, spend.cost_usd
        )
        return Generation(
            text=completion.text, model=completion.model, input_tokens=spend.input_tokens,
            output_tokens=spend.output_tokens, cost_usd=spend.cost_usd,
            latency_ms=spend.latency_ms,
        )  # fmt: skip

    # -- a verdict for one log ------------------------------------------------------------------
    async def judge(self, route: JudgeRoute, messages: list[dict[str, Any]]) -> JudgeResult:
        problems: list[str] = []
        tried_any = False
        for position, endpoint in enumerate((route.primary, *route.fallbacks)):
            breaker = self.breaker(endpoint.model)
            stats = self.stats_for(endpoint.model)
            if breaker.open:
                stats.skipped_by_breaker += 1
                problems.append(breaker.tripped_reason or "circuit open")
                continue
            params = self._params(route, endpoint.model)
            price = self.price(endpoint.model)
            spend = _Spend()
            try:
                completion = await self._call(endpoint, route, messages, params)
            except BreakerOpen as exc:
                stats.skipped_by_breaker += 1
                problems.append(str(exc))
                continue
            except BudgetRefused as exc:  # the budget is shared: no fallback can help
                return JudgeResult(status="skipped", reason=str(exc), budget_refused=True)
            except CallFailed as exc:
                tried_any = True
                breaker.record(False, str(exc))
                stats.breaker = breaker.tripped_reason
                problems.append(f"{endpoint.model}: {exc}")
                continue
            tried_any = True
            spend.add(completion, price)
            result = await self._verdict_of(endpoint, route, messages, params, completion, spend)
            breaker.record(result.status == "ok", result.reason)
            stats.breaker = breaker.tripped_reason
            self._account(stats, result, position > 0)
            return result.model_copy(update={"fallback_used": position > 0})
        if not tried_any:
            return JudgeResult(status="skipped", reason="; ".join(problems)[:1000])
        return JudgeResult(status="error", reason=("judge failed: " + "; ".join(problems))[:1000])

    async def _verdict_of(
        self,
        endpoint: Endpoint,
        route: JudgeRoute,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        completion: Completion,
        spend: _Spend,
    ) -> JudgeResult:
        try:
            verdict = parse_verdict(completion.text)
        except VerdictUnparseable as first:
            repair = [
                *messages,
                {"role": "assistant", "content": first.raw},
                {"role": "user", "content": REPAIR_INSTRUCTION.format(problem=first.problem)},
            ]
            try:
                completion = await self._call(endpoint, route, repair, params)
            except (CallFailed, BreakerOpen, BudgetRefused) as exc:
                reason = _bad(first, f"repair: {exc}")
                return self._result("error", spend, completion, reason=reason)
            spend.add(completion, self.price(endpoint.model))
            try:
                verdict = parse_verdict(completion.text)
            except VerdictUnparseable as second:
                return self._result("error", spend, completion, reason=_bad(second, None))
        return self._result("ok", spend, completion, verdict=verdict)

    @staticmethod
    def _result(
        status: Literal["ok", "error"],
        spend: _Spend,
        completion: Completion,
        verdict: Verdict | None = None,
        reason: str | None = None,
    ) -> JudgeResult:
        return JudgeResult(
            status=status,
            verdict=verdict,
            reason=reason if verdict is None else verdict.reason,
            model=completion.model,
            input_tokens=spend.input_tokens,
            output_tokens=spend.output_tokens,
            cost_usd=spend.cost_usd,
            latency_ms=spend.latency_ms,
        )

    @staticmethod
    def _account(stats: ModelStats, result: JudgeResult, fallback: bool) -> None:
        stats.verdicts += result.status == "ok"
        stats.bad_verdicts += result.status == "error"
        stats.fallback_answers += fallback
        stats.add_usage(result.input_tokens, result.output_tokens, result.cost_usd)

    def report(self) -> dict[str, dict[str, Any]]:
        return {model: stats.model_dump() for model, stats in sorted(self.stats.items())}


def _bad(error: VerdictUnparseable, extra: str | None) -> str:
    parts = [f"unparseable verdict after one repair attempt: {error.problem}"]
    if extra:
        parts.append(extra)
    parts.append(f"raw: {error.raw}")
    return "; ".join(parts)
