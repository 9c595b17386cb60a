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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tasks.datasets.store import StoredItem
from tasks.errors import ConfigError
from tasks.experiments.answers import Answerer


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


def callable_answerer(target: Callable[[dict[str, Any]], Any]) -> Answerer:
    """The user's function as an answerer: sync functions run in a worker thread."""

    async def ask(stored: StoredItem) -> Any:
        item = stored.item
        given = {"id": item.id, "input": item.input, "context": list(item.context),
                 "tags": list(item.tags), "metadata": dict(item.metadata)}  # fmt: skip
        if inspect.iscoroutinefunction(target):
            return await target(given)
        return await asyncio.to_thread(target, given)

    return ask
