"""One label as a file row or an API body says it: validated before anything is stored."""

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Source = Literal["annotation", "import", "user_feedback"]
#: The criterion of end users' thumbs (the warehouse's `feedback` column).
USER_FEEDBACK = "user_feedback"
KNOWN_FIELDS = frozenset(
    {"deployment", "log_id", "dataset", "item_id", "criterion", "passed", "score", "label",
     "note", "annotator", "created_at"}
)  # fmt: skip
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(value: str | None) -> str | None:
    """Free text as stored: no NUL or control characters (every renderer escapes the rest)."""
    return None if value is None else _CONTROL.sub("", value)


class LabelRow(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    deployment: str | None = Field(default=None, max_length=200)
    log_id: str | None = Field(default=None, max_length=200)
    dataset: str | None = Field(default=None, max_length=200)
    item_id: str | None = Field(default=None, max_length=200)
    criterion: str = Field(min_length=1, max_length=200)
    passed: bool | None = None
    score: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    label: str | None = Field(default=None, max_length=200)
    note: str | None = Field(default=None, max_length=4000)
    annotator: str = Field(min_length=1, max_length=200)
    created_at: datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _blank_is_missing(cls, data: Any) -> Any:
        """A CSV cell left empty is a missing value, not an empty string."""
        if isinstance(data, dict):
            return {k: (None if v == "" else v) for k, v in data.items()}
        return data

    @field_validator("note", "label", "annotator", "criterion")
    @classmethod
    def _clean(cls, value: str | None) -> str | None:
        return clean_text(value)

    @model_validator(mode="after")
    def _one_subject_and_a_decision(self) -> "LabelRow":
        on_log = self.deployment is not None and self.log_id is not None
        on_item = self.dataset is not None and self.item_id is not None
        if on_log == on_item:
            raise ValueError("give deployment and log_id, or dataset and item_id (one of them)")
        if self.passed is None and self.score is None and self.label is None:
            raise ValueError("give at least one of passed, score, label")
        if not self.annotator:
            raise ValueError("annotator is required")
        return self

    def subject(self) -> str:
        return (
            f"{self.deployment}/{self.log_id}"
            if self.deployment is not None
            else f"{self.dataset}/{self.item_id}"
        )


def unknown_fields(record: dict[str, Any]) -> list[str]:
    return sorted(set(record) - KNOWN_FIELDS)
