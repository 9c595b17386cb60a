"""The spend ledger: hard caps per run and per deployment-day, shared by concurrent runs.

A judge call reserves its worst-case cost (counted input tokens plus a margin, and the whole
output budget, at the model's price) before it is sent; the actual cost from the response then
replaces the reservation. Each reservation is one call of `assay.reserve_spend` (migration
0006): a conditional UPDATE of the run row, then of the day row, in which Postgres re-checks
the caps on the locked rows. So concurrent runs never both pass a cap, and the sum of actual
spend never exceeds a cap as long as actual cost stays within the worst case reserved.
"""

import asyncio
import threading
import time
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from tasks.config import BudgetConfig
from tasks.sql import query


class Reservation(BaseModel):
    day: date
    amount_usd: float


class SpendReport(BaseModel):
    run_spent_usd: float = 0.0
    run_reserved_usd: float = 0.0
    run_calls: int = 0
    run_refused: int = 0
    day_spent_usd: float = 0.0
    max_usd_per_run: float | None = None
    max_usd_per_day: float | None = None
    max_calls_per_run: int | None = None


class Ledger:
    def __init__(
        self,
        engine: sa.Engine,
        deployment: str,
        run_id: str,
        budget: BudgetConfig,
        clock: Any = None,
    ) -> None:
        self.engine = engine
        self.deployment = deployment
        self.run_id = run_id
        self.budget = budget
        self.clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._raw: Any = None
        with engine.begin() as conn:
            conn.execute(
                sa.text(query("budget", "ensure_run")),
                {"run_id": run_id, "deployment": deployment},
            )

    def _keys(self, day: date) -> dict[str, Any]:
        return {"deployment": self.deployment, "day": day, "run_id": self.run_id}

    def reserve(self, amount_usd: float) -> Reservation | None:
        """Reserve `amount_usd` if every cap can still cover it; None when refused.

        One round trip: `assay.reserve_spend` checks the caps and takes the reservation in the
        server, as its own transaction, on a connection this ledger keeps in autocommit.
        """
        day = self.clock().date()
        b = self.budget
        params = {
            **self._keys(day),
            "amount": amount_usd,
            "max_calls": b.max_calls_per_run,
            "max_run": b.max_usd_per_run,
            "max_day": b.max_usd_per_day,
        }
        with self._lock:
            if self._raw is None:
                self._raw = self.engine.raw_connection()
                self._raw.driver_connection.autocommit = True
            driver = self._raw.driver_connection
            assert driver is not None
            taken = driver.execute(query("budget", "reserve_spend"), params).fetchone()
        return Reservation(day=day, amount_usd=amount_usd) if taken and taken[0] else None

    def close(self) -> None:
        with self._lock:
            if self._raw is not None:
                self._raw.driver_connection.autocommit = False
                self._raw.close()
                self._raw = None

    def settle(self, reservation: Reservation, actual_usd: float) -> None:
        self.settle_many([(reservation, actual_usd)])

    def settle_many(self, settled: list[tuple[Reservation, float]]) -> None:
        """Replace reservations by actual costs, in one transaction per batch."""
        per_day: dict[date, tuple[float, float]] = {}
        for reservation, actual in settled:
            reserved, spent = per_day.get(reservation.day, (0.0, 0.0))
            per_day[reservation.day] = (reserved + reservation.amount_usd, spent + actual)
        with self.engine.begin() as conn:  # run row, then day row: the order reserve uses
            for day, (reserved, actual) in sorted(per_day.items()):
                params = {**self._keys(day), "reserved": reserved, "actual": actual}
                conn.execute(sa.text(query("budget", "settle_run")), params)
                conn.execute(sa.text(query("budget", "settle_day")), params)

    def report(self) -> SpendReport:
        keys = self._keys(self.clock().date())
        with self.engine.connect() as conn:
            run = conn.execute(sa.text(query("budget", "run_spend")), keys).one_or_none()
            day = conn.execute(sa.text(query("budget", "day_spend")), keys).one_or_none()
        return SpendReport(
            run_spent_usd=run.spent_usd if run else 0.0,
            run_reserved_usd=run.reserved_usd if run else 0.0,
            run_calls=run.calls if run else 0,
            run_refused=run.refused if run else 0,
            day_spent_usd=day.spent_usd if day else 0.0,
            max_usd_per_run=self.budget.max_usd_per_run,
            max_usd_per_day=self.budget.max_usd_per_day,
            max_calls_per_run=self.budget.max_calls_per_run,
        )


class LedgerGate:
    """The judge runtime's `SpendGate` over a ledger (database calls off the event loop).

    Settlements are applied in small batches: until a batch is flushed, the ledger still holds
    the (larger) reservations, so the caps only ever look tighter, never looser.
    """

    def __init__(self, ledger: Ledger, batch: int = 32, max_delay_s: float = 0.25) -> None:
        self.ledger = ledger
        self.batch = batch
        self.max_delay_s = max_delay_s
        self._pending: list[tuple[Reservation, float]] = []
        self._oldest = 0.0

    async def reserve(self, model: str, amount_usd: float) -> Reservation | None:
        return await asyncio.to_thread(self.ledger.reserve, amount_usd)

    async def settle(self, reservation: Reservation | None, actual_usd: float) -> None:
        if reservation is None:
            return
        now = time.monotonic()
        if not self._pending:
            self._oldest = now
        self._pending.append((reservation, actual_usd))
        if len(self._pending) >= self.batch or now - self._oldest >= self.max_delay_s:
            await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.to_thread(self.ledger.settle_many, pending)

    async def close(self) -> None:
        await self.flush()
        self.ledger.close()
