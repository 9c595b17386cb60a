"""The spend ledger: hard caps per run and per deployment-day, shared by concurrent runs.

A judge call reserves its worst-case cost (counted input tokens plus a margin, and the whole
output budget, at the model's price) before it is sent; as soon as it returns, its actual cost
replaces the reservation (`settle_now`, migration 0019), so the cap fills with what was spent,
not with worst cases waiting for a page to commit. Each reservation is one call of
`assay.try_reserve_spend`: a conditional UPDATE of the run row, then of the day row, in which
Postgres re-checks the caps on the locked rows. So concurrent runs never both pass a cap, and
the sum of actual spend never exceeds a cap as long as actual cost stays within the worst case
reserved.

Spend settled that way is `pending` until the page storing its scores commits (which clears it,
in the page's own transaction). A page that fails takes it back out; a run killed in between is
reconciled by the next run (`release_dead_reservations`). So once pages commit, the ledger is
exactly the cost of the stored scores.
"""

import asyncio
import contextlib
import threading
from collections.abc import Callable
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
    # Settled as the call returned (its cost is spend, pending until its page commits); a
    # reservation not settled live is settled by the page instead.
    live: bool = False


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

    def reserve(self, amount_usd: float, count_refusal: bool = True) -> Reservation | None:
        """Reserve `amount_usd` if every cap can still cover it; None when refused (counted as
        a refusal unless `count_refusal` is false: a call that will ask again).

        One round trip: `assay.try_reserve_spend` checks the caps and takes the reservation in
        the server, as its own transaction, on a connection this ledger keeps in autocommit.
        """
        day = self.clock().date()
        b = self.budget
        params = {
            **self._keys(day),
            "amount": amount_usd,
            "max_calls": b.max_calls_per_run,
            "max_run": b.max_usd_per_run,
            "max_day": b.max_usd_per_day,
            "count_refusal": count_refusal,
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

    def settle_now(self, reservation: Reservation, actual_usd: float) -> None:
        """A call just returned: its reservation becomes its actual cost, now (one autocommit
        round trip), pending until the page that stores its score commits."""
        params = {
            **self._keys(reservation.day),
            "reserved": reservation.amount_usd,
            "actual": actual_usd,
        }
        self._with_connection(lambda driver: driver.execute(query("budget", "settle_call"), params))
        reservation.live = True

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
        """Settle in the caller's transaction: the page write, so a judged result becomes
        stored spend exactly when its score is stored. With `spent=False` the results were never
        stored: reservations are only released, and spend settled live is taken back out (the
        log is judged again and paid for then)."""
        late: dict[date, tuple[float, float]] = {}  # reserved, actual: settled here
        live: dict[date, float] = {}  # actual: settled as the call returned
        for reservation, actual in settled:
            if reservation.live:
                live[reservation.day] = live.get(reservation.day, 0.0) + actual
            else:
                reserved, cost = late.get(reservation.day, (0.0, 0.0))
                late[reservation.day] = (reserved + reservation.amount_usd, cost + actual)
        for day, (reserved, actual) in sorted(late.items()):  # run row, then day row
            params = {**self._keys(day), "reserved": reserved, "actual": actual if spent else 0}
            conn.execute(sa.text(query("budget", "settle_run")), params)
            conn.execute(sa.text(query("budget", "settle_day")), params)
        for day, actual in sorted(live.items()):
            params = {**self._keys(day), "actual": actual}
            if spent:
                conn.execute(sa.text(query("budget", "store_settled_run")), params)
                conn.execute(sa.text(query("budget", "store_settled_day")), params)
            else:
                conn.execute(sa.text(query("budget", "unstore_settled_run")), params)
                conn.execute(sa.text(query("budget", "unstore_settled_day")), params)

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

    A call reserves its worst case at once (autocommit), so concurrent runs see it, and settles
    its actual cost as soon as it returns (`settle_now`): the reservation is back at once, so
    the cap is filled by spend. The page that stores the call's score marks that spend stored
    in its own transaction (`take` hands the settlements over), so the ledger's spend is
    exactly the cost of stored scores once pages commit.

    When the cap cannot cover a call, the gate waits for this run's calls in flight to settle
    (each returns the unused part of its worst case) and asks again; refused with nothing in
    flight, the gate is `exhausted`: every later call is refused at once, without waiting for a
    rate-limit slot, so a run past its cap finishes in seconds.
    """

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._pending: list[tuple[Reservation, float]] = []
        self.unstored_usd = 0.0
        self.exhausted = False
        self._in_flight = 0  # reserved and not settled yet
        self._generation = 0  # settlements so far
        self._settled = asyncio.Condition()
        self._asking = asyncio.Lock()

    async def reserve(self, model: str, amount_usd: float) -> Reservation | None:
        while True:
            # One ask at a time: whether nothing is in flight (so a refusal is final) must hold
            # while the ledger answers.
            async with self._asking:
                final = self.exhausted or self._in_flight == 0
                seen = self._generation
                reservation = await asyncio.to_thread(self.ledger.reserve, amount_usd, final)
                if reservation is not None:
                    self._in_flight += 1
                    return reservation
            if final:
                if not self.exhausted:
                    self.exhausted = True
                    async with self._settled:  # everyone waiting gets their answer now
                        self._settled.notify_all()
                return None
            # One call in flight settling returns the unused part of its worst case: one waiter
            # asks again (not all of them: each asking is a round trip).
            async with self._settled:
                await self._settled.wait_for(self._news_since(seen))

    def _news_since(self, generation: int) -> Callable[[], bool]:
        """Whether a call settled (or the gate ran dry) since `generation`."""
        return lambda: self._generation != generation or self.exhausted

    async def settle(self, reservation: Reservation | None, actual_usd: float) -> None:
        if reservation is None:
            return
        try:
            await asyncio.to_thread(self.ledger.settle_now, reservation, actual_usd)
        except (GateUnavailable, sa.exc.SQLAlchemyError):
            pass  # not live: the page that stores the score settles it instead
        finally:
            self._pending.append((reservation, actual_usd))
            self._in_flight -= 1
            self._generation += 1
            async with self._settled:
                self._settled.notify(1)

    def take(self) -> list[tuple[Reservation, float]]:
        """The settlements of calls made so far, for the page write to apply."""
        taken, self._pending = self._pending, []
        return taken

    async def release(self, settled: list[tuple[Reservation, float]]) -> None:
        """Results that were not stored: free their reservations and take their live spend back
        out; remember what they cost."""
        if settled:
            self.unstored_usd += sum(actual for _, actual in settled)
            await asyncio.to_thread(self.ledger.release_many, settled)

    async def close(self) -> None:
        with contextlib.suppress(GateUnavailable, sa.exc.SQLAlchemyError):
            await self.release(self.take())
        self.ledger.close()
