"""Credential leaks: API-key and private-key shapes in prompts or responses."""

import re
from typing import ClassVar

from evaluators.base import Cost, EvalContext, Evaluator, Score
from evaluators.heuristics.text import TextField, flag_hits, pattern_hits
from evaluators.records import LogRecord
from evaluators.registry import registered

SECRET_PATTERNS: dict[str, re.Pattern[str]] = {
    "openai_key": re.compile(r"\bsk-(?:proj-|live-|test-)?[A-Za-z0-9_-]{20,}"),
    "aws_access_key": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "slack_token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "github_token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "google_api_key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "private_key": re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----"),
}


@registered
class Secrets(Evaluator):
    """Flags credentials (OpenAI, AWS, Slack, GitHub, Google keys, PEM private keys)."""

    name: ClassVar[str] = "secrets"
    version: ClassVar[str] = "1"
    cost: ClassVar[Cost] = Cost.FREE

    fields: tuple[TextField, ...] = ("prompt", "response", "context")

    async def evaluate(self, record: LogRecord, ctx: EvalContext) -> Score:
        return flag_hits(pattern_hits(record, self.fields, SECRET_PATTERNS), "found")
