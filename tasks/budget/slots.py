"""Cross-worker bounds for judge calls: one Prefect global concurrency limit per judge model.

Each run leases its in-flight slots per page rather than per call (a lease is two API calls; a
call is milliseconds), so the sum of slots held by every worker and run never passes the limit.
"""

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.asyncio import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.settings.context import get_current_settings

from evaluators.judges.client import JudgeRuntime, JudgeSettings
from tasks.errors import ConfigError
from tasks.settings import get_settings

LIMIT_PREFIX = "assay-judge-"
#: Slots are leased and renewed while held; when a worker dies mid-page its slots come back
#: after this long (plus the repossessor loop, 15 s) instead of Prefect's default 300 s.
SLOT_LEASE_S = 60.0  # the server refuses leases under 60 s
REAP_EVERY_S = 5.0


def limit_name(model: str) -> str:
    """The global concurrency limit of a judge model (URL-safe: model strings contain '/'),
    in this install's namespace (`ASSAY_LIMIT_NAMESPACE`) when it has one."""
    namespace = get_settings().limit_namespace
    prefix = f"{LIMIT_PREFIX}{namespace}-" if namespace else LIMIT_PREFIX
    return prefix + re.sub(r"[^A-Za-z0-9_.-]", "-", model)


async def ensure_limits(models: list[str], settings: JudgeSettings) -> dict[str, int]:
    """Create missing limits; return the slots this process may hold per model.

    An existing limit is left as the operator set it (the UI may have tuned it); the slots are
    the smaller of the model's local concurrency and that limit.
    """
    slots: dict[str, int] = {}
    async with get_client() as client:
        for model in models:
            limits = settings.limits_for(model)
            name = limit_name(model)
            try:
                existing = await client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                wanted = limits.global_concurrency or limits.concurrency
                try:
                    await client.create_global_concurrency_limit(
                        GlobalConcurrencyLimitCreate(name=name, limit=wanted)
                    )
                except ObjectAlreadyExists:  # another run created it first
                    pass
                except httpx.HTTPStatusError as exc:
                    if exc.response.status_code != 409:
                        raise
                existing = await client.read_global_concurrency_limit_by_name(name)
            if existing.limit < 1:
                raise ConfigError(
                    f"global concurrency limit {name!r} is {existing.limit}: no judge call could "
                    "ever run; raise it in the Prefect UI (Concurrency) or delete it"
                )
            slots[model] = min(limits.concurrency, existing.limit)
    return slots


def leases_on_disk() -> bool:
    """Whether this process can see the server's slot leases (a local run's temporary server
    with the filesystem lease storage Assay sets by default)."""
    return get_current_settings().server.concurrency.lease_storage.endswith(".filesystem")


async def release_expired_leases() -> int:
    """Release the slots of leases that expired (their holder died without releasing them).

    A real `prefect server` does this itself (its repossessor service); the temporary server of
    a local run does not run that service, so each local run does it while it waits for slots.
    """
    if not leases_on_disk():
        return 0
    from prefect.server.concurrency.lease_storage.filesystem import ConcurrencyLeaseStorage

    expired = await ConcurrencyLeaseStorage().read_expired_lease_ids(limit=1000)
    async with get_client() as client:
        for lease_id in expired:
            with contextlib.suppress(httpx.HTTPError):
                await client.release_concurrency_slots_with_lease(lease_id)
    return len(expired)


async def _reap_while_waiting() -> None:
    while True:
        with contextlib.suppress(Exception):  # best effort: the wait goes on regardless
            await release_expired_leases()
        await asyncio.sleep(REAP_EVERY_S)


@asynccontextmanager
async def judge_slots(slots: dict[str, int]) -> AsyncIterator[None]:
    """Hold this process's slots of every judge model's global limit (strict: never unlimited).

    Limits are taken in sorted order so that two runs needing the same models cannot deadlock.
    While waiting for slots, expired leases of dead processes are released (local runs).
    """
    async with AsyncExitStack() as stack:
        reaper = asyncio.create_task(_reap_while_waiting()) if slots and leases_on_disk() else None
        try:
            for model in sorted(slots):
                await stack.enter_async_context(
                    concurrency(
                        limit_name(model),
                        occupy=slots[model],
                        strict=True,
                        lease_duration=SLOT_LEASE_S,
                    )
                )
        finally:
            if reaper is not None:
                reaper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reaper
        yield


async def lease_slots(judges: JudgeRuntime | None, models: list[str]) -> dict[str, int]:
    """Make sure each judge model has its global limit and size the runtime's share of it."""
    if judges is None:
        return {}
    judges.slots = await ensure_limits(models, judges.settings)
    return judges.slots
