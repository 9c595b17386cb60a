"""The data contract: the GX suite every batch is checked against, and the quarantine."""
