"""Deterministic sampling for paid evaluators: the same seed picks the same logs, every time.

Inclusion is a stable hash of (seed, evaluator, log id) compared with the rate, so reruns, retries
and backfills agree, and a higher rate keeps every log a lower rate kept (nested samples).
"""

import hashlib

_SCALE = float(2**64)


def inclusion_point(seed: str, evaluator: str, log_id: str) -> float:
    """A uniform number in [0, 1) fixed for this seed, evaluator and log."""
    digest = hashlib.blake2b(f"{seed}\0{evaluator}\0{log_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def sampled(seed: str, evaluator: str, log_id: str, rate: float) -> bool:
    return rate >= 1.0 or inclusion_point(seed, evaluator, log_id) < rate


def inclusion_weight(rate: float) -> float:
    """How many logs of the population each sampled score stands for (Horvitz-Thompson)."""
    return 1.0 / rate if rate > 0 else 0.0
