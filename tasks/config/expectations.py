"""The expectations a job config may add to the data contract, and how a spec becomes a Great
Expectations expectation. The allow-list is the operator's, not the config's: only plain values,
no row conditions, no evaluated parameters."""

import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tasks.errors import ConfigError

if TYPE_CHECKING:
    from great_expectations.expectations.expectation import Expectation


_COLUMN = ("column", "mostly")
_RANGE = ("min_value", "max_value", "strict_min", "strict_max")
#: Extra expectations a job may add, and the kwargs each may take. Everything else GX offers is
#: refused: `row_condition`/`condition_parser` evaluate pandas or Python expressions, regex
#: expectations run unbounded patterns inside GX (use the `regex` evaluator, which has a time
#: limit), and suite parameters (`{"$PARAMETER": ...}`) are evaluated expressions.
ALLOWED_EXPECTATIONS: dict[str, tuple[str, ...]] = {
    "expect_column_values_to_not_be_null": _COLUMN,
    "expect_column_values_to_be_null": _COLUMN,
    "expect_column_values_to_be_in_set": (*_COLUMN, "value_set"),
    "expect_column_values_to_not_be_in_set": (*_COLUMN, "value_set"),
    "expect_column_values_to_be_between": (*_COLUMN, *_RANGE),
    "expect_column_value_lengths_to_be_between": (*_COLUMN, "min_value", "max_value"),
    "expect_column_value_lengths_to_equal": (*_COLUMN, "value"),
    "expect_column_values_to_be_unique": _COLUMN,
    "expect_column_values_to_be_in_type_list": (*_COLUMN, "type_list"),
    "expect_column_values_to_be_of_type": (*_COLUMN, "type_"),
    "expect_column_values_to_be_json_parseable": _COLUMN,
    "expect_column_distinct_values_to_be_in_set": ("column", "value_set"),
    "expect_column_mean_to_be_between": ("column", *_RANGE),
    "expect_column_max_to_be_between": ("column", *_RANGE),
    "expect_column_min_to_be_between": ("column", *_RANGE),
    "expect_table_row_count_to_be_between": ("min_value", "max_value"),
}
MAX_VALUE_SET = 10_000
ExpectationScalar = str | int | float | bool | None


def _plain_kwarg(name: str, value: Any) -> Any:
    """Kwarg values are scalars or flat lists of scalars: nothing GX could evaluate."""
    scalars = (str, int, float, bool, type(None))
    if isinstance(value, list):
        if len(value) > MAX_VALUE_SET:
            raise ValueError(f"kwargs.{name}: at most {MAX_VALUE_SET:,} values")
        if all(isinstance(v, scalars) for v in value):
            return value
    elif isinstance(value, scalars):
        if isinstance(value, str) and len(value) > 1000:
            raise ValueError(f"kwargs.{name}: at most 1,000 characters")
        return value
    raise ValueError(f"kwargs.{name}: must be a plain value or a list of plain values")


class ExpectationSpec(BaseModel):
    """One extra Great Expectations expectation: its type and kwargs, as GX names them."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    type: str = Field(
        description="A GX expectation type from the allowed list, e.g. "
        "expect_column_values_to_be_in_set.",
        pattern=r"^expect_[a-z0-9_]+$",
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Its arguments.")
    description: str | None = Field(
        default=None, max_length=500, description="Shown as the quarantine reason."
    )

    @model_validator(mode="after")
    def _allowed(self) -> "ExpectationSpec":
        allowed = ALLOWED_EXPECTATIONS.get(self.type)
        if allowed is None:
            hint = difflib.get_close_matches(self.type, ALLOWED_EXPECTATIONS, n=1)
            suggestion = f" (did you mean {hint[0]}?)" if hint else ""
            raise ValueError(
                f"expectation type {self.type!r} is not allowed in a job config{suggestion}; "
                f"allowed: {', '.join(sorted(ALLOWED_EXPECTATIONS))}"
            )
        refused = sorted(set(self.kwargs) - set(allowed))
        if refused:
            raise ValueError(
                f"{self.type}: kwargs {', '.join(refused)} are not allowed (allowed: "
                f"{', '.join(allowed)}); row conditions and evaluated parameters never are"
            )
        for name, value in self.kwargs.items():
            _plain_kwarg(name, value)
        return self


def build_expectation(
    kind: str, kwargs: Mapping[str, Any], description: str | None = None
) -> "Expectation":
    """A GX expectation by its snake_case type; a clear ConfigError when GX rejects it."""
    import great_expectations  # noqa: F401  (registers the expectation types)
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.registry import get_expectation_impl

    try:
        cls = get_expectation_impl(kind)
    except ExpectationNotFoundError:
        raise ConfigError(f"unknown Great Expectations expectation type {kind!r}") from None
    try:
        return cls(**kwargs, description=description)
    except Exception as exc:  # GX raises pydantic (v1 API) validation errors
        problem = " ".join(str(exc).split())
        raise ConfigError(f"{kind}: invalid kwargs: {problem}") from None
