"""Reading dataset files: every good line an item, every bad line a reason with its number."""

from pathlib import Path

from tasks.datasets.items import digest, read_items


def test_jsonl_with_bad_lines_keeps_the_good_ones(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text(
        '{"id": "a", "input": "What is 2+2?", "expected": "4", "difficulty": "easy"}\n'
        "\n"
        "{not json\n"
        '{"id": "b"}\n'
        '{"input": "No id: named by content", "context": ["passage"], "tags": ["t"]}\n'
        '["a list"]\n'
        '{"id": "a", "input": "again"}\n'
        '{"id": "c", "input": "x", "context": "one passage"}\n'
    )
    items, rejected = read_items(path)
    assert [i.id for i in items][:1] == ["a"] and len(items) == 3
    assert items[0].metadata == {"difficulty": "easy"}  # extra fields kept, not rejected
    assert items[1].id.startswith("sha256:") and items[1].context == ["passage"]
    assert items[2].context == ["one passage"]
    assert [(r.line, r.reason.split(" ")[0]) for r in rejected] == [
        (3, "not"), (4, "input:"), (6, "not"), (7, "id"),
    ]  # fmt: skip


def test_csv_with_a_column_mapping(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text(
        "qid,question,answer,context,tags\n"
        'q1,Capital of France?,Paris,"[""France is in Europe.""]","[""geo""]"\n'
        "q2,,Berlin,,\n"
    )
    items, rejected = read_items(path, {"id": "qid", "input": "question", "expected": "answer"})
    assert len(items) == 1 and items[0].expected == "Paris" and items[0].tags == ["geo"]
    assert items[0].context == ["France is in Europe."]
    assert rejected[0].line == 3 and "input" in rejected[0].reason


def test_digest_depends_on_content_not_order() -> None:
    assert digest([("a", "1"), ("b", "2")]) == digest([("b", "2"), ("a", "1")])
    assert digest([("a", "1"), ("b", "2")]) != digest([("a", "1"), ("b", "3")])
