"""Follow the daemon's event stream across daemon restarts (anyio: asyncio or trio).

Shared by ``ccc watch``, ``ccc top`` and ``ccc notify``. One loop: subscribe, then take one
``list_sessions`` (and ``list_scheduled``) snapshot on a second connection, hand the snapshot
and then every event to the caller; when the daemon goes away (stops, restarts, drops a slow
subscriber) report it and try again with back-off (0.25 s doubling to ``max_backoff_s``; reset
after a successful connect). Subscribing before the snapshot means no event is lost between
the two; an event from just before the snapshot may be seen twice, which the callers'
:class:`~ccc_statusd.eventfmt.EventFormatter` deduplication absorbs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio

from .aclient import AsyncClient
from .client import ClientError, DaemonError

FIRST_BACKOFF_S = 0.25
MAX_BACKOFF_S = 5.0


class SubscribeRefused(Exception):
    """The daemon answered ``subscribe`` with an error (an unknown session): retrying is no use."""


@dataclass(frozen=True)
class Snapshot:
    sessions: list[dict[str, Any]]
    scheduled: list[dict[str, Any]]


@dataclass(frozen=True)
class Status:
    """``connected`` (with the snapshot size) or ``reconnecting`` (with why and when)."""

    connected: bool
    message: str
    retry_in_s: float | None = None


async def follow(
    socket_path: str,
    on_snapshot: Callable[[Snapshot], Awaitable[None] | None],
    on_event: Callable[[dict[str, Any]], Awaitable[None] | None],
    on_status: Callable[[Status], Awaitable[None] | None],
    *,
    session: str | None = None,
    scheduled: bool = True,
    first_backoff_s: float = FIRST_BACKOFF_S,
    max_backoff_s: float = MAX_BACKOFF_S,
    once: bool = False,
) -> None:
    """Run until cancelled (or, with ``once``, until the first stream ends)."""
    backoff = first_backoff_s
    ever_connected = False
    while True:
        why: str
        try:
            async with AsyncClient(socket_path) as stream, AsyncClient(socket_path) as side:
                try:
                    await stream.start_subscription(session)
                except DaemonError as exc:
                    if exc.response:
                        raise SubscribeRefused(str(exc)) from None  # e.g. no such session
                    raise
                records = await side.query("list_sessions") or []
                rows = (
                    await side.query(
                        "list_scheduled", **({"session_id": session} if session else {})
                    )
                    if scheduled
                    else []
                )
                await side.aclose()
                await _call(on_snapshot, Snapshot(list(records), list(rows or [])))
                await _call(
                    on_status,
                    Status(True, ("reconnected" if ever_connected else "connected")),
                )
                ever_connected = True
                backoff = first_backoff_s
                async for event in stream.events():
                    if event.get("type") == "event":
                        await _call(on_event, event)
                why = "the daemon stopped or restarted"
        except DaemonError as exc:
            why = str(exc)
        except ClientError as exc:
            why = str(exc)
        if once:
            return
        await _call(on_status, Status(False, why, backoff))
        await anyio.sleep(backoff)
        backoff = min(backoff * 2, max_backoff_s)


async def _call(fn: Callable[[Any], Awaitable[None] | None], arg: Any) -> None:
    result = fn(arg)
    if result is not None:
        await result
