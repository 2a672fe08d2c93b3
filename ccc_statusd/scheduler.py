"""The scheduler: delivers ``scheduled_messages`` when due, and drains session outboxes.

Theory of operation. Rows are the durable record (they survive ``kill -9``); the task keeps no
state it cannot rebuild except retry back-off. The scheduler is the one owner of the rows'
life: ``enqueue`` validates and inserts (within caps), each pass reads the due rows (a few per
session) and hands each to the ``Deliverer`` (the hub's delivery), and the outcome decides:

- ``Delivered``: the row is deleted (after the session client acknowledged it: at-least-once).
- ``NotNow``: the session is busy, has a draft, is in a panel...: the row waits, untouched,
  until the session's hooks wake us (or ``retry_s``).
- ``Failed``: recorded on the row (attempts, last error) with exponential back-off (at most
  ``max_retry_s``: a session that is away gets its messages when it comes back, and its
  connecting wakes us). A ``permanent`` failure (the message can never be typed: bad command
  name, nothing left after cleaning) is parked at once, listed with its error and never
  retried, so it never blocks the session's later rows. An unexpected exception in one attempt
  is a failure of that row, never of the scheduler.

Per session, rows go in order: once one row of a session cannot go now, its later rows wait,
and one delivery per session per pass (the next waits for that turn's hooks). A row is marked
``in_flight`` while it is being typed: ``ccc schedule cancel`` then says it is too late.

Time: sleeping uses Trio's clock; ``send_at`` is wall-clock seconds from ``wall``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

import trio

from .paste import DeliveryRefused, command_line
from .protocol import is_safe_id
from .store import ScheduleFull, Store
from .storeworker import StoreWorker

log = logging.getLogger(__name__)

MAX_SLEEP_S = 60.0  # re-read the table at least this often (rows added by a CLI while we slept)
NOT_IDLE_RETRY_S = 5.0  # a client declined (draft / not quiet): look again soon
BUSY_RECHECK_S = 120.0  # hooks said busy: the Stop hook wakes us; this covers a lost hook
ROWS_PER_SESSION = 4  # due rows read per session and pass: a flooded outbox costs a few rows


@dataclass(frozen=True)
class Delivered:
    status: str = "delivered"


@dataclass(frozen=True)
class NotNow:
    """The session cannot take it now; ``retry_s`` None means its hooks will wake us."""

    reason: str
    retry_s: float | None = None


@dataclass(frozen=True)
class Failed:
    error: str
    permanent: bool = False


Outcome = Delivered | NotNow | Failed


class Deliverer(Protocol):
    """What the scheduler hands due rows to (the hub's delivery)."""

    async def deliver_row(self, row: dict[str, Any]) -> Outcome: ...

    def report_row(
        self, row: dict[str, Any], outcome: Outcome, *, attempts: int, parked: bool
    ) -> None: ...


class InvalidMessage(ValueError):
    """A message that can never be delivered; ``str(exc)`` says why, for the sender."""


def check_message(session_id: str, kind: str, message: str, command_name: str | None) -> None:
    """Refuse at enqueue time what could never be typed (it would otherwise fail for ever)."""
    if not is_safe_id(session_id):
        raise InvalidMessage(f"session id {session_id[:40]!r} is not a plain id")
    if kind == "command":
        try:
            command_line(command_name or "", message)
        except DeliveryRefused as exc:
            raise InvalidMessage(str(exc)) from None
    elif kind == "prompt":
        if not message.strip():
            raise InvalidMessage("the prompt is empty; give the text to send")
    else:
        raise InvalidMessage(f"a {kind!r} message cannot be scheduled (prompt or command only)")


class Scheduler:
    """Owns the schedule: its rows' life, its count, its wake-up."""

    def __init__(
        self,
        store: StoreWorker,
        *,
        wall: Callable[[], float],
        retry_s: float = 30.0,
        max_retry_s: float = 600.0,
        max_total: int | None = None,
        max_per_session: int | None = None,
    ) -> None:
        self.store = store
        self.wall = wall
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self.max_total = max_total
        self.max_per_session = max_per_session
        self.count = 0  # rows in the table (scheduled, queued and parked)
        # row id → (retry time on Trio's clock, session id, whether later rows wait for it)
        self.next_try: dict[str, tuple[float, str, bool]] = {}
        self._wake = trio.Event()
        self._woken: set[str] = set()  # sessions woken since the current pass began

    async def load(self) -> None:
        """Count the rows (at start-up, and when a CLI wrote the table: ``reload_schedule``)."""
        self.count = await self.store.call(Store.count_scheduled)

    async def reload(self) -> int:
        await self.load()
        self.wake()
        return self.count

    def wake(self, session_ids: Iterable[str] = ()) -> None:
        """Run a pass now: a new row, or sessions that became idle or connected (whose rows
        then skip their back-off: that change is what they were waiting for)."""
        self._wake.set()
        ids = set(session_ids)
        self._woken |= ids
        if ids:
            for row_id, (_, sid, _blocks) in list(self.next_try.items()):
                if sid in ids:
                    del self.next_try[row_id]

    async def enqueue(
        self,
        session_id: str,
        kind: str,
        message: str,
        *,
        command_name: str | None = None,
        send_at: float | None = None,
        trigger: str = "idle",
        sender: str | None = None,
    ) -> dict[str, Any]:
        """Validate and store one row (InvalidMessage, ScheduleFull), then wake the pass."""
        check_message(session_id, kind, message, command_name)
        now = int(self.wall())
        row = await self.store.call(
            Store.add_scheduled,
            session_id,
            message,
            int(send_at if send_at is not None else now),
            kind=kind,
            command_name=command_name,
            trigger=trigger,
            sender=sender,
            now=now,
            max_total=self.max_total,
            max_per_session=self.max_per_session,
        )
        self.count += 1
        self.wake()
        return row

    async def cancel(self, row_id: str) -> str:
        """Drop a row unless it is being typed: ``cancelled``, ``in_flight`` or ``missing``."""
        outcome = await self.store.call(Store.cancel_scheduled, row_id)
        if outcome == "cancelled":
            self.count = max(0, self.count - 1)
            self.next_try.pop(row_id, None)
        return outcome

    async def drop_sessions(self, session_ids: list[str]) -> int:
        """Forgotten sessions take their waiting messages with them (never retried for ever)."""
        if not session_ids:
            return 0
        dropped = await self.store.call(Store.delete_scheduled_for, session_ids)
        self.count = max(0, self.count - dropped)
        return dropped

    async def run(
        self,
        deliverer: Deliverer,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> NoReturn:
        task_status.started()
        while True:
            self._wake = trio.Event()
            try:
                delay = await self.run_due(deliverer)
            except Exception:
                # The table could not be read (disk, lock): never the end of the daemon.
                log.exception("the scheduler could not read the schedule; retrying")
                delay = self.retry_s
            with trio.move_on_after(delay):
                await self._wake.wait()

    async def run_due(self, deliverer: Deliverer) -> float:
        """One pass over the due rows; returns how long to sleep before the next one."""
        self._woken = set()
        wall_now = self.wall()
        rows = await self.store.call(Store.due_scheduled, int(wall_now), ROWS_PER_SESSION)
        now = trio.current_time()
        next_delay = MAX_SLEEP_S
        later = await self.store.call(Store.next_send_at, int(wall_now))
        if later is not None:
            next_delay = min(next_delay, max(later - self.wall(), 0.0))
        blocked: set[str] = set()
        for row in rows:
            sid = row["session_id"]
            if sid in blocked:
                continue
            retry = self.next_try.get(row["id"])
            if retry is not None and retry[0] > now:
                next_delay = min(next_delay, retry[0] - now)
                if retry[2]:
                    blocked.add(sid)
                continue
            wait = await self._attempt(deliverer, row)
            if wait is None:
                blocked.add(sid)  # delivered: the next one waits for that turn's hooks
                continue
            seconds, blocks = wait
            if blocks:
                blocked.add(sid)
            if sid in self._woken:
                # It connected or went idle while we were trying: retry in the next pass
                # (already signalled) instead of sitting out the back-off.
                continue
            self.next_try[row["id"]] = (trio.current_time() + seconds, sid, blocks)
            next_delay = min(next_delay, seconds)
        return max(next_delay, 0.0)

    async def _attempt(
        self, deliverer: Deliverer, row: dict[str, Any]
    ) -> tuple[float, bool] | None:
        """Try one row: None when it is done (delivered, or parked), else (seconds to wait,
        whether the session's later rows wait with it)."""
        claimed = await self.store.call(Store.claim_scheduled, row["id"])
        if claimed is None:
            self.next_try.pop(row["id"], None)
            return None  # cancelled or parked since this pass read the table
        try:
            outcome = await deliverer.deliver_row(claimed)
        except Exception as exc:
            log.exception("scheduled message %s: delivery failed unexpectedly", row["id"])
            outcome = Failed(f"internal error while delivering ({type(exc).__name__}: {exc})")
        except BaseException:
            # Cancelled (shutdown) mid-delivery: back to pending, so cancel works again.
            with trio.CancelScope(shield=True):
                await self.store.call(
                    Store.release_scheduled, row["id"], None, int(self.wall()), park=False
                )
            raise
        if isinstance(outcome, Delivered):
            await self.store.call(Store.delete_scheduled, row["id"])
            self.count = max(0, self.count - 1)
            self.next_try.pop(row["id"], None)
            deliverer.report_row(claimed, outcome, attempts=int(claimed["attempts"]), parked=False)
            return None
        if isinstance(outcome, NotNow):
            await self.store.call(
                Store.release_scheduled, row["id"], None, int(self.wall()), park=False
            )
            log.debug("scheduled %s waits: %s", row["id"], outcome.reason)
            return (
                max(outcome.retry_s, 0.05) if outcome.retry_s is not None else BUSY_RECHECK_S
            ), True
        attempts = int(claimed.get("attempts") or 0) + 1
        park = outcome.permanent
        await self.store.call(
            Store.release_scheduled, row["id"], outcome.error, int(self.wall()), park=park
        )
        deliverer.report_row(claimed, outcome, attempts=attempts, parked=park)
        log.info(
            "scheduled message %s not delivered (attempt %d%s): %s",
            row["id"],
            attempts,
            ", parked" if park else "",
            outcome.error,
        )
        if park:
            self.next_try.pop(row["id"], None)
            return None
        return min(self.retry_s * 2 ** min(attempts - 1, 10), self.max_retry_s), True


__all__ = [
    "Delivered",
    "Deliverer",
    "Failed",
    "InvalidMessage",
    "NotNow",
    "Outcome",
    "ScheduleFull",
    "Scheduler",
    "check_message",
]
