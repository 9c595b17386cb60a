"""Imports and exports on real-world files: a bad line is rejected alone with its number, a BOM
is accepted, non-UTF-8 is refused (never stored as replacement characters), every CSV export
neutralises formulas, and Parquet exports have one explicit schema."""

import codecs
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flows.cli.datasets import TrainingFormat, _TrainingWriter
from tasks.datasets.items import escape_cell, read_items, unescape_cell
from tests.cli import assay

FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"click\")", "@SUM(1+1)*cmd|' /C calc'!A0",
            "+1+1", "-2+3", "\tx", "'=already quoted"]  # fmt: skip


def test_one_deep_json_line_or_oversize_cell_is_rejected_alone(tmp_path: Path) -> None:
    lines = [json.dumps({"id": f"ok{i}", "input": f"question {i}"}) for i in range(5)]
    lines.insert(2, '{"id": "deep", "input": ' + "[" * 100_000 + "]" * 100_000 + "}")
    jsonl = tmp_path / "items.jsonl"
    jsonl.write_text("\n".join(lines) + "\n")
    items, rejected = read_items(jsonl)
    assert [i.id for i in items] == [f"ok{i}" for i in range(5)]
    assert [(r.line, r.reason) for r in rejected] == [(3, "JSON nested too deeply")]

    big = tmp_path / "cells.csv"
    big.write_text("id,input\nsmall,hi\nwide," + "w" * 200_000 + "\nhuge," + "h" * 1_100_000
                   + "\nlast,bye\n")  # fmt: skip
    items, rejected = read_items(big)
    assert [i.id for i in items] == ["small", "wide", "last"]  # a 200 KB cell is fine
    assert len(rejected) == 1 and rejected[0].line == 4 and "longer than" in rejected[0].reason


def test_a_bom_is_accepted_and_latin1_is_refused_with_its_line(tmp_path: Path) -> None:
    excel = tmp_path / "excel.csv"
    excel.write_bytes(codecs.BOM_UTF8 + "id,input\nq1,café crème\n".encode())
    items, rejected = read_items(excel)
    assert rejected == [] and items[0].id == "q1" and items[0].input == "café crème"

    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"id,input\nq1,fine\nq2," + "café crème".encode("latin-1") + b"\nq3,ok\n")
    items, rejected = read_items(latin)
    assert [i.id for i in items] == ["q1", "q3"]
    assert rejected[0].line == 3 and "not UTF-8" in rejected[0].reason
    assert not any("\ufffd" in i.input for i in items)


def test_formula_cells_are_neutralised_and_import_back_unchanged() -> None:
    for text in FORMULAS:
        assert not escape_cell(text).startswith(("=", "+", "-", "@", "\t", "\r"))
        assert unescape_cell(escape_cell(text)) == text
    assert escape_cell(-2) == -2 and escape_cell("plain") == "plain"


def test_dataset_exports_in_every_format_are_safe_and_sparse(
    assay_env: str, tmp_path: Path
) -> None:
    items = tmp_path / "items.jsonl"
    rows = [{"id": f"f{i}", "input": text} for i, text in enumerate(FORMULAS)]
    rows[0] |= {"expected": "x", "context": ["passage"], "tags": ["t"]}  # the others sparse
    items.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert (
        assay("dataset", "import", "cells", str(items), "--create", db_url=assay_env).returncode
        == 0
    )

    out = {fmt: tmp_path / f"export.{fmt}" for fmt in ("csv", "jsonl", "parquet")}
    for fmt, path in out.items():
        done = assay(
            "dataset", "export", "cells", "--format", fmt, "--out", str(path), db_url=assay_env
        )
        assert done.returncode == 0, done.stderr
    text = out["csv"].read_text()
    for line in text.splitlines()[1:]:
        assert not line.split(",", 1)[1].lstrip('"').startswith(("=", "+", "-", "@", "\t"))
    table = pq.read_table(out["parquet"])
    assert table.num_rows == len(FORMULAS) and table.schema.field("expected").nullable
    back, rejected = read_items(out["csv"])
    assert rejected == [] and [i.input for i in back] == FORMULAS  # round trip


@pytest.mark.parametrize("fmt", [TrainingFormat.parquet, TrainingFormat.csv])
def test_a_training_export_with_a_late_sparse_column_writes_every_row(
    tmp_path: Path, fmt: TrainingFormat
) -> None:
    path = tmp_path / f"train.{fmt.value}"
    writer = _TrainingWriter(path, fmt)
    base = {"ts": "2026-01-01T00:00:00+00:00", "context": [], "response": "r", "model": "m",
            "prompt_slug": None}  # fmt: skip
    for i in range(1001):  # the first 1,000 without feedback, then one with it
        writer.write({**base, "id": f"l{i}", "prompt": "=1+1" if i == 5 else "p",
                      "feedback": "negative" if i == 1000 else None})  # fmt: skip
    writer.close()
    if fmt is TrainingFormat.parquet:
        table = pq.read_table(path)
        assert table.num_rows == 1001 and table.column("feedback")[1000].as_py() == "negative"
    else:
        lines = path.read_text().splitlines()
        assert len(lines) == 1002 and ",'=1+1," in lines[6]
