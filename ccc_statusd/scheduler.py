"""The scheduler: delivers ``scheduled_messages`` when due, and drains session outboxes.

Theory of operation. Rows are the durable record (they survive ``kill -9``); the task keeps no
state it cannot rebuild except retry back-off. Each pass reads every row (ordered by
``send_at``), and for each due row routes it like a ``prompt`` without queueing. A row is
deleted only after the session client acknowledged it (at-least-once). Per session, rows go in
order: once one row of a session cannot go now, the later ones of that session wait too.

Triggers: ``at`` (time), ``idle`` (an outbox entry: a message queued because the session was
busy) and ``when_idle`` (scheduled for the next idle moment) are all "due at send_at, and only
delivered when the session is idle". Busy sessions are retried when their hooks say idle (the
hub wakes us); unreachable ones on a back-off, their row carrying the last error.

Time: sleeping uses Trio's clock; ``send_at`` is wall-clock seconds from ``hub.wall``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NoReturn

import trio

from . import protocol
from .routing import RoutingError

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger(__name__)

MAX_SLEEP_S = 60.0  # re-read the table at least this often (rows added by a CLI while we slept)
NOT_IDLE_RETRY_S = 5.0  # a client declined (draft / not quiet): look again soon
BUSY_RECHECK_S = 120.0  # hooks said busy: the Stop hook wakes us; this covers a lost hook


class Scheduler:
    def __init__(self, hub: Hub, *, retry_s: float = 30.0, max_retry_s: float = 600.0) -> None:
        self.hub = hub
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self.next_try: dict[str, tuple[float, str]] = {}  # row id → (retry time, session id)
        self._wake = trio.Event()
        self._woken: set[str] = set()  # sessions woken since the current pass began

    def wake(self, session_ids: Iterable[str] = ()) -> None:
        """Run a pass now: a new row, or sessions that became idle or connected (whose rows
        then skip their back-off: that change is what they were waiting for)."""
        self._wake.set()
        ids = set(session_ids)
        self._woken |= ids
        if ids:
            for row_id, (_, sid) in list(self.next_try.items()):
                if sid in ids:
                    del self.next_try[row_id]

    async def run(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        self.hub.wake_scheduler = self.wake
        task_status.started()
        while True:
            self._wake = trio.Event()
            delay = await self.run_due()
            with trio.move_on_after(delay):
                await self._wake.wait()

    async def run_due(self) -> float:
        """One pass over the table; returns how long to sleep before the next one."""
        hub = self.hub
        self._woken = set()
        rows: list[dict[str, Any]] = await hub.store.run("scheduled")
        hub.scheduled_count = len(rows)
        now = trio.current_time()
        next_delay = MAX_SLEEP_S
        blocked: set[str] = set()
        for row in rows:
            sid = row["session_id"]
            if sid in blocked:
                continue
            due_in = row["send_at"] - hub.wall()
            if due_in > 0:
                next_delay = min(next_delay, due_in)
                blocked.add(sid)
                continue
            retry_at = self.next_try.get(row["id"], (None, None))[0]
            if retry_at is not None and retry_at > now:
                next_delay = min(next_delay, retry_at - now)
                blocked.add(sid)
                continue
            wait = await self._attempt(row)
            # One delivery per session per pass: the next waits for that turn's hooks.
            blocked.add(sid)
            if wait is not None:
                if sid in self._woken:
                    # It connected or went idle while we were trying: retry in the next pass
                    # (already signalled) instead of sitting out the back-off.
                    continue
                self.next_try[row["id"]] = (trio.current_time() + wait, sid)
                next_delay = min(next_delay, wait)
        return max(next_delay, 0.0)

    async def _attempt(self, row: dict[str, Any]) -> float | None:
        """Try one row; None when it is done (delivered and deleted), else seconds to wait."""
        from .hub import NotIdle

        hub = self.hub
        if await hub.store.run("scheduled_one", row["id"]) is None:
            return None  # cancelled (ccc schedule cancel) since this pass read the table
        info = hub.registry.by_session_id(row["session_id"])
        try:
            msg = message_for_row(row)
            reply = await hub.route(
                msg, sender=None, allow_queue=False, delivery_id=f"sched-{row['id']}"
            )
        except NotIdle as exc:
            log.debug("scheduled %s waits: %s", row["id"], exc)
            if exc.retry_s is not None:
                return max(exc.retry_s, 0.05)
            return NOT_IDLE_RETRY_S if exc.by_client else BUSY_RECHECK_S
        except (RoutingError, protocol.RemoteProtocolError) as exc:
            error = str(exc)
            await hub.store.run("record_attempt", row["id"], error, int(hub.wall()))
            attempts = int(row.get("attempts") or 0) + 1
            hub.events.publish(
                "scheduled_failed", info, id=row["id"], error=error, attempts=attempts
            )
            log.info(
                "scheduled message %s not delivered (attempt %d): %s", row["id"], attempts, error
            )
            return min(self.retry_s * 2 ** min(attempts - 1, 10), self.max_retry_s)
        await hub.store.run("delete_scheduled", row["id"])
        hub.scheduled_count = max(0, hub.scheduled_count - 1)
        self.next_try.pop(row["id"], None)
        hub.events.publish(
            "scheduled_fired",
            info,
            id=row["id"],
            trigger=row.get("trigger"),
            status=reply.get("status"),
        )
        return None


def message_for_row(row: dict[str, Any]) -> protocol.Prompt | protocol.Command:
    """The routed message a stored row stands for (commands are stored as their typed line)."""
    sid = row["session_id"]
    text = row["message"]
    if row.get("kind") == "command":
        name, _, args = text.lstrip("/").partition(" ")
        if not name:
            raise protocol.RemoteProtocolError(
                f"scheduled command {row['id']} has no command name; cancel it with: "
                f"ccc schedule cancel {row['id']}"
            )
        return protocol.Command(type="command", session_id=sid, name=name, text=args or None)
    return protocol.Prompt(type="prompt", session_id=sid, text=text)
