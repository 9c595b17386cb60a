"""Per judge model limits in one process: in-flight requests, requests and tokens per minute.

The rate limiters are aiolimiter's leaky buckets. A bucket as deep as a whole minute would let a
full minute's requests out at once and then keep going, i.e. up to twice the limit inside one
sliding minute. So the bucket holds a quarter second's worth, and its rate is trimmed by that
quarter second so that burst plus steady flow never pass the limit in any 60-second window. The
small burst also leaves headroom under providers that meter per second: network jitter that
bunches a few requests together must not turn into 429s.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiolimiter import AsyncLimiter
from pydantic import BaseModel, ConfigDict, Field

BURST_SECONDS = 0.25
TOKEN_BURST_SECONDS = 5.0


class ModelLimits(BaseModel):
    """Limits for one judge model (the job's `limits` maps model strings to these)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    concurrency: int = Field(default=8, ge=1, le=1000, description="Max requests in flight.")
    rpm: int | None = Field(
        default=None, ge=2, le=10_000_000, description="Requests per minute (None: no cap)."
    )
    tpm: int | None = Field(
        default=None, ge=100, le=10_000_000_000, description="Tokens per minute (None: no cap)."
    )
    timeout_s: float = Field(default=60.0, gt=0, le=600, description="Per-call timeout.")
    retries: int = Field(default=3, ge=0, le=10, description="Retries on 429/5xx/timeouts.")
    backoff_s: float = Field(default=1.0, gt=0, le=60, description="First backoff; doubles.")
    max_backoff_s: float = Field(default=30.0, gt=0, le=600, description="Longest single wait.")
    global_concurrency: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Total in flight across all workers (Prefect global concurrency limit); "
        "defaults to `concurrency`.",
    )


def minute_bucket(per_minute: int, burst_seconds: float) -> AsyncLimiter:
    """A bucket holding `burst_seconds` worth (at least one unit) that refills at the rest of
    the minute's allowance, so burst plus refill never exceed `per_minute` in any minute."""
    burst = max(1.0, per_minute * burst_seconds / 60)
    # 1% below the rest of the allowance: the bucket leaks continuously and arrivals jitter,
    # so an exact fill measured 3,011 requests in one minute against a 3,000 limit.
    steady_per_minute = max((per_minute - burst) * 0.99, 1.0)
    return AsyncLimiter(max_rate=burst, time_period=burst * 60 / steady_per_minute)


class ModelLimiter:
    """Admits one call at a time under a model's in-flight, RPM and TPM limits."""

    def __init__(self, limits: ModelLimits, slots: int | None = None) -> None:
        self.limits = limits
        self._in_flight = asyncio.Semaphore(slots or limits.concurrency)
        self._requests = minute_bucket(limits.rpm, BURST_SECONDS) if limits.rpm else None
        # Token buckets hold more (calls are hundreds of tokens each); a call larger than the
        # bucket is counted as a full bucket.
        self._tokens = minute_bucket(limits.tpm, TOKEN_BURST_SECONDS) if limits.tpm else None

    @asynccontextmanager
    async def admit(self, tokens: int) -> AsyncIterator[None]:
        async with self._in_flight:
            if self._requests is not None:
                await self._requests.acquire()
            if self._tokens is not None:
                # A single call larger than the bucket still goes, at the bucket's full size.
                await self._tokens.acquire(min(float(tokens), self._tokens.max_rate))
            yield
