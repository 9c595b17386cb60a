"""The `assay` command line: one module per command group, all on one Typer app.

The groups register their commands as they are imported; `--help` lists them in this order.
"""

# isort: off
from flows.cli import onboard  # noqa: F401
from flows.cli import runs  # noqa: F401
from flows.cli import analytics  # noqa: F401
from flows.cli import ops  # noqa: F401
from flows.cli import datasets  # noqa: F401
from flows.cli import checks  # noqa: F401
from flows.cli import labels  # noqa: F401

# isort: on
from flows.cli.common import app

__all__ = ["app"]
