"""The event bus: what happened to sessions, pushed to subscribers (``subscribe`` query).

A subscriber is a connection turned into an event stream: one ``{"type":"event", ...}`` line
per event. Publishing never waits: a subscriber whose outbound queue is full is dropped with a
final error line, so a slow ``ccc watch`` can never stall the daemon. In-process listeners
(used by ``ask``) get the same event dicts synchronously.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import protocol

if TYPE_CHECKING:
    from .server import Conn
    from .sessions import SessionInfo


class EventBus:
    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self.wall = wall
        self.subscribers: dict[int, tuple[Conn, str | None]] = {}
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    def subscribe(self, conn: Conn, session_filter: str | None) -> None:
        conn.subscriber = True
        self.subscribers[conn.id] = (conn, session_filter)

    def unsubscribe(self, conn: Conn) -> None:
        self.subscribers.pop(conn.id, None)

    def publish(self, event: str, info: SessionInfo | None, **fields: Any) -> None:
        if not self.subscribers and not self.listeners:
            return
        body: dict[str, Any] = {"type": "event", "event": event, "time": self.wall()}
        if info is not None:
            body["session_id"] = info.session_id
            body["key"] = info.key
            if info.internal_id:
                body["internal_id"] = info.internal_id
        for name, value in fields.items():
            if value is not None:
                body[name] = value
        for listener in list(self.listeners):
            listener(body)
        if not self.subscribers:
            return
        ids = set(info.all_ids) if info is not None else set()
        line: bytes | None = None
        for conn, flt in list(self.subscribers.values()):
            if flt is not None and not any(i.startswith(flt) for i in ids):
                continue
            if line is None:
                line = protocol.encode_dict(body)
            if not conn.send_nowait(line):
                self.unsubscribe(conn)
                conn.close(
                    "event stream dropped: this subscriber was not reading events fast enough; "
                    "reconnect to resume (events in between are lost)"
                )
