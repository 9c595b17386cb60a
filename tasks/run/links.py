"""Links to a flow run in the Prefect UI, for Slack messages and summaries."""

from prefect.runtime import flow_run


def flow_run_link_for(flow_run_id: str | None) -> str | None:
    """A flow run in the Prefect UI, when a UI URL is known (PREFECT_UI_URL)."""
    from prefect.settings import PREFECT_UI_URL

    base = PREFECT_UI_URL.value()
    return f"{base.rstrip('/')}/runs/flow-run/{flow_run_id}" if base and flow_run_id else None


def flow_run_link() -> str | None:
    return flow_run_link_for(flow_run.id)
