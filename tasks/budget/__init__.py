"""Sampling and money: the sample plan, dedupe, the spend ledger, estimates, judge slots."""
