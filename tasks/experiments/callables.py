"""`--target module:function`: the user's own app entry point, called once per item.

The callable gets the item as a dict (`id`, `input`, `context`, `tags`, `metadata`; never the
expected answer) and returns the output text, or a dict with `output` and optionally
`latency_ms`, `cost_usd`, `model`. Sync or async; each call has a timeout. An item whose call
raises or times out gets an error with the exception's message, and the check goes on.
"""

import asyncio
import hashlib
import importlib
import inspect
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tasks.datasets.store import StoredItem
from tasks.errors import ConfigError
from tasks.experiments.targets import TargetOutput


def load_target(spec: str) -> Callable[[dict[str, Any]], Any]:
    """`package.module:function`, importable from the current directory (as pytest does)."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"--target {spec!r}: use module:function, e.g. myapp.bot:answer")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"--target: cannot import {module_name!r} ({exc})") from None
    target = getattr(module, attribute, None)
    if not callable(target):
        raise ConfigError(f"--target: {module_name} has no function {attribute!r}")
    return target


def target_spec(spec: str) -> str:
    """The target as an experiment records it: the callable and its module's source digest, so
    changed code is a new experiment and unchanged code the same one."""
    module_name = spec.partition(":")[0]
    module = sys.modules.get(module_name)
    source = inspect.getsource(module) if module is not None else ""
    return f"callable:{spec}@{hashlib.sha256(source.encode()).hexdigest()[:12]}"


def _output(item_id: str, value: Any, latency_ms: int) -> TargetOutput:
    if isinstance(value, dict):
        return TargetOutput.model_validate({"latency_ms": latency_ms, **value, "item_id": item_id})
    return TargetOutput(item_id=item_id, output=None if value is None else str(value),
                        latency_ms=latency_ms)  # fmt: skip


async def call_target(
    target: Callable[[dict[str, Any]], Any],
    items: list[StoredItem],
    timeout_s: float,
    concurrency: int,
) -> tuple[list[TargetOutput], dict[str, str]]:
    """Outputs for the items, and an error message for each item whose call failed."""
    gate = asyncio.Semaphore(concurrency)
    outputs: list[TargetOutput] = []
    errors: dict[str, str] = {}

    async def one(stored: StoredItem) -> None:
        item = stored.item
        given = {"id": item.id, "input": item.input, "context": list(item.context),
                 "tags": list(item.tags), "metadata": dict(item.metadata)}  # fmt: skip
        async with gate:
            started = time.perf_counter()
            try:
                if inspect.iscoroutinefunction(target):
                    value = await asyncio.wait_for(target(given), timeout_s)
                else:
                    value = await asyncio.wait_for(asyncio.to_thread(target, given), timeout_s)
                outputs.append(_output(item.id, value, int((time.perf_counter() - started) * 1000)))
            except TimeoutError:
                errors[item.id] = f"timed out after {timeout_s:g} s"
            except Exception as exc:  # the user's code: any failure is this item's error
                errors[item.id] = f"{type(exc).__name__}: {exc}"[:500]

    await asyncio.gather(*(one(s) for s in items))
    return outputs, errors
