"""`assay dataset` as users run it: create, import with bad lines (the rest still imported, exit
1), edits as new revisions with a new digest, list and show, and exports that import back."""

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.cli import assay

pytestmark = pytest.mark.slow


def test_import_edit_list_show_and_export_round_trip(
    engine: sa.Engine, assay_env: str, tmp_path: Path
) -> None:
    created = assay("dataset", "create", "support-golden", "--description", "hand-checked",
                    db_url=assay_env)  # fmt: skip
    assert created.returncode == 0 and "created" in created.stdout
    items = tmp_path / "items.jsonl"
    items.write_text(
        '{"id": "refund", "input": "How long do refunds take?", "expected": "14 days", '
        '"context": ["Refunds take 14 days."], "tags": ["billing"]}\n'
        '{"id": "ship", "input": "Where is my order?", "expected": "It ships tomorrow."}\n'
        '{"id": "broken"\n'
        '{"id": "noinput", "expected": "x"}\n'
        '{"input": "<script>alert(1)</script> is kept as text", "priority": "high"}\n'
    )
    first = assay("dataset", "import", "support-golden", str(items), db_url=assay_env)
    assert first.returncode == 1  # some lines were rejected ...
    assert "3 added" in first.stdout and "2 rejected" in first.stdout  # ... the rest is in
    assert "line 3: not JSON" in first.stderr and "line 4: input" in first.stderr
    listed = json.loads(assay("dataset", "list", "--format", "json", db_url=assay_env).stdout)
    [golden] = listed
    assert golden["items"] == 3 and golden["with_expected"] == 2
    before = golden["digest"]

    again = assay("dataset", "import", "support-golden", str(items), "--format", "json",
                  db_url=assay_env)  # fmt: skip
    assert json.loads(again.stdout)["unchanged"] == 3  # nothing written twice

    edit = tmp_path / "edit.jsonl"
    edit.write_text('{"id": "refund", "input": "How long do refunds take?", '
                    '"expected": "14 business days"}\n')  # fmt: skip
    edited = assay("dataset", "import", "support-golden", str(edit), db_url=assay_env)
    assert edited.returncode == 0 and "1 revised" in edited.stdout
    with engine.connect() as conn:
        revisions = conn.execute(sa.text(
            "SELECT revision, expected, retired_at IS NOT NULL FROM assay.dataset_items "
            "WHERE item_id = 'refund' ORDER BY revision")).all()  # fmt: skip
    assert [tuple(r) for r in revisions] == [(1, "14 days", True), (2, "14 business days", False)]
    after = json.loads(assay("dataset", "list", "--format", "json", db_url=assay_env).stdout)
    assert after[0]["digest"] != before and after[0]["items"] == 3

    shown = assay("dataset", "show", "support-golden", db_url=assay_env, columns=80)
    assert shown.returncode == 0 and "14 business days" in shown.stdout
    assert "<script>alert(1)</script>" in shown.stdout  # text, as written

    for fmt in ("jsonl", "csv", "parquet"):
        out = tmp_path / f"export.{fmt}"
        done = assay("dataset", "export", "support-golden", "--format", fmt, "--out", str(out),
                     db_url=assay_env)  # fmt: skip
        assert done.returncode == 0, done.stderr
    exported = [json.loads(line) for line in (tmp_path / "export.jsonl").read_text().splitlines()]
    assert {e["id"] for e in exported} >= {"refund", "ship"}
    assert next(e for e in exported if e.get("metadata"))["metadata"] == {"priority": "high"}
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "export.parquet").num_rows == 3
    assay("dataset", "create", "copy", db_url=assay_env)
    for fmt in ("jsonl", "csv"):  # an export imports back unchanged
        back = assay("dataset", "import", "copy", str(tmp_path / f"export.{fmt}"),
                     "--format", "json", db_url=assay_env)  # fmt: skip
        assert back.returncode == 0, back.stderr
    datasets = {d["name"]: d for d in json.loads(
        assay("dataset", "list", "--format", "json", db_url=assay_env).stdout)}  # fmt: skip
    assert datasets["copy"]["digest"] == datasets["support-golden"]["digest"]


def test_unknown_datasets_and_bad_options_are_usage_errors(assay_env: str, tmp_path: Path) -> None:
    assay("dataset", "create", "support-golden", db_url=assay_env)
    missing = assay("dataset", "show", "suport-golden", db_url=assay_env)
    assert missing.returncode == 2 and "did you mean 'support-golden'" in missing.stderr
    items = tmp_path / "i.jsonl"
    items.write_text('{"input": "x"}\n')
    bad_map = assay("dataset", "import", "support-golden", str(items), "--map", "inptu=q",
                    db_url=assay_env)  # fmt: skip
    assert bad_map.returncode == 2 and "did you mean 'input'" in bad_map.stderr
    parquet = assay("dataset", "export", "support-golden", "--format", "parquet", db_url=assay_env)
    assert parquet.returncode == 2 and "--out" in parquet.stderr
    made = assay("dataset", "import", "fresh", str(items), "--create", db_url=assay_env)
    assert made.returncode == 0 and "1 added" in made.stdout
