"""The event bus: what happened to sessions, pushed to subscribers (``subscribe`` query).

A subscriber is a connection turned into an event stream: one ``{"type":"event", ...}`` line
per event. Publishing never waits: a subscriber whose outbound queue is full is dropped with a
final error line, so a slow ``ccc watch`` can never stall the daemon. In-process listeners
(``ask``) get the same event dicts synchronously, through ``listen``.

The bus depends only on the two small Protocols below: it knows nothing of connections or
sessions beyond them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from . import protocol

Listener = Callable[[dict[str, Any]], None]


class Subscriber(Protocol):
    """What the bus needs of a subscribed connection."""

    id: int

    def send_nowait(self, line: bytes) -> bool: ...

    def close(self, error: str | None = None) -> None: ...


class Subject(Protocol):
    """What the bus needs of the session an event is about."""

    @property
    def session_id(self) -> str | None: ...

    @property
    def key(self) -> str: ...

    @property
    def internal_id(self) -> str | None: ...

    @property
    def all_ids(self) -> list[str]: ...


class EventBus:
    def __init__(self, wall: Callable[[], float] = time.time, *, max_subscribers: int = 256):
        self.wall = wall
        self.max_subscribers = max_subscribers
        self._subscribers: dict[int, tuple[Subscriber, str | None]] = {}
        self._listeners: list[Listener] = []

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def subscribe(self, conn: Subscriber, session_filter: str | None) -> None:
        """Turn ``conn`` into an event stream; raises ``TooManySubscribers`` at the cap."""
        if conn.id not in self._subscribers and len(self._subscribers) >= self.max_subscribers:
            raise TooManySubscribers(
                f"too many event subscribers ({self.max_subscribers}); close some `ccc watch` "
                "or `ccc top` windows, or restart the daemon with a higher --max-subscribers"
            )
        self._subscribers[conn.id] = (conn, session_filter)

    def unsubscribe(self, conn: Subscriber) -> None:
        self._subscribers.pop(conn.id, None)

    @contextmanager
    def listen(self, listener: Listener) -> Iterator[None]:
        """Call ``listener`` with every event while the block runs."""
        self._listeners.append(listener)
        try:
            yield
        finally:
            self._listeners.remove(listener)

    def publish(self, event: str, info: Subject | None, **fields: Any) -> None:
        if not self._subscribers and not self._listeners:
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
        for listener in list(self._listeners):
            listener(body)
        if not self._subscribers:
            return
        ids = set(info.all_ids) if info is not None else set()
        line: bytes | None = None
        for conn, flt in list(self._subscribers.values()):
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


class TooManySubscribers(Exception):
    """The subscriber cap is reached; ``str(exc)`` is the sentence for the client."""
