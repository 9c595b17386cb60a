"""Per judge model limits in one process: in-flight requests, requests and tokens per minute.

The rate limiters are aiolimiter's leaky buckets. A bucket as deep as a whole minute would let a
full minute's requests out at once and then keep going, i.e. up to twice the limit inside one
sliding minute; so the bucket holds one second's worth, and its rate is trimmed by that second so
that burst plus steady flow never pass the limit in any 60-second window.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiolimiter import AsyncLimiter
from pydantic import BaseModel, ConfigDict, Field

BURST_SECONDS = 1.0


class ModelLimits(BaseModel):
    """Limits for one judge model (the job's `limits` maps model strings to these)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    concurrency: int = Field(default=8, ge=1, le=1000, description="Max requests in flight.")
    rpm: int | None = Field(default=None, ge=1, description="Requests per minute (None: no cap).")
    tpm: int | None = Field(default=None, ge=100, description="Tokens per minute (None: no cap).")
    timeout_s: float = Field(default=60.0, gt=0, le=600, description="Per-call timeout.")
    retries: int = Field(default=3, ge=0, le=10, description="Retries on 429/5xx/timeouts.")
    backoff_s: float = Field(default=1.0, gt=0, le=60, description="First backoff; doubles.")
    max_backoff_s: float = Field(default=30.0, gt=0, le=600, description="Longest single wait.")
    global_concurrency: int | None = Field(
        default=None,
        ge=1,
        description="Total in flight across all workers (Prefect global concurrency limit); "
        "defaults to `concurrency`.",
    )


def per_second_bucket(per_minute: int) -> AsyncLimiter:
    steady_per_minute = per_minute / (1 + BURST_SECONDS / 60)
    return AsyncLimiter(max_rate=steady_per_minute * BURST_SECONDS / 60, time_period=BURST_SECONDS)


class ModelLimiter:
    """Admits one call at a time under a model's in-flight, RPM and TPM limits."""

    def __init__(self, limits: ModelLimits, slots: int | None = None) -> None:
        self.limits = limits
        self._in_flight = asyncio.Semaphore(slots or limits.concurrency)
        self._requests = per_second_bucket(limits.rpm) if limits.rpm else None
        self._tokens = per_second_bucket(limits.tpm) if limits.tpm else None

    @asynccontextmanager
    async def admit(self, tokens: int) -> AsyncIterator[None]:
        async with self._in_flight:
            if self._requests is not None:
                await self._requests.acquire()
            if self._tokens is not None:
                # A single call larger than the bucket still goes, at the bucket's full size.
                await self._tokens.acquire(min(float(tokens), self._tokens.max_rate))
            yield
