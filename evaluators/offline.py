"""Offline defaults applied before litellm, Hugging Face or Prefect are imported.

Assay must never reach the internet on its own: litellm fetches a price map at import,
token counters may ask Hugging Face, and Prefect and Great Expectations send telemetry.
`setdefault` keeps any value the operator set explicitly.
"""

import os

OFFLINE_DEFAULTS: dict[str, str] = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_TELEMETRY": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "false",
}


def apply_offline_defaults() -> None:
    for key, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)


apply_offline_defaults()
