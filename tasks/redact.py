"""One redaction function for every string that leaves a run.

Scores, run records, quarantine rows, the outbox, Slack, artifacts and log lines all pass
`redact()`: it masks the values of every configured secret (whatever their format: database and
warehouse URLs and their passwords, the Slack token and webhook, provider and judge keys) and the
common key shapes (`sk-…`, `xox…`, AWS, GitHub, Google keys, `Bearer …`).

The secrets are read from the environment, re-read at most every few seconds (and at the start
of every run), so the per-string cost is one precompiled regex search.
"""

import logging
import os
import re
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

from evaluators.heuristics.secrets import SECRET_PATTERNS
from evaluators.judges.keys import PROVIDER_KEY_VARS, key_prefix

MASK = "[redacted]"
#: Settings that hold secrets (URLs carry passwords).
SECRET_SETTINGS = (
    "ASSAY_DATABASE_URL",
    "ASSAY_WAREHOUSE_URL",
    "ASSAY_SLACK_BOT_TOKEN",
    "ASSAY_SLACK_WEBHOOK_URL",
    "PREFECT_API_KEY",
    "PREFECT_SERVER_DATABASE_CONNECTION_URL",
)
_SECRET_NAME = re.compile(r"(?:_API_KEY|_TOKEN|_SECRET|_PASSWORD|_ACCESS_KEY)$")
#: Shorter values are not masked: they would mask ordinary words ("x", "test", "no-key").
MIN_SECRET_CHARS = 8
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+(@)")
_REFRESH_S = 2.0


def secret_values(env: dict[str, str] | Any = None) -> list[str]:
    """The values to mask, longest first (so a URL goes before the password inside it)."""
    env = os.environ if env is None else env
    prefix = key_prefix(env)
    values: set[str] = set()
    for name, value in env.items():
        if not value:
            continue
        if (
            name in SECRET_SETTINGS
            or name in PROVIDER_KEY_VARS
            or name.startswith(prefix)
            or _SECRET_NAME.search(name)
        ):
            values.add(value)
            if "://" in value:
                password = urlsplit(value).password
                if password:
                    values.update({password, unquote(password)})
    return sorted((v for v in values if len(v) >= MIN_SECRET_CHARS), key=len, reverse=True)


#: Literal text every key shape in SECRET_PATTERNS starts with: most strings contain none of
#: them, and a substring test is far cheaper than the patterns (this runs on every score reason).
_SHAPE_HINTS = ("sk-", "AKIA", "ASIA", "xox", "gh", "AIza", "-----BEGIN")
_SHAPES = re.compile("|".join(p.pattern for p in SECRET_PATTERNS.values()))


class Redactor:
    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = tuple(secrets)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        if any(hint in text for hint in _SHAPE_HINTS):
            text = _SHAPES.sub(MASK, text)
        if "://" in text and "@" in text:
            text = _URL_PASSWORD.sub(rf"\1{MASK}\2", text)
        lowered = text.lower()
        if "bearer" in lowered or "basic" in lowered:
            text = _BEARER.sub(rf"\1 {MASK}", text)
        return text


_current: Redactor | None = None
_read_at = 0.0
#: Secrets read from elsewhere than the environment (Prefect Secret blocks).
_remembered: set[str] = set()


def remember_secret(value: str) -> None:
    """Mask `value` from now on (a secret read from a Secret block, not the environment)."""
    global _current
    if len(value) >= MIN_SECRET_CHARS and value not in _remembered:
        _remembered.add(value)
        _current = None  # rebuilt with it on the next call


def refresh() -> Redactor:
    """Re-read the secrets now (a run calls this when it starts)."""
    global _current, _read_at
    secrets = sorted({*secret_values(), *_remembered}, key=len, reverse=True)
    _current, _read_at = Redactor(secrets), time.monotonic()
    return _current


def redact(text: str) -> str:
    """`text` with every configured secret and key-shaped string masked."""
    if not text:
        return text
    redactor = _current
    if redactor is None or time.monotonic() - _read_at > _REFRESH_S:
        redactor = refresh()
    return redactor(text)


def redact_optional(text: str | None) -> str | None:
    return None if text is None else redact(text)


class RedactingFilter(logging.Filter):
    """Masks secrets in every record a handler emits (Prefect's API handler included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and redact(str(exc)) != str(exc):
            # The traceback would print the secret: keep only the masked message.
            record.exc_info, record.exc_text = None, None
            record.msg = f"{record.msg} ({type(exc).__name__}: {redact(str(exc))})"
        return True


def install_log_redaction(names: Iterable[str] = ("", "prefect", "prefect.flow_runs")) -> None:
    """Add the filter to every handler of these loggers, once."""
    for name in names:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())
