"""Migrations are really forward-only: every released file is pinned by its checksum (an edit
fails here), the database keeps what it applied, `assay migrate` refuses a file changed since
(exit 2, the file named), and databases migrated between the two in-place edits of 0011 and
0015 are brought up to date by 0011a and 0016 (tested from each of those commits' schemas)."""

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tasks.errors import MigrationEdited
from tasks.store.db import _engine, migrate
from tasks.store.sql import migration_files
from tests import pg
from tests.cli import assay

RELEASED = Path(__file__).parent / "released"
#: sha256 of every released migration. Never change a line here: add a new migration instead.
PINNED = {
    "0001_create_core_tables.sql": "5306c4865235c4b0e359cb4329bbdc65b28545293ad9bdfb9ec54aa5800f4f23",
    "0002_allow_unknown_judge_cost.sql": "a035a269806f650dc8cc8a0e4ffa645430f8962c924859ae73a267c1a21bde06",
    "0003_record_failed_expectations.sql": "626eaed1d946387c9474b1c8b965e351705b267e112d4feda10623d6297fd9b0",
    "0004_create_alerts_and_outbox.sql": "db4a181f7172040b97fefe73435458541673ab89f0bca0161c9e1d5a95346764",
    "0005_create_spend_ledger.sql": "37a45de81026f84472d8ec12ee87ac0c76f75ff665491b4561656311061c91af",
    "0006_create_reserve_spend.sql": "b685b3a1b76f610fb3eb75576b2851e7248f8e2094b087372b95a6b708921830",
    "0007_create_rollups.sql": "2065729c956f008e72063ba0d934f647333f25058715bdcbcd4835dc7a5f87d0",
    "0008_allow_replay_runs.sql": "b6499f8bd5b99f3bba806fb37e3858f40d385ff2d699d0189cde87e2090035c4",
    "0009_alert_opening_value.sql": "3bc44310be28107c2c4019474f6f1ae0f89f63549f69b44cd1f66ae615f1385f",
    "0010_create_datasets.sql": "d08e699167ff667dc98b07e59a85655b62a2d98f56deab672cc2b3d060163296",
    "0011_create_experiments.sql": "9255ebf44fe39c9306295b81096d02f3761e5bf552f84f5baccc89451447d69d",
    "0012_create_check_caches.sql": "b68302688c310c92bd82f33f58bc06652704698fd090c4239219775f9fea9a60",
    "0013_create_labels.sql": "c7659a02fc2bbda71ee64f54994e428628984b2675f9929882b08a209c7c7eb5",
    "0014_add_session_units.sql": "3cfb56898af2939540cdf4e510455625d000ca0017f849ce464e8dec43f1c2dc",
    "0015_add_trace_units.sql": "be1822c8890248ee4debd044bf2a9ec59a65c5e78391a8076be9d56c837b8670",
    "0011a_repair_experiment_outputs.sql": "eff7298af87618a61354c9f2a14db4bd895608fce6b636504c12a8757c5457b9",
    "0016_repair_unit_costs.sql": "8a66496a653df690f9b0e05e588a315902a413401bb1e29d39027b26d848c925",
    "0017_create_judge_claims.sql": "246158da475667e1a947cbd877369559777fc2d14891d95f10e67cd1f1db4b09",
    "0018_create_annotators.sql": "e477c582dd101b5e70b958602fb7b3b522ba83ed3e8bde4df1c41596b9a52020",
    "0019_settle_spend_per_call.sql": "c08b1a18327edde2ca98ec44c229af0a2e35ea74d7727b3bbdd388f4c0277fd2",
    "0020_count_backfilled_usage.sql": "295c18664d0a55b4f5c21ce6f097db42cc532df4c6cb509ceb3cd36eca948e55",
    "0021_reserve_spend_wrapper.sql": "b5621e3ad5ba2de31007573e8cbafbd315e9acb992bf36d3d8c6f50fcaa49ea3",
}  # fmt: skip


def test_no_released_migration_was_edited() -> None:
    found = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in migration_files()}
    for name, digest in PINNED.items():
        assert found.get(name) == digest, f"{name} was edited or removed: add a new migration"
    assert set(found) - set(PINNED) == set(), "pin the new migration's checksum here"


@pytest.fixture
def blank_engine(admin_url: str) -> Iterator[sa.Engine]:
    name = pg.create_database(admin_url)
    engine = _engine(pg.as_sqlalchemy_url(pg.with_database(admin_url, name)))
    try:
        yield engine
    finally:
        engine.dispose()
        pg.drop_database(admin_url, name)


def migrated_as_at(engine: sa.Engine, upto: str, edited: Path) -> None:
    """The database as the migrator of that commit left it: files up to `upto`, the edited one
    as it was then, names recorded without checksums (the table had none)."""
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE assay.schema_migrations (name text PRIMARY KEY, "
                             "applied_at timestamptz NOT NULL DEFAULT now())"))  # fmt: skip
        for path in migration_files():
            if path.name > upto:
                break
            if path.name[4] != "_":  # a repair (NNNNa_): it did not exist then
                continue
            text = edited.read_text() if path.name == upto else path.read_text()
            conn.exec_driver_sql(text)
            conn.execute(sa.text("INSERT INTO assay.schema_migrations (name) VALUES (:n)"),
                         {"n": path.name})  # fmt: skip


def columns(engine: sa.Engine, table: str) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.text(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'assay' "
            "AND table_name = :t"), {"t": table}).scalars())  # fmt: skip


def test_a_database_migrated_before_the_0011_edit_gets_experiment_outputs(
    blank_engine: sa.Engine,
) -> None:
    with blank_engine.begin() as conn:
        conn.execute(sa.text("CREATE SCHEMA assay"))
    migrated_as_at(blank_engine, "0011_create_experiments.sql",
                   RELEASED / "0011_create_experiments.at-59a1898.sql")  # fmt: skip
    assert columns(blank_engine, "experiment_outputs") == set()  # what the edit left out

    applied = migrate(blank_engine)

    assert applied[:2] == ["0011a_repair_experiment_outputs.sql", "0012_create_check_caches.sql"]
    assert {"output", "error", "model"} <= columns(blank_engine, "experiment_outputs")
    with blank_engine.connect() as conn:
        missing = conn.execute(sa.text(
            "SELECT count(*) FROM assay.schema_migrations WHERE checksum IS NULL")).scalar_one()  # fmt: skip
    assert missing == 0  # every applied file is now pinned in the database too


def test_a_database_migrated_before_the_0015_edit_gets_unit_costs(blank_engine: sa.Engine) -> None:
    with blank_engine.begin() as conn:
        conn.execute(sa.text("CREATE SCHEMA assay"))
    migrated_as_at(blank_engine, "0015_add_trace_units.sql",
                   RELEASED / "0015_add_trace_units.at-31351f6.sql")  # fmt: skip
    assert "cost_usd" not in columns(blank_engine, "unit_evaluations")

    applied = migrate(blank_engine)
    assert applied[:2] == ["0011a_repair_experiment_outputs.sql", "0016_repair_unit_costs.sql"]

    assert {"cost_usd", "tokens"} <= columns(blank_engine, "unit_evaluations")


def test_a_migration_changed_after_it_was_applied_is_refused(
    engine: sa.Engine, assay_env: str
) -> None:
    with engine.begin() as conn:  # as if the file had held something else when it was applied
        conn.execute(sa.text("UPDATE assay.schema_migrations SET checksum = 'older' "
                             "WHERE name = '0013_create_labels.sql'"))  # fmt: skip
    with pytest.raises(
        MigrationEdited, match="0013_create_labels.sql changed after it was applied"
    ):
        migrate(engine)
    done = assay("migrate", db_url=assay_env)
    assert done.returncode == 2 and "0013_create_labels.sql" in done.stderr
    assert "Traceback" not in done.stderr
