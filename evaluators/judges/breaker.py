"""A per-run circuit breaker per judge model: stop paying for calls during an outage."""

from collections import deque

from pydantic import BaseModel, ConfigDict, Field


class BreakerPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    window: int = Field(default=20, ge=2, le=10_000, description="Judge calls looked back on.")
    error_rate: float = Field(
        default=0.5, gt=0, le=1, description="Trip when this share of the window failed."
    )


class CircuitBreaker:
    """Trips once the failure share of the last `window` calls reaches `error_rate`; stays open."""

    def __init__(self, model: str, policy: BreakerPolicy) -> None:
        self.model = model
        self.policy = policy
        self._recent: deque[bool] = deque(maxlen=policy.window)
        self.calls = 0
        self.failures = 0
        self.tripped_reason: str | None = None

    @property
    def open(self) -> bool:
        return self.tripped_reason is not None

    def record(self, ok: bool, problem: str | None = None) -> None:
        self.calls += 1
        self.failures += 0 if ok else 1
        self._recent.append(ok)
        if self.open or len(self._recent) < self.policy.window:
            return
        failed = self._recent.count(False)
        if failed / len(self._recent) >= self.policy.error_rate:
            self.tripped_reason = (
                f"circuit open for {self.model}: {failed} of the last {len(self._recent)} calls "
                f"failed (last: {problem or 'unknown'})"
            )
