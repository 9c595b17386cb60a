"""The one registry of evaluator classes by name: log evaluators and session or trace evaluators
alike (built-ins register themselves with `@registered`). A job config names an evaluator; it
never names code."""

from typing import TypeVar

from pydantic import ValidationError

from evaluators.base import Evaluator, Scorer
from evaluators.errors import InvalidEvaluatorParams, UnknownEvaluator, describe_validation_error

REGISTRY: dict[str, type[Scorer]] = {}

S = TypeVar("S", bound=type[Scorer])


def registered(cls: S) -> S:
    """Class decorator: make an evaluator available by its `name` in job configs."""
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise ValueError(f"evaluator name {cls.name!r} is registered twice")
    REGISTRY[cls.name] = cls
    return cls


def evaluator_class(name: str) -> type[Scorer]:
    """The class registered under `name`, of a log or of a unit."""
    _load_builtins()
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise UnknownEvaluator(f"unknown evaluator {name!r}; registered: {known}") from None


def build(name: str, params: dict[str, object] | None = None) -> Scorer:
    """An evaluator of any kind, its params validated by its own fields."""
    cls = evaluator_class(name)
    try:
        return cls.model_validate(params or {})
    except ValidationError as exc:
        problems = describe_validation_error(exc, root="(params)")
        raise InvalidEvaluatorParams(f"evaluator {name!r} params are invalid: {problems}") from None


def build_evaluator(name: str, params: dict[str, object] | None = None) -> Evaluator:
    """A log evaluator (one that scores a single log)."""
    evaluator = build(name, params)
    if not isinstance(evaluator, Evaluator):
        raise UnknownEvaluator(f"{name!r} evaluates whole sessions or traces, not single logs")
    return evaluator


def evaluator_classes() -> dict[str, type[Scorer]]:
    """Every registered evaluator class, of logs and of units, by name."""
    _load_builtins()
    return dict(sorted(REGISTRY.items()))


def all_evaluators() -> dict[str, type[Evaluator]]:
    """Every log evaluator, by name (session and trace evaluators: `unit_evaluators()`)."""
    _load_builtins()
    return {
        name: cls
        for name, cls in sorted(REGISTRY.items())
        if isinstance(cls, type) and issubclass(cls, Evaluator)
    }


def _load_builtins() -> None:
    import evaluators.heuristics
    import evaluators.heuristics.unit_checks
    import evaluators.judges
    import evaluators.judges.sessions  # noqa: F401
