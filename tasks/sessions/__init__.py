"""Sessions and traces as units of evaluation: a conversation (turns sharing `session_id`) or an
agent run (steps sharing `trace_id`) is evaluated once, when it is complete (no item for
`sessions.idle`, or an end marker logged), by the first run whose window sees it complete,
however many windows its items span. Free unit evaluators score every complete unit; unit
judges a deterministic sample of them (the job's sampling rate and seed, by unit id), through
the run's judge runtime and spend ledger. Scores are keyed by unit kind and id, and
`unit_evaluations` records that a unit was evaluated in the same transaction (with the spend of
its judge calls), so a rerun or a crash-and-rerun evaluates nothing twice. Items that arrive
after their unit was evaluated are counted as late; with `sessions.rescore_late` the unit is
evaluated again as its next revision (its earlier scores move to `unit_score_revisions`)."""

from tasks.sessions.evaluate import UnitOutcome, evaluate_completed_units, units_summary
from tasks.sessions.pending import (
    CHUNK,
    UNIT_KINDS,
    evaluators_of,
    find_pending,
    read_units,
    session_evaluators,
    session_judges,
)
from tasks.sessions.scoring import unit_sample

__all__ = [
    "CHUNK", "UNIT_KINDS", "UnitOutcome", "evaluate_completed_units", "evaluators_of",
    "find_pending", "read_units", "session_evaluators", "session_judges", "unit_sample",
    "units_summary",
]  # fmt: skip
