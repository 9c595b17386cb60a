"""A target's answers for a page of (item, repeat) units: from the content cache when the same
target already answered the same item, else by asking it (a callable or a prompt), each call
with a timeout; a call that raises or times out is that unit's error, and the check goes on.
"""

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from pydantic import BaseModel

from evaluators.errors import GateUnavailable
from tasks.datasets.store import StoredItem
from tasks.experiments.targets import TargetOutput

#: Given a dataset item, the target's output: text, or a dict with `output` and optionally
#: `latency_ms`, `cost_usd`, `model`.
Answerer = Callable[[StoredItem], Awaitable[Any]]
_REPEAT = re.compile(r"^(?P<item>.+)#(?P<repeat>[0-9]{1,3})$")


class Unit(NamedTuple):
    """One call of the target: an item and which of its `--repeat` runs (1-based)."""

    stored: StoredItem
    repeat: int = 1

    @property
    def log_id(self) -> str:
        """Repeat 1 is logged under the item's id (comparable with unrepeated experiments)."""
        item_id = self.stored.item.id
        return item_id if self.repeat == 1 else f"{item_id}#{self.repeat}"


def units(items: list[StoredItem], repeats: int) -> list[Unit]:
    return [Unit(s, r) for s in items for r in range(1, repeats + 1)]


def item_of(log_id: str, item_ids: set[str]) -> str:
    """The dataset item a scored log id belongs to (`q1#3` is repeat 3 of `q1`)."""
    if log_id in item_ids:
        return log_id
    match = _REPEAT.match(log_id)
    return match["item"] if match and match["item"] in item_ids else log_id


def cache_key(target: str, unit: Unit) -> str:
    """The same target on the same item content and repeat is the same answer."""
    body = json.dumps([target, unit.stored.content_hash, unit.repeat])
    return hashlib.sha256(body.encode()).hexdigest()


class Answers(BaseModel):
    outputs: list[TargetOutput] = []
    errors: dict[str, str] = {}  # log id -> why the call failed
    cached: set[str] = set()  # log ids answered from the cache
    fresh: list[tuple[str, TargetOutput]] = []  # (cache key, answer) of calls just made


def as_output(log_id: str, value: Any, latency_ms: int) -> TargetOutput:
    if isinstance(value, dict):
        return TargetOutput.model_validate({"latency_ms": latency_ms, **value, "item_id": log_id})
    return TargetOutput(item_id=log_id, output=None if value is None else str(value),
                        latency_ms=latency_ms)  # fmt: skip


async def ask_all(ask: Answerer, todo: list[Unit], timeout_s: float, concurrency: int) -> Answers:
    """Every unit's answer or error, at most `concurrency` calls at once."""
    gate = asyncio.Semaphore(concurrency)
    found = Answers()

    async def one(unit: Unit) -> None:
        async with gate:
            started = time.perf_counter()
            try:
                value = await asyncio.wait_for(ask(unit.stored), timeout_s)
                elapsed = int((time.perf_counter() - started) * 1000)
                found.outputs.append(as_output(unit.log_id, value, elapsed))
            except GateUnavailable:
                raise  # the ledger is unreachable: the page is retried, not failed
            except TimeoutError:
                found.errors[unit.log_id] = f"timed out after {timeout_s:g} s"
            except Exception as exc:  # the user's code or the model: this unit's error
                found.errors[unit.log_id] = f"{type(exc).__name__}: {exc}"[:500]

    await asyncio.gather(*(one(u) for u in todo))
    return found
