"""Durations as people write them in configs: `90s`, `5m`, `1h`, `3d`, `2w`, besides ISO 8601
durations and seconds (shared by job settings and evaluator params)."""

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator

_SHORT_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def short_duration(value: Any) -> Any:
    """Accept `90s`, `5m`, `1h`, `3d`, `2w` besides ISO 8601 durations and seconds."""
    if isinstance(value, str) and (match := _SHORT_DURATION.match(value)):
        return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    return value


Duration = Annotated[timedelta, BeforeValidator(short_duration)]
