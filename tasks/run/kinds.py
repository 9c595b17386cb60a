"""The kinds of run, and what each decides. This table is the only place that tells a scheduled
run from a backfill chunk, a replay or a dataset check: the lifecycle, the page functions and
the unit pass read its fields, never a kind's name."""

from typing import get_args

from pydantic import BaseModel, ConfigDict

from tasks.store.runs import RunKind


class Kind(BaseModel):
    """What kind of run this is decides how it treats state it shares with other runs."""

    model_config = ConfigDict(frozen=True)

    name: RunKind
    moves_watermark: bool  # consumes its window: the next run starts after it
    enforces_contract: bool  # too many invalid logs stop the run
    exclusive: bool  # holds the deployment's lock (else a liveness lock of its own)
    notifies: bool  # evaluates alert rules and posts the summary
    probes_outside_window: bool  # looks for future-stamped, undated and late logs
    reads_source: bool = True  # its input comes from the job's warehouse source
    # Reads the [start, end) it was given rather than from the watermark, looks at every unit
    # that completed in it, and scores what is missing there (an evaluator added since).
    fixed_window: bool = False
    spends: bool = True  # opens a judge runtime behind the spend ledger
    refreshes_rollups: bool = True  # refreshes the score rollups of the hours it read
    # Counts in usage each log it reads that no other run counted (a run that moves the
    # watermark counts what it moves over instead).
    counts_usage_once: bool = False


#: Keyed by what starts the run; `name` is what the run record says (a backfill's parent and its
#: chunks are both `backfill` runs: the parent plans and sums, its chunks read and spend).
KINDS: dict[str, Kind] = {
    "scheduled": Kind(name="scheduled", moves_watermark=True,
                         enforces_contract=True, exclusive=True, notifies=True,
                         probes_outside_window=True),
    "manual": Kind(name="manual", moves_watermark=True,
                      enforces_contract=True, exclusive=True, notifies=True,
                      probes_outside_window=True),
    "backfill": Kind(name="backfill", moves_watermark=False,
                        enforces_contract=True, exclusive=False, notifies=False,
                        probes_outside_window=False, fixed_window=True,
                        counts_usage_once=True),
    # Plans the chunks that hold logs, fans them out (over the work pool, or here), sums them
    # up: it reads no page, calls no judge, and leaves the rollups to the chunks.
    "backfill_parent": Kind(name="backfill", moves_watermark=False,
                               enforces_contract=False, exclusive=False, notifies=False,
                               probes_outside_window=False, fixed_window=True, spends=False,
                               refreshes_rollups=False),
    "replay": Kind(name="replay", moves_watermark=False,
                      enforces_contract=False, exclusive=True, notifies=False,
                      probes_outside_window=False),
    # A dataset check: items and a target's outputs instead of the warehouse; a rerun of the
    # same experiment scores only what is missing.
    "check": Kind(name="check", moves_watermark=False,
                     enforces_contract=False, exclusive=True, notifies=False,
                     probes_outside_window=False, reads_source=False),
}  # fmt: skip

assert {k.name for k in KINDS.values()} == set(get_args(RunKind)), "every recorded kind has a Kind"
