"""Explicit registry of evaluator classes by name."""

from typing import TypeVar

from pydantic import ValidationError

from evaluators.base import Evaluator
from evaluators.errors import describe_validation_error

REGISTRY: dict[str, type[Evaluator]] = {}

E = TypeVar("E", bound=type[Evaluator])


class UnknownEvaluator(ValueError):
    pass


class InvalidEvaluatorParams(ValueError):
    pass


def registered(cls: E) -> E:
    """Class decorator: make an evaluator available by its `name` in job configs."""
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise ValueError(f"evaluator name {cls.name!r} is registered twice")
    REGISTRY[cls.name] = cls
    return cls


def build_evaluator(name: str, params: dict[str, object] | None = None) -> Evaluator:
    _load_builtins()
    try:
        cls = REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise UnknownEvaluator(f"unknown evaluator {name!r}; registered: {known}") from None
    try:
        return cls.model_validate(params or {})
    except ValidationError as exc:
        problems = describe_validation_error(exc, root="(params)")
        raise InvalidEvaluatorParams(f"evaluator {name!r} params are invalid: {problems}") from None


def all_evaluators() -> dict[str, type[Evaluator]]:
    _load_builtins()
    return dict(sorted(REGISTRY.items()))


def _load_builtins() -> None:
    import evaluators.heuristics
    import evaluators.judges  # noqa: F401
