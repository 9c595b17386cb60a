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
    # Judge slots are leased from Prefect global concurrency limits. Prefect 3.8.8 keeps leases
    # in the server's memory by default, which for the temporary server of a local run dies with
    # the process while the slot count persists: a killed local run would hold its slots
    # forever. On disk (under PREFECT_HOME) they outlive it, and the next run releases the
    # expired ones (tasks/budget/slots.py).
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": (
        "prefect.server.concurrency.lease_storage.filesystem"
    ),
    # ... and a run waiting for slots asks again every few seconds, not every 30.
    "PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS": "5",
}


def apply_offline_defaults() -> None:
    for key, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)


apply_offline_defaults()
