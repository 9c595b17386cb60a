"""`--target prompt:FILE.yaml`: a prompt template and a litellm model, the "prompt A vs B"
experiment. The file is data: its placeholders are replaced, never evaluated.

    model: openai/gpt-4o-mini          # any litellm model string
    system: You answer from the policy passages only.
    template: |
      Passages:
      {context}
      Question: {input}
    temperature: 0
    max_tokens: 300
    # api_base / api_key_env: as for judges (a key goes only to a host the operator trusts)

The target's calls go through the run's judge runtime: the same limits, retries and spend
ledger as the judges, so the job's budget caps cover target and judge calls alike.
"""

import hashlib
import re
from pathlib import Path
from typing import Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from evaluators.errors import describe_validation_error
from evaluators.judges.client import Endpoint, JudgeRuntime
from evaluators.judges.keys import KeyEnvName, check_endpoint
from tasks.datasets.store import StoredItem
from tasks.errors import ConfigError
from tasks.experiments.answers import Answerer
from tasks.safe_yaml import load_yaml

PREFIX = "prompt:"
#: The only placeholders a template may hold; `{{` and `}}` are literal braces.
PLACEHOLDERS = ("input", "context")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
MAX_TEMPLATE_CHARS = 50_000


class PromptTarget(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    model: str = Field(min_length=3, max_length=200, description="litellm model string.")
    template: str = Field(min_length=1, max_length=MAX_TEMPLATE_CHARS)
    system: str | None = Field(default=None, max_length=MAX_TEMPLATE_CHARS)
    temperature: float = Field(default=0.0, ge=0, le=2)
    max_tokens: int = Field(default=512, ge=1, le=32_000)
    api_base: str | None = Field(default=None, max_length=500)
    api_key_env: KeyEnvName | None = None

    @model_validator(mode="after")
    def _key_goes_only_to_trusted_hosts(self) -> Self:
        check_endpoint(self.api_base, self.api_key_env)
        return self

    @field_validator("template", "system")
    @classmethod
    def _known_placeholders(cls, text: str | None) -> str | None:
        if text is None:
            return None
        unknown = sorted(
            {m.group(1) for m in _PLACEHOLDER.finditer(text) if m.group(1) is not None}
            - set(PLACEHOLDERS)
        )
        if unknown:
            raise ValueError(
                f"unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)}: a template "
                "may use {input} and {context}; write {{ and }} for literal braces"
            )
        return text

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(model=self.model, api_base=self.api_base, api_key_env=self.api_key_env)

    def messages(self, item: StoredItem) -> list[dict[str, Any]]:
        values = {
            "input": item.item.input,
            "context": "\n\n".join(item.item.context),
        }
        system = [{"role": "system", "content": fill(self.system, values)}] if self.system else []
        return [*system, {"role": "user", "content": fill(self.template, values)}]


def fill(template: str, values: dict[str, str]) -> str:
    """One pass over the template: a value's own braces are never read as placeholders."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        return values[match.group(1)]

    return _PLACEHOLDER.sub(replace, template)


def is_prompt(spec: str | None) -> bool:
    return spec is not None and spec.startswith(PREFIX)


def load_prompt(spec: str) -> tuple[PromptTarget, str]:
    """The prompt file's target and how the experiment records it (file name and content
    digest: an edited prompt is a new experiment, an unchanged one the same)."""
    path = Path(spec.removeprefix(PREFIX))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"--target {spec}: cannot read {path} ({getattr(exc, 'strerror', None) or exc})"
        ) from None
    data = load_yaml(text, str(path))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a prompt file is a mapping with model and template")
    try:
        target = PromptTarget.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe_validation_error(exc)}") from None
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return target, f"prompt:{path.name}@{digest} ({target.model})"


def prompt_answerer(prompt: PromptTarget, runtime: JudgeRuntime) -> Answerer:
    """The prompt as an answerer, called through the run's judge runtime (limits, retries,
    the spend ledger)."""

    async def ask(stored: StoredItem) -> dict[str, Any]:
        answer = await runtime.generate(
            prompt.endpoint, prompt.messages(stored), prompt.temperature, prompt.max_tokens
        )
        return {"output": answer.text, "latency_ms": answer.latency_ms,
                "cost_usd": answer.cost_usd, "model": answer.model}  # fmt: skip

    return ask
