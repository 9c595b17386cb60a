"""Every file a comment, docstring or doc points at exists: a moved module leaves no stale
pointer behind (a newcomer follows these)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP = ("tasks", "flows", "evaluators", "sql", "bench", "tests", "deployments", "docs", "scripts")
#: `tasks/run/page.py`, `sql/queries/runs.sql`, ... (a placeholder such as NAME is no file)
POINTER = re.compile(
    r"(?<![\w/.])((?:" + "|".join(TOP) + r")/[a-z0-9_/]+\.(?:py|sql|md|yaml|html|js))\b"
)


def pointers() -> list[tuple[str, str]]:
    sources = [ROOT / "README.md"]
    for top in ("tasks", "flows", "evaluators", "bench", "docs", "sql"):
        sources += sorted(p for p in (ROOT / top).rglob("*") if p.suffix in (".py", ".md", ".sql"))
    found = []
    for path in sources:
        for match in POINTER.finditer(path.read_text(errors="replace")):
            found.append((str(path.relative_to(ROOT)), match.group(1)))
    return found


def test_every_pointed_at_file_exists() -> None:
    missing = sorted({f"{where}: {target}" for where, target in pointers()
                      if not (ROOT / target).exists()})  # fmt: skip
    assert not missing, "pointers to files that do not exist:\n" + "\n".join(missing)


def test_the_pointer_pattern_finds_paths_in_prose() -> None:
    text = "see tasks/run/page.py, and (sql/queries/runs.sql); not foo/tasks/x.py"
    assert [m.group(1) for m in POINTER.finditer(text)] == [
        "tasks/run/page.py",
        "sql/queries/runs.sql",
    ]
