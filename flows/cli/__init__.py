"""The `assay` command line: one module per command group, all on one Typer app.

The groups register their commands as they are imported; `--help` lists them in this order.
"""

import os
import sys
from pathlib import Path


def _quiet_unless_verbose() -> None:
    """The `assay` command prints Assay's own output only: Prefect's and Great Expectations'
    log lines stay out of the console (they still reach the Prefect UI) unless `--verbose` (or
    ASSAY_VERBOSE=1). Set before Prefect is imported, which configures its logging then."""
    command = Path(sys.argv[0]).name
    if command not in ("assay", "__main__.py"):
        return  # imported by another program (tests, a notebook): its logging is its own
    if "--verbose" in sys.argv[1:] or os.environ.get("ASSAY_VERBOSE") == "1":
        return
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")


_quiet_unless_verbose()

# isort: off
from flows.cli import onboard  # noqa: E402, F401
from flows.cli import runs  # noqa: E402, F401
from flows.cli import analytics  # noqa: E402, F401
from flows.cli import ops  # noqa: E402, F401
from flows.cli import datasets  # noqa: E402, F401
from flows.cli import checks  # noqa: E402, F401
from flows.cli import labels  # noqa: E402, F401

# isort: on
from flows.cli.common import app, tidy_help  # noqa: E402

tidy_help(app)

__all__ = ["app"]
