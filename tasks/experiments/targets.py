"""What a check evaluates: a target's outputs for a dataset's items, as canonical log rows.

`--outputs FILE.jsonl` holds one `{"item_id": ..., "output": ...}` per item (optionally
`latency_ms`, `cost_usd`, `model`), produced by the user's own CI step.
"""

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evaluators.errors import describe_validation_error
from tasks.datasets.store import StoredItem
from tasks.errors import ConfigError

if TYPE_CHECKING:
    from tasks.experiments.answers import Unit


class TargetOutput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    item_id: str = Field(min_length=1, max_length=210)  # an item id, `#k` for repeat k
    output: str | None
    latency_ms: int | None = Field(default=None, ge=0)
    cost_usd: float | None = Field(default=None, ge=0)
    model: str | None = None


def read_outputs(path: Path) -> list[TargetOutput]:
    """Every line an output; any bad line is a ConfigError naming its number (exit 2)."""
    outputs: list[TargetOutput] = []
    problems: list[str] = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                outputs.append(TargetOutput.model_validate(json.loads(line)))
            except json.JSONDecodeError as exc:
                problems.append(f"line {number}: not JSON ({exc.msg})")
            except ValidationError as exc:
                problems.append(f"line {number}: {describe_validation_error(exc)}")
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems[:10]))
    return outputs


def matched(items: list[StoredItem], outputs: list[TargetOutput]) -> dict[str, TargetOutput]:
    """Outputs by item id; unknown or missing ids are one ConfigError listing them."""
    by_id = {o.item_id: o for o in outputs}
    ids = {s.item.id for s in items}
    unknown = sorted(set(by_id) - ids)
    missing = sorted(ids - set(by_id))
    problems = []
    if unknown:
        problems.append(f"{len(unknown)} item id(s) not in the dataset: {', '.join(unknown[:10])}")
    if missing:
        problems.append(f"{len(missing)} item(s) without an output: {', '.join(missing[:10])}")
    if problems:
        raise ConfigError("outputs do not match the dataset: " + "; ".join(problems))
    return by_id


def outputs_spec(path: Path) -> str:
    """The target, as recorded: the outputs file by content (the same file, the same target)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return f"outputs:{path.name}@{digest}"


def item_rows(
    units: "list[Unit]", outputs: dict[str, TargetOutput], ts: datetime
) -> list[dict[str, Any]]:
    """One canonical log row per answered unit: the item's input as the prompt, the target's
    output as the response, the expected answer where reference evaluators and the correctness
    judge read it (`metadata.reference`)."""
    rows = []
    for unit in units:
        item, out = unit.stored.item, outputs.get(unit.log_id)
        if out is None:
            continue
        metadata: dict[str, Any] = {**item.metadata, "item_revision": unit.stored.revision}
        if unit.repeat > 1:
            metadata["repeat"] = unit.repeat
        if item.expected is not None:
            metadata["reference"] = item.expected
        rows.append({
            "id": unit.log_id, "ts": ts, "prompt": item.input, "response": out.output,
            "context": item.context, "model": out.model, "latency_ms": out.latency_ms,
            "cost_usd": out.cost_usd, "status": "ok", "metadata": metadata,
            "topic": item.tags[0] if item.tags else None,
        })  # fmt: skip
    return rows
