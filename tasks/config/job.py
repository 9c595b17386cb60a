"""The job config: one pydantic model, the flow's parameter, editable in the Prefect UI."""

import os
import re
from collections.abc import Collection, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from evaluators.base import Cost, Evaluator
from evaluators.durations import Duration
from evaluators.errors import InvalidEvaluatorParams, UnknownEvaluator, describe_validation_error
from evaluators.heuristics.unit_checks import UnitEvaluator
from evaluators.judges.breaker import BreakerPolicy
from evaluators.judges.client import JudgeSettings
from evaluators.judges.limits import ModelLimits
from evaluators.judges.pricing import Price
from evaluators.records import canonical_fields
from evaluators.registry import build, evaluator_class
from tasks.config.expectations import ExpectationSpec, build_expectation
from tasks.config.sql_policy import check_postgres_query
from tasks.errors import ConfigError
from tasks.safe_yaml import load_yaml

PayloadFormat = Literal["canonical", "openai_chat", "anthropic_messages", "otel_genai"]
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_DEPLOYMENT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

#: Payload slots each non-canonical format reads, besides `id` and `ts`.
PAYLOAD_SLOTS: dict[str, tuple[str, ...]] = {
    "canonical": (),
    "openai_chat": ("request", "response"),
    "anthropic_messages": ("request", "response"),
    "otel_genai": ("attributes",),
}
#: Payload columns a format reads when the source maps them (an OTel span's status).
OPTIONAL_SLOTS: dict[str, tuple[str, ...]] = {"otel_genai": ("status_code", "status_message")}
#: The money and count ceilings a config may set: what the ledger's numeric columns and a day of
#: judging can hold. Anything larger is a typo (or an attack on the cap), not a budget.
#: Checks keep their scores under this deployment prefix (never a production deployment).
EXPERIMENT_PREFIX = "experiment-"
MAX_USD = 1_000_000.0
MAX_CALLS = 100_000_000

FilterValue = str | int | float | bool


def check_identifier(value: str, what: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(
            f"{what} {value!r} is not a plain SQL identifier "
            "(letters, digits and _, not starting with a digit, at most 63 characters)"
        )
    return value


def check_source_query(query: str) -> str:
    """A `query:` is one side-effect-free read, decided on Postgres's parse tree
    (tasks/config/sql_policy.py)."""
    return check_postgres_query(query)


DEFAULT_URL_ENVS = ("ASSAY_WAREHOUSE_URL",)


def allowed_url_envs(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The variables (or `secret://BLOCK`s) the operator lets `source.url_env` name:
    `ASSAY_SOURCE_URL_ENVS`, comma separated; unset, ASSAY_WAREHOUSE_URL only."""
    env = os.environ if env is None else env
    listed = env.get("ASSAY_SOURCE_URL_ENVS")
    if listed is None:
        return DEFAULT_URL_ENVS
    return tuple(entry.strip() for entry in listed.split(",") if entry.strip())


def check_url_env(name: str, env: Mapping[str, str] | None = None) -> str:
    """`name` if a config may read the warehouse it points at; ValueError otherwise (a config
    must not read whatever database URL the worker's environment happens to hold)."""
    allowed = allowed_url_envs(env)
    if name not in allowed:
        raise ValueError(
            f"url_env {name!r} is not one the operator allows (allowed: {', '.join(allowed)}): "
            "add it to ASSAY_SOURCE_URL_ENVS to allow it"
        )
    return name


class FeedbackValues(BaseModel):
    """How the feedback column's own values read: the values meaning positive, negative and
    neutral end-user feedback, compared as text without case (`1`, `-1`, `true`, `up`, ...).
    The words positive/negative/neutral always read as themselves; any other value stays as it
    is, so the data contract quarantines it with the value shown."""

    model_config = ConfigDict(extra="forbid")

    positive: list[FilterValue] = Field(default_factory=list, max_length=100)
    negative: list[FilterValue] = Field(default_factory=list, max_length=100)
    neutral: list[FilterValue] = Field(default_factory=list, max_length=100)

    def as_text(self) -> dict[str, list[str]]:
        """Feedback -> the values that mean it, as the lower-case text a column casts to."""

        def text(value: FilterValue) -> str:
            return str(value).lower()  # True -> "true", as Postgres casts a boolean

        return {
            meaning: sorted({meaning, *(text(v) for v in values)})
            for meaning, values in (
                ("positive", self.positive), ("negative", self.negative),
                ("neutral", self.neutral),
            )
        }  # fmt: skip


class SourceConfig(BaseModel):
    """Where the logs are and how to read them. Names are validated; values are bound."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    url_env: str | None = Field(
        default=None,
        description="Name of the env var holding the warehouse URL (default ASSAY_WAREHOUSE_URL).",
    )
    table: str | None = Field(
        default="assay.llm_logs", description="`table` or `schema.table` to read."
    )
    query: str | None = Field(
        default=None, description="A SELECT to read instead of a table (wrapped as a subquery)."
    )
    format: PayloadFormat = Field(default="canonical", description="Shape of the payload.")
    columns: dict[str, str | None] = Field(
        default_factory=dict,
        description="Canonical field or payload slot -> source column (null drops a field).",
    )
    filters: dict[str, FilterValue | list[FilterValue]] = Field(
        default_factory=dict, description="Source column -> value (or list of values) to keep."
    )
    feedback_values: FeedbackValues | None = Field(
        default=None,
        description="What the feedback column's values mean (thumbs as 1/-1, booleans, "
        "ratings): read as positive/negative/neutral.",
    )
    lag: Duration = Field(
        default=timedelta(minutes=5), description="Skip logs younger than this (late rows)."
    )
    initial_lookback: Duration = Field(
        default=timedelta(days=1), description="How far back the very first run starts."
    )
    page_size: int = Field(default=5000, ge=10, le=100_000, description="Rows per keyset page.")
    statement_timeout: Duration = Field(
        default=timedelta(minutes=5),
        ge=timedelta(seconds=1),
        le=timedelta(hours=1),
        description="Longest one warehouse read may run (it runs READ ONLY).",
    )

    @field_validator("url_env")
    @classmethod
    def _listed_url_env(cls, value: str | None) -> str | None:
        return None if value is None else check_url_env(value)

    @field_validator("table")
    @classmethod
    def _table_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = value.split(".")
        if len(parts) > 2:
            raise ValueError(f"table {value!r} must be `table` or `schema.table`")
        for part in parts:
            check_identifier(part, "table name part")
        return value

    @field_validator("query")
    @classmethod
    def _plain_select(cls, value: str | None) -> str | None:
        return None if value is None else check_source_query(value)

    @field_validator("filters")
    @classmethod
    def _filter_columns(cls, value: dict[str, Any]) -> dict[str, Any]:
        for column in value:
            check_identifier(column, "filter column")
        return value

    @model_validator(mode="after")
    def _table_or_query(self) -> "SourceConfig":
        if self.query is not None:
            self.table = None
        if self.table is None and self.query is None:
            raise ValueError("source needs a `table` or a `query`")
        allowed = {*canonical_fields(), *PAYLOAD_SLOTS[self.format],
                   *OPTIONAL_SLOTS.get(self.format, ())}  # fmt: skip
        for slot, column in self.columns.items():
            if slot not in allowed:
                raise ValueError(
                    f"columns: {slot!r} is not a canonical field or a {self.format} payload slot"
                )
            if column is not None:
                check_identifier(column, f"column for {slot!r}")
        mapping = self.column_mapping()
        for required in ("id", "ts", *PAYLOAD_SLOTS[self.format]):
            if required not in mapping:
                raise ValueError(f"columns: {required!r} must map to a source column")
        return self

    def column_mapping(self) -> dict[str, str]:
        """Slot -> source column, defaults filled in for the format."""
        if self.format == "canonical":
            defaults = {field: field for field in canonical_fields()}
        else:
            defaults = {slot: slot for slot in ("id", "ts", *PAYLOAD_SLOTS[self.format])}
        merged: dict[str, str | None] = {**defaults, **self.columns}
        return {slot: column for slot, column in merged.items() if column is not None}

    def required_slots(self) -> tuple[str, ...]:
        return ("id", "ts", "prompt") if self.format == "canonical" else (
            "id", "ts", *PAYLOAD_SLOTS[self.format]
        )  # fmt: skip

    def fitted(self, available: Collection[str]) -> "SourceConfig":
        """This source fitted to the columns it really has: a canonical field left to its
        default (a same-named column) is dropped when there is no such column; a column the
        config names (or a required field's default) that is missing is one ConfigError listing
        every missing column and the fix."""
        named = {slot for slot, column in self.columns.items() if column is not None}
        missing, dropped = [], []
        for slot, column in self.column_mapping().items():
            if column in available:
                continue
            if slot in named or slot in self.required_slots():
                missing.append(f"{slot} -> {column}")
            else:
                dropped.append(slot)
        missing += [f"filter on {c}" for c in self.filters if c not in available]
        if missing:
            where = self.table or "the source query"
            raise ConfigError(
                f"{where} has no column for: {', '.join(missing)}. Map each field to a column "
                "it has under source.columns (e.g. `prompt: user_input`), or set an optional "
                f"field to null to leave it out. Its columns: {', '.join(sorted(available))}"
                if available
                else f"{where} does not exist or has no columns this role can read"
            )
        return self.model_copy(update={"columns": {**self.columns, **dict.fromkeys(dropped)}})

    def table_parts(self) -> tuple[str | None, str]:
        assert self.table is not None
        schema, _, name = self.table.rpartition(".")
        return schema or None, name


#: Judge settings a job may give beside `params`, as DESIGN's job config lists them.
JUDGE_SHORTCUTS = ("model", "fallbacks", "api_base", "api_key_env")


class EvaluatorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(description="A registered evaluator (see `assay evaluators`).")
    params: dict[str, Any] = Field(default_factory=dict, description="The evaluator's params.")
    model: str | None = Field(
        default=None, description="Judge model (LLM judges only), e.g. openai/gpt-4o-mini."
    )
    fallbacks: list[str | dict[str, Any]] | None = Field(
        default=None, description="Judge models tried in order when the primary keeps failing."
    )
    api_base: str | None = Field(default=None, description="Judge endpoint base URL.")
    api_key_env: str | None = Field(default=None, description="Env var with the judge API key.")

    def effective_params(self) -> dict[str, Any]:
        shortcuts = {k: getattr(self, k) for k in JUDGE_SHORTCUTS if getattr(self, k) is not None}
        return {**self.params, **shortcuts}

    def build(self) -> "Evaluator | UnitEvaluator":
        """The evaluator, of logs or of sessions and traces, from the one registry."""
        cls = evaluator_class(self.name)
        # Judge shortcuts (model, api_base, ...) go to judges; `_builds` refuses them for free
        # evaluators with a clearer message than "extra inputs".
        evaluator = build(
            self.name, self.effective_params() if cls.cost is Cost.PAID else self.params
        )
        assert isinstance(evaluator, Evaluator | UnitEvaluator)
        return evaluator

    @model_validator(mode="after")
    def _builds(self) -> "EvaluatorConfig":
        try:
            evaluator = self.build()
        except (UnknownEvaluator, InvalidEvaluatorParams) as exc:
            raise ValueError(str(exc)) from None
        given = [k for k in JUDGE_SHORTCUTS if getattr(self, k) is not None]
        if given and evaluator.cost is not Cost.PAID:
            raise ValueError(
                f"{', '.join(given)} only apply to LLM judges; {self.name!r} is a free evaluator"
            )
        return self


Metric = Literal[
    "pass_rate",
    "mean",
    "error_rate",
    "p5",
    "p10",
    "p25",
    "p50",
    "p75",
    "p90",
    "p95",
    "kappa",
    "judge_accuracy",
]
#: Metrics measured against human labels (judge drift), not over a run's scores.
AGREEMENT_METRICS = ("kappa", "judge_accuracy")
SegmentBy = Literal["model", "provider", "prompt_slug", "topic", "customer_id", "environment"]
Priority = Literal["flagged", "negative_feedback", "provider_error"]
#: Free evaluators whose failure makes a log "flagged" for priority judging.
FLAGGING_EVALUATORS = ("pii", "secrets", "prompt_injection", "refusal", "json_valid")


class SamplingConfig(BaseModel):
    """Which logs paid evaluators judge. Free evaluators always see every log."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    rate: float = Field(
        default=1.0, ge=0.0, le=1.0, description="Share of logs each paid evaluator judges."
    )
    seed: str = Field(
        default="assay",
        min_length=1,
        max_length=100,
        description="Hash seed: the same seed picks the same logs on reruns and backfills.",
    )
    stratify_by: list[SegmentBy] = Field(
        default_factory=list,
        description="Segment columns whose every combination gets at least min_per_stratum.",
    )
    min_per_stratum: int = Field(
        default=0, ge=0, le=10_000, description="Minimum judged logs per stratum and batch."
    )
    priority: list[Priority] = Field(
        default_factory=list,
        description="Judge these first, beyond the random sample: logs failing a free check "
        "(flagged), with negative feedback, or with a provider error.",
    )
    dedupe: bool = Field(
        default=True,
        description="Judge identical (prompt, response, context) once per evaluator version.",
    )


class BudgetConfig(BaseModel):
    """Spend policy for paid evaluators: hard caps, enforced with a ledger in Postgres."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    max_usd_per_run: float | None = Field(
        default=None, ge=0, le=MAX_USD, description="Cap per run."
    )
    max_usd_per_day: float | None = Field(
        default=None,
        ge=0,
        le=MAX_USD,
        description="Cap per deployment and UTC day, shared by all runs.",
    )
    max_calls_per_run: int | None = Field(
        default=None, ge=0, le=MAX_CALLS, description="Judge calls per run."
    )
    expected_output_tokens: int = Field(
        default=150, ge=1, le=1_000_000, description="Output tokens a verdict usually takes."
    )
    token_margin: float = Field(
        default=0.1,
        ge=0,
        le=2,
        description="Extra share of counted input tokens reserved (tokenizers differ).",
    )
    prices: dict[str, Price] = Field(
        default_factory=dict,
        description="Judge model -> price per million tokens, overriding litellm's price map.",
    )

    @property
    def capped(self) -> bool:
        return any(
            cap is not None
            for cap in (self.max_usd_per_run, self.max_usd_per_day, self.max_calls_per_run)
        )


class JudgePolicy(BaseModel):
    """How judges are called: limits per model, the circuit breaker."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    default: ModelLimits = Field(
        default_factory=ModelLimits, description="Limits for judge models not listed in `models`."
    )
    models: dict[str, ModelLimits] = Field(
        default_factory=dict, description="Judge model string -> its limits."
    )
    breaker: BreakerPolicy = Field(default_factory=BreakerPolicy)


def default_evaluators() -> list[EvaluatorConfig]:
    names = ("pii", "secrets", "prompt_injection", "refusal", "length", "latency_slo", "cost_limit")
    return [EvaluatorConfig(name=name) for name in names]


class QualityConfig(BaseModel):
    """The data contract every batch of logs is checked against before it is evaluated."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    max_invalid_fraction: float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description="Fail the run (nothing judged, watermark kept) when a batch has more "
        "invalid rows than this.",
    )
    min_batch_rows: int = Field(
        default=20,
        ge=1,
        description="Batches smaller than this are judged by the run's cumulative fraction.",
    )
    future_skew: Duration = Field(
        default=timedelta(minutes=5), description="How far in the future a timestamp may be."
    )
    max_text_chars: int = Field(
        default=1_000_000, ge=1, le=100_000_000, description="Longest prompt or response accepted."
    )
    max_tokens: int = Field(
        default=2_000_000, ge=1, le=2**31 - 1, description="Largest token count accepted."
    )
    max_latency_ms: int = Field(
        default=3_600_000, ge=1, le=2**31 - 1, description="Largest latency accepted."
    )
    max_cost_usd: float = Field(
        default=100.0, gt=0, le=MAX_USD, description="Largest logged cost accepted."
    )
    allowed_models: list[str] | None = Field(
        default=None, description="When set, logs from any other model are invalid."
    )
    expect_traffic: bool = Field(
        default=False, description="Report a run that finds no logs at all as a batch failure."
    )
    empty_response: Literal["quarantine", "evaluate"] = Field(
        default="quarantine",
        description="A successful call with an empty (or missing) response: quarantine it as "
        "a logging error, or evaluate it as the real, failing output it may be (quarantining "
        "real empty answers flatters the quality of the model that gives them).",
    )
    expectations: list[ExpectationSpec] = Field(
        default_factory=list, description="Extra GX expectations for this deployment."
    )

    @field_validator("expectations")
    @classmethod
    def _known_to_gx(cls, value: list[ExpectationSpec]) -> list[ExpectationSpec]:
        if value:
            for spec in value:
                build_expectation(spec.type, spec.kwargs, spec.description)
        return value


class ThresholdRule(BaseModel):
    """Alert when `metric op value` holds for an evaluator (per segment with `by`)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    evaluator: str = Field(description="Evaluator (score) name, e.g. faithfulness or rubric:tone.")
    metric: Metric = Field(default="pass_rate", description="What is compared.")
    op: Literal["<", "<=", ">", ">="] = Field(
        default="<", description="Alert when metric op value."
    )
    value: float = Field(description="The threshold.")
    by: SegmentBy | None = Field(default=None, description="Check each segment separately.")
    min_samples: int | None = Field(default=None, ge=1, description="Default: alerts.min_samples.")
    confidence: float | None = Field(
        default=None, gt=0.5, lt=1, description="Default: alerts.confidence."
    )
    mode: Literal["ci", "raw"] = Field(
        default="ci",
        description="ci: breach only when the whole confidence interval is past the threshold; "
        "raw: compare the point estimate.",
    )
    label_window: Duration = Field(
        default=timedelta(days=30),
        description="kappa / judge_accuracy: the human labels of logs judged within this long.",
    )

    @model_validator(mode="after")
    def _agreement_has_no_segments(self) -> "ThresholdRule":
        if self.metric in AGREEMENT_METRICS and self.by is not None:
            raise ValueError(f"{self.metric} is measured over all labels: `by` does not apply")
        return self


class AlertsConfig(BaseModel):
    """Slack alerts and run summaries for this deployment."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    channel: str | None = Field(
        default=None, description="Slack channel (default ASSAY_SLACK_CHANNEL)."
    )
    summary: Literal["always", "on_breach", "digest", "never"] = Field(
        default="always",
        description="When to post a run summary: after every run, only with open breaches, "
        "once a day from the `digest` flow, or never. Breaches are posted regardless.",
    )
    cooldown: Duration = Field(
        default=timedelta(hours=6), description="Remind about an open breach at most this often."
    )
    min_samples: int = Field(default=30, ge=1, description="Fewer scores: no verdict.")
    confidence: float = Field(default=0.95, gt=0.5, lt=1, description="Confidence of intervals.")
    max_judge_error_rate: float = Field(
        default=0.1, ge=0, le=1, description="Above this, say the judge could not measure."
    )
    rules: list[ThresholdRule] = Field(default_factory=list)


class SessionEnd(BaseModel):
    """A logged marker that a conversation is over (e.g. `column: event`, `values: [closed]`):
    the session is complete when the marker arrives, without waiting for `idle`."""

    model_config = ConfigDict(extra="forbid")

    column: str = Field(description="A source column (not a canonical field) holding the marker.")
    values: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=20
    )

    @field_validator("column")
    @classmethod
    def _column(cls, value: str) -> str:
        return check_identifier(value, "sessions.end.column")


class SessionsConfig(BaseModel):
    """When a conversation (turns sharing `session_id`) or an agent run (steps sharing
    `trace_id`) is complete and evaluated as a unit by the session and trace evaluators the job
    lists (turn_count, tool_loop, conversation_resolved, ...)."""

    model_config = ConfigDict(extra="forbid")

    idle: Duration = Field(
        default=timedelta(minutes=30),
        description="A unit is complete once this long has passed after its last item.",
    )
    lookback: Duration = Field(
        default=timedelta(days=1),
        description="How far back a run looks for units that completed (by their last item).",
    )
    end: SessionEnd | None = Field(
        default=None, description="A logged marker that ends a session before `idle`."
    )
    end_on_root_span: bool = Field(
        default=True,
        description="A trace is complete once its root span (no parent) has been logged: "
        "exporters send a span when it ends, and the root ends last.",
    )
    max_steps: int = Field(
        default=500, ge=1, le=100_000,
        description="A session or trace with more items is quarantined unread.",
    )  # fmt: skip
    rescore_late: bool = Field(
        default=False,
        description="Evaluate a unit again (its next revision) when items arrive after it was "
        "evaluated; otherwise late items are counted and reported only.",
    )


class EvalJob(BaseModel):
    """Everything one deployment needs: source, evaluators and (in later sections) policy."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    deployment: str = Field(description="Stable name; keys watermarks, scores and alerts.")
    source: SourceConfig = Field(default_factory=SourceConfig)
    evaluators: list[EvaluatorConfig] = Field(default_factory=default_evaluators, min_length=1)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    limits: JudgePolicy = Field(default_factory=JudgePolicy)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    sessions: SessionsConfig = Field(default_factory=SessionsConfig)
    gate: list[ThresholdRule] = Field(
        default_factory=list,
        description="Rules `assay check` gates a dataset on (default: the alert rules, so a "
        "green check means the production alert stays quiet).",
    )

    @field_validator("deployment")
    @classmethod
    def _deployment_name(cls, value: str) -> str:
        if not _DEPLOYMENT.match(value):
            raise ValueError("deployment must be lowercase letters, digits, '-' or '_'")
        return value

    @field_validator("evaluators")
    @classmethod
    def _unique_names(cls, value: list[EvaluatorConfig]) -> list[EvaluatorConfig]:
        names = [e.build().score_name for e in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"evaluators listed twice: {', '.join(duplicates)}")
        return value

    def score_names(self) -> list[str]:
        """The `evaluator` column of this job's scores, in job order (a rubric: rubric:<id>)."""
        return [cfg.build().score_name for cfg in self.evaluators]

    def evaluator_aliases(self) -> dict[str, list[str]]:
        """Each name a person may use for an evaluator (registry name or score name) -> the
        score names it selects (`rubric` selects every rubric)."""
        aliases: dict[str, list[str]] = {}
        for cfg in self.evaluators:
            score_name = cfg.build().score_name
            for name in {cfg.name, score_name}:
                aliases.setdefault(name, []).append(score_name)
        return aliases

    @model_validator(mode="after")
    def _rules_name_evaluators(self) -> "EvalJob":
        names = set(self.score_names())
        for where, rules in (("alerts.rules", self.alerts.rules), ("gate", self.gate)):
            for rule in rules:
                if rule.evaluator not in names:
                    raise ValueError(
                        f"{where}: evaluator {rule.evaluator!r} is not in this job's "
                        f"evaluators ({', '.join(sorted(names))})"
                    )
        return self

    def judge_settings(self) -> JudgeSettings:
        return JudgeSettings(
            limits=self.limits.models,
            default_limits=self.limits.default,
            breaker=self.limits.breaker,
            prices=self.budget.prices,
            token_margin=self.budget.token_margin,
        )


def parse_job(data: dict[str, Any], origin: str = "config") -> EvalJob:
    try:
        return EvalJob.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{origin} is invalid: {describe_validation_error(exc)}") from None


def load_job(path: Path) -> EvalJob:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    data = load_yaml(text, str(path))
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level")
    return parse_job(data, origin=str(path))


def build_evaluators(job: EvalJob) -> list[Evaluator]:
    """The job's log evaluators, built from its config. Session and trace evaluators run on
    whole units (tasks/sessions/), not per log."""
    return [e for e in (cfg.build() for cfg in job.evaluators) if isinstance(e, Evaluator)]
