"""Free evaluators: deterministic checks that run on every log."""

from evaluators.heuristics import (  # noqa: F401  (importing registers them)
    injection,
    json_checks,
    limits,
    pii,
    reference,
    refusal,
    regex,
    secrets,
)
