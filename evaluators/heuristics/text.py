"""Small helpers shared by the text heuristics."""

import re
from typing import Literal

from evaluators.base import Score
from evaluators.records import LogRecord

TextField = Literal["prompt", "response", "context"]


def field_text(record: LogRecord, field: TextField) -> str | None:
    if field == "context":
        return "\n".join(record.context) if record.context else None
    value: str | None = getattr(record, field)
    return value


def texts(record: LogRecord, fields: tuple[TextField, ...]) -> list[tuple[TextField, str]]:
    found = []
    for field in fields:
        value = field_text(record, field)
        if value:
            found.append((field, value))
    return found


def pattern_hits(
    record: LogRecord,
    fields: tuple[TextField, ...],
    patterns: dict[str, re.Pattern[str]],
    triggers: dict[str, tuple[str, ...]] | None = None,
) -> dict[str, set[str]]:
    """For each named pattern that matches, the fields it matched in.

    `triggers` (lowercase words per pattern, one of which any match must contain) let most
    texts skip a pattern after a substring test, far cheaper than the regex scan itself.
    """
    hits: dict[str, set[str]] = {}
    for field, text in texts(record, fields):
        lowered = text.lower() if triggers else text
        for kind, pattern in patterns.items():
            words = triggers.get(kind) if triggers else None
            if words is not None and not any(word in lowered for word in words):
                continue
            if pattern.search(text):
                hits.setdefault(kind, set()).add(field)
    return hits


def flag_hits(hits: dict[str, set[str]], verb: str = "found") -> Score:
    """Pass when nothing was hit; otherwise fail naming the kinds and where (never the values)."""
    if not hits:
        return Score.verdict(True)
    kinds = sorted(hits)
    where = "; ".join(f"{kind} in {', '.join(sorted(hits[kind]))}" for kind in kinds)
    return Score.verdict(False, reason=f"{verb} {where}", label=",".join(kinds))


WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_STOP = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "but",
        "if",
        "then",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "you",
        "your",
        "we",
        "our",
        "they",
        "their",
        "i",
        "me",
        "my",
        "he",
        "she",
        "his",
        "her",
        "them",
        "can",
        "could",
        "will",
        "would",
        "should",
        "may",
        "might",
        "do",
        "does",
        "did",
        "not",
        "no",
        "yes",
        "have",
        "has",
        "had",
        "so",
        "than",
        "too",
        "very",
        "just",
        "about",
        "what",
        "which",
        "who",
        "whom",
        "how",
        "when",
        "where",
        "why",
        "there",
        "here",
        "into",
        "over",
        "also",
        "any",
        "all",
        "some",
        "more",
        "most",
    ]
)


def content_words(text: str) -> set[str]:
    return {w for w in WORD.findall(text.lower()) if len(w) > 2 and w not in _STOP}
