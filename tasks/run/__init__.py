"""The one run engine. Every run (schedule, `assay run`, a backfill chunk, a quarantine replay,
a dataset check, the session and trace pass) goes through `lifecycle.run_lifecycle`; its `Kind`
(`kinds.py`) alone decides what differs. A page is `page.py` (pure of Prefect) under the task
shell of `shell.py`; `judging.py` assembles the judge runtime, `probes.py` reads around the
window, `tally.py` counts, `details.py` and `artifacts.py` report."""
