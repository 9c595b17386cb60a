"""Storage: engines and migrations, named SQL, the page transaction, run records, rollups."""
