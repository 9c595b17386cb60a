"""The spend ledger: hard caps per run and per deployment-day, shared by concurrent runs.

A judge call reserves its worst-case cost (counted input tokens plus a margin, and the whole
output budget, at the model's price) before it is sent; the actual cost from the response then
replaces the reservation. Each reservation is one call of `assay.reserve_spend` (migration
0006): a conditional UPDATE of the run row, then of the day row, in which Postgres re-checks
the caps on the locked rows. So concurrent runs never both pass a cap, and the sum of actual
spend never exceeds a cap as long as actual cost stays within the worst case reserved.
"""

import asyncio
import contextlib
import threading
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from evaluators.errors import GateUnavailable
from tasks.config import BudgetConfig
from tasks.store.db import on_fresh_connections
from tasks.store.sql import query

#: Tries to reach the ledger's database before a call is given up as unreachable.
CONNECT_ATTEMPTS = 4


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
        taken = self._with_connection(
            lambda driver: driver.execute(query("budget", "reserve_spend"), params).fetchone()
        )
        return Reservation(day=day, amount_usd=amount_usd) if taken and taken[0] else None

    def _with_connection(self, work: Any) -> Any:
        """`work(driver)` on the ledger's own autocommit connection, reconnecting (a bounded
        number of times, with backoff) when the connection was dropped or terminated. A
        reservation is one statement in autocommit: it either happened or it did not."""

        def once() -> Any:
            with self._lock:
                if self._raw is None:
                    self._raw = self.engine.raw_connection()
                    self._raw.driver_connection.autocommit = True
                return work(self._raw.driver_connection)

        return on_fresh_connections(
            once,
            CONNECT_ATTEMPTS,
            lambda problem: GateUnavailable(f"the spend ledger is unreachable ({problem})"),
            on_drop=self._discard_locked,
        )

    def _discard_locked(self) -> None:
        with self._lock:
            self._discard()

    def _discard(self) -> None:
        raw, self._raw = self._raw, None
        if raw is not None:
            with contextlib.suppress(Exception):
                raw.invalidate()

    def close(self) -> None:
        with self._lock:
            if self._raw is not None:
                with contextlib.suppress(Exception):
                    self._raw.driver_connection.autocommit = False
                    self._raw.close()
                self._raw = None

    def settle(self, reservation: Reservation, actual_usd: float) -> None:
        self.settle_many([(reservation, actual_usd)])

    def settle_many(self, settled: list[tuple[Reservation, float]]) -> None:
        """Replace reservations by actual costs, in a transaction of their own (retried on a
        fresh connection if it drops: it committed entirely or not at all)."""

        def once() -> None:
            with self.engine.begin() as conn:
                self.apply(conn, settled)

        on_fresh_connections(
            once, CONNECT_ATTEMPTS, lambda problem: GateUnavailable(f"settling failed: {problem}")
        )

    def apply(
        self, conn: sa.Connection, settled: list[tuple[Reservation, float]], spent: bool = True
    ) -> None:
        """Settle in the caller's transaction: the page write, so a judged result becomes spend
        exactly when its score is stored. With `spent=False` the reservations are only released
        (results that were never stored: the log is judged again and paid for then)."""
        per_day: dict[date, tuple[float, float]] = {}
        for reservation, actual in settled:
            reserved, cost = per_day.get(reservation.day, (0.0, 0.0))
            per_day[reservation.day] = (reserved + reservation.amount_usd, cost + actual)
        for day, (reserved, actual) in sorted(per_day.items()):  # run row, then day row
            params = {**self._keys(day), "reserved": reserved, "actual": actual if spent else 0}
            conn.execute(sa.text(query("budget", "settle_run")), params)
            conn.execute(sa.text(query("budget", "settle_day")), params)

    def release_many(self, settled: list[tuple[Reservation, float]]) -> None:
        with self.engine.begin() as conn:
            self.apply(conn, settled, spent=False)

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

    A call reserves its worst case at once (autocommit), so concurrent runs see it. Its actual
    cost is settled with the page that stores its score, in the page's own transaction
    (`take` hands them over), so the ledger's spend is exactly the cost of stored scores: a run
    killed or failing before its page commits leaves only reservations, which it (or the next
    run of the deployment) releases. Until then the caps only ever look tighter, never looser.
    """

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._pending: list[tuple[Reservation, float]] = []
        self.unstored_usd = 0.0

    async def reserve(self, model: str, amount_usd: float) -> Reservation | None:
        return await asyncio.to_thread(self.ledger.reserve, amount_usd)

    async def settle(self, reservation: Reservation | None, actual_usd: float) -> None:
        if reservation is not None:
            self._pending.append((reservation, actual_usd))

    def take(self) -> list[tuple[Reservation, float]]:
        """The settlements of calls made so far, for the page write to apply."""
        taken, self._pending = self._pending, []
        return taken

    async def release(self, settled: list[tuple[Reservation, float]]) -> None:
        """Results that were not stored: free their reservations, remember what they cost."""
        if settled:
            self.unstored_usd += sum(actual for _, actual in settled)
            await asyncio.to_thread(self.ledger.release_many, settled)

    async def close(self) -> None:
        with contextlib.suppress(GateUnavailable, sa.exc.SQLAlchemyError):
            await self.release(self.take())
        self.ledger.close()
