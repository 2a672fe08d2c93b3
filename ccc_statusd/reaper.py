"""The stale-connection reaper: closes session clients that stopped heartbeating.

Every ``interval_s`` (60 s by default) it closes session-client connections silent for more
than ``stale_after_s`` (90 s), which unmaps them, and plain client connections idle for more
than ``idle_timeout_s``. Subscribers are exempt: a quiet event stream is normal.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import NoReturn

import trio

from .server import Conn, Server

log = logging.getLogger(__name__)


def stale_connections(
    conns: Iterable[Conn], now: float, stale_after_s: float, idle_timeout_s: float
) -> list[tuple[int, str]]:
    """Which connections to close now, and why (pure over the connections' timestamps)."""
    out = []
    for conn in conns:
        silent = now - conn.last_seen
        if conn.role == "session":
            if silent > stale_after_s:
                out.append(
                    (
                        conn.id,
                        f"no heartbeat for {silent:.0f} s (limit {stale_after_s:g} s); reconnect and register again",
                    )
                )
        elif conn.role != "subscriber" and not conn.in_request and silent > idle_timeout_s:
            out.append(
                (
                    conn.id,
                    f"connection idle for {silent:.0f} s (limit {idle_timeout_s:g} s); reconnect when you need the daemon",
                )
            )
    return out


async def run_reaper(
    server: Server,
    *,
    interval_s: float,
    stale_after_s: float,
    idle_timeout_s: float,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    task_status.started()
    while True:
        await trio.sleep(interval_s)
        for conn_id, why in stale_connections(
            list(server.conns.values()), trio.current_time(), stale_after_s, idle_timeout_s
        ):
            conn = server.conns.get(conn_id)
            if conn is not None:
                log.info("closing connection %d (%s): %s", conn_id, conn.label or conn.role, why)
                conn.close(why)
