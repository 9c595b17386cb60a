"""The run kinds: declared once, allowed by the database, and deciding consistently."""

import re
from typing import get_args

import sqlalchemy as sa

from tasks.run.kinds import KINDS
from tasks.store.runs import RunKind


def test_every_kind_the_database_allows_has_a_kind_and_no_other(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        definition = conn.execute(
            sa.text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conname = 'eval_runs_kind_check'"
            )
        ).scalar_one()
    allowed = set(re.findall(r"'(\w+)'::text", definition))
    assert allowed == set(get_args(RunKind)) == {kind.name for kind in KINDS.values()}


def test_each_recorded_kind_is_started_by_its_own_key() -> None:
    assert all(KINDS[kind.name].name == kind.name for kind in KINDS.values())


def test_a_backfill_parent_neither_reads_pages_nor_spends() -> None:
    parent = KINDS["backfill_parent"]
    assert parent.name == "backfill" and not parent.spends and not parent.refreshes_rollups
    assert not parent.exclusive  # it runs beside the hourly schedule, as its chunks do


def test_only_runs_that_consume_their_window_notify_and_look_around_it() -> None:
    # Alerts and the traffic check describe the window the schedule owns; a backfill, replay or
    # check would page about a window that is not theirs.
    for kind in KINDS.values():
        assert kind.notifies == kind.moves_watermark
        assert kind.probes_outside_window == kind.moves_watermark


def test_a_run_that_moves_the_watermark_holds_the_deployment_lock() -> None:
    # Two runs moving one watermark would each skip the other's logs.
    assert all(k.exclusive for k in KINDS.values() if k.moves_watermark)


def test_a_fixed_window_never_moves_the_watermark() -> None:
    # A backfill over last month must not move the hourly watermark back (or forward).
    assert all(not k.moves_watermark for k in KINDS.values() if k.fixed_window)
    assert KINDS["backfill"].fixed_window and not KINDS["backfill"].exclusive


def test_runs_without_a_warehouse_do_not_enforce_its_contract() -> None:
    assert all(not k.enforces_contract for k in KINDS.values() if not k.reads_source)
