"""`python -m flows.cli`."""

from flows.cli import app

app()
