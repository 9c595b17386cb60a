"""The synthetic warehouse of `make demo`."""
