"""The stages of `tasks/` import downward only, and `evaluators/` imports no infrastructure.

Every import counts, the ones inside functions too (a lazy import hides an upward dependency
as well as it hides an import cost). A stage may import a lower stage or itself; an import
upward (or between stages of one layer) is a cycle waiting to happen and fails here."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Bottom to top. The modules at the root of `tasks/` are the foundation every stage may use.
LAYERS: list[set[str]] = [
    {"tasks.errors"},
    {"tasks.redact", "tasks.settings"},
    {"tasks.secrets", "tasks.safe_yaml"},
    {"tasks.stats"},
    {"tasks.config"},
    {"tasks.store"},
    {"tasks.warehouse"},
    {"tasks.contract"},
    {"tasks.budget"},
    {"tasks.datasets"},
    {"tasks.labels"},
    {"tasks.sessions"},
    {"tasks.alerts"},
    {"tasks.analytics"},
    {"tasks.experiments"},
    {"tasks.demo"},
    {"tasks.run"},
]
LAYER = {stage: level for level, stages in enumerate(LAYERS) for stage in stages}


def stage_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[str]:
    """Every module `path` imports, at any depth, resolved to absolute names."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "tasks":  # `from tasks import redact`
                found += [f"tasks.{alias.name}" for alias in node.names]
            else:
                found.append(node.module)
    return found


def edges(package: str) -> list[tuple[str, str, str]]:
    """(importing module, its stage, imported module) for every import of `package`."""
    return [
        (module_name(path), stage_of(module_name(path)), target)
        for path in sorted((ROOT / package).rglob("*.py"))
        for target in imports(path)
    ]


def test_every_module_of_tasks_belongs_to_a_stage() -> None:
    stages = {stage for _, stage, _ in edges("tasks")} - {"tasks"}
    assert stages <= set(LAYER), f"stages missing from LAYERS: {sorted(stages - set(LAYER))}"


def test_stages_import_only_downward() -> None:
    upward = sorted(
        f"{module} ({stage}) imports {target}"
        for module, stage, target in edges("tasks")
        if target.startswith("tasks.")
        and stage_of(target) != stage
        and stage_of(target) in LAYER
        and LAYER[stage_of(target)] >= LAYER[stage]
    )
    assert not upward, "upward or sideways imports between stages:\n" + "\n".join(upward)


def test_tasks_never_import_flows() -> None:
    offending = sorted(
        f"{module} imports {target}"
        for module, _, target in edges("tasks")
        if target == "flows" or target.startswith("flows.")
    )
    assert not offending, "\n".join(offending)


def test_evaluators_are_pure() -> None:
    """Evaluators never import the infrastructure: no Prefect, SQLAlchemy, Slack or tasks."""
    banned = ("prefect", "sqlalchemy", "slack_sdk", "psycopg", "tasks", "flows")
    offending = sorted(
        f"{module} imports {target}"
        for module, _, target in edges("evaluators")
        if target.split(".")[0] in banned
    )
    assert not offending, "\n".join(offending)


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The walker resolves `from tasks import x` and imports inside functions."""
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from tasks import run\n    import tasks.alerts.rules\n")
    assert imports(sample) == ["tasks.run", "tasks.alerts.rules"]
