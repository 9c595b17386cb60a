"""Write a first job file for a new deployment (`assay init`): commented, conservative, valid.

The text is built from plain values (column names are checked identifiers, the query is dumped
as a YAML string), then loaded back through `load_job` before anything is written.
"""

import json

from tasks.warehouse.mapping import MEANINGS, Proposal


def _yaml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid YAML scalar, quoted and escaped


def _wrapped(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width)


def job_yaml(deployment: str, table: str | None, query: str | None, proposal: Proposal) -> str:
    m = proposal.mapping
    source = f"  table: {table}\n" if table else f"  query: {_yaml_str(query or '')}\n"
    columns = "".join(
        f"    {field}: {column}{' ' * max(1, 24 - len(field) - len(column))}# {MEANINGS[field]}\n"
        for field, column in m.items()
    )
    feedback = ""
    if proposal.feedback_values:
        feedback = (
            "  # What your feedback column's values mean (compared as text, without case); any\n"
            "  # other value is quarantined with the value shown. Check them against your data.\n"
            "  feedback_values:\n"
            + "".join(
                f"    {meaning}: {json.dumps(values)}\n"
                for meaning, values in proposal.feedback_values.items()
            )
        )
    lag = "  lag: 5m                     # skip logs younger than this (still being written)\n"
    left_out = [f for f in MEANINGS if f not in m]
    dropped = (
        "    # left out, no matching column (add `FIELD: column` to map one):\n"
        + "".join(f"    #   {line}\n" for line in _wrapped(", ".join(left_out), 80))
        if left_out
        else ""
    )
    evaluators = [
        "  - name: pii               # personal data in the response (params: {fields: [...]})",
        "  - name: secrets           # API keys and credentials",
        "  - name: prompt_injection  # injection attempts in prompt, context or response",
    ]
    if "response" in m:
        evaluators += [
            "  - name: refusal           # the model refused or deflected",
            "  - name: length            # empty or runaway answers",
            "    params: {min: 1, max: 20000}",
        ]
    if "latency_ms" in m:
        evaluators += ["  - name: latency_slo", "    params: {max_ms: 10000}"]
    if "cost_usd" in m:
        evaluators += ["  - name: cost_limit", "    params: {max_usd: 0.10}"]
    if "session_id" in m:  # whole conversations, once each when complete (free)
        evaluators += [
            "  - name: repeated_question      # a user asking the same thing again (sessions)",
            "  - name: unanswered_final_turn  # the conversation ended on an unanswered turn",
            "  - name: turn_count             # conversations that go on and on",
        ]
    stratify = "  stratify_by: [prompt_slug]\n" if "prompt_slug" in m else ""
    rules = ['    - {evaluator: pii, metric: pass_rate, op: "<", value: 0.99}']
    if "response" in m:
        rules.append('    - {evaluator: refusal, metric: pass_rate, op: "<", value: 0.9}')
    return f"""# Written by `assay init {deployment}`. Every section is explained in docs/config.md.
deployment: {deployment}

# Where the logs are. Assay reads them in READ ONLY transactions, page by page, in ts order.
source:
{source}  # Canonical field -> your column. A field whose column is missing is left out; a
  # column named here must exist (`assay doctor` checks). Unmapped columns are ignored.
  columns:
{columns}{dropped}{feedback}{lag}
  initial_lookback: 1d        # how far back the first run starts

# Free evaluators run on every log (deterministic, no network, no money).
evaluators:
{chr(10).join(evaluators)}
  # An LLM judge runs on a sample and costs money; turn one on when the free checks work:
  # - name: answer_relevance
  #   model: openai/gpt-4o-mini      # any litellm model string
  #   api_key_env: OPENAI_API_KEY

# Which logs the judges see: a deterministic sample (the same logs on every rerun).
sampling:
  rate: 0.05                  # 5% of logs per judge
  seed: {deployment}-v1
{stratify}  min_per_stratum: 10
  priority: [flagged]         # always judge logs a free check flagged

# Hard caps on judge spend: a run stops judging at the cap (the rest is counted as unscored).
budget:
  max_usd_per_run: 1.0
  max_usd_per_day: 10.0
  max_calls_per_run: 500

# How judges are called (per model under `models:`).
limits:
  default: {{concurrency: 4, rpm: 60, timeout_s: 60, retries: 3}}

# The data contract: logs that break it are quarantined with the reason, never dropped.
quality:
  max_invalid_fraction: 0.2   # more than this in one page stops the run (a broken pipeline)
  expect_traffic: false       # true: a window with no logs at all is an alert

# Alert rules (posted to Slack when ASSAY_SLACK_BOT_TOKEN and a channel are set).
alerts:
  min_samples: 30
  rules:
{chr(10).join(rules)}
"""
