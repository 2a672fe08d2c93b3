"""ccc_statusd.events.EventBus: the event body, in-process listeners, the subscriber filter (by
id prefix, aliases included), and a slow subscriber dropped with a final error, never waited
for. A tiny fake connection stands in for the server's (``send_nowait``/``close``)."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from ccc_statusd.events import EventBus
from ccc_statusd.sessions import SessionInfo

_ids = itertools.count(1)


@dataclass
class FakeConn:
    """A subscriber's connection with a bounded outbound queue of ``room`` lines."""

    room: int = 100
    id: int = field(default_factory=lambda: next(_ids))
    subscriber: bool = False
    lines: list[bytes] = field(default_factory=list)
    closed_with: list[str | None] = field(default_factory=list)

    def send_nowait(self, line: bytes) -> bool:
        if self.closed_with or len(self.lines) >= self.room:
            return False
        self.lines.append(line)
        return True

    def close(self, error: str | None = None) -> None:
        self.closed_with.append(error)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


def bus() -> EventBus:
    return EventBus(wall=lambda: 1234.5)


def session(key: str = "iid-1", sid: str | None = "abcd-1", *aliases: str) -> SessionInfo:
    return SessionInfo(key=key, session_id=sid, aliases=list(aliases), internal_id=key)


def test_publish_with_nobody_listening_does_nothing() -> None:
    b = bus()
    b.publish("state", session(), state="idle")  # no error, nothing to do


def test_subscribe_marks_the_connection_and_unsubscribe_forgets_it() -> None:
    b, conn = bus(), FakeConn()
    b.subscribe(conn, None)  # type: ignore[arg-type]
    assert conn.id in b._subscribers and b.subscriber_count == 1
    b.unsubscribe(conn)  # type: ignore[arg-type]
    b.unsubscribe(conn)  # type: ignore[arg-type]  # twice is fine
    b.publish("state", session(), state="idle")
    assert conn.lines == []


def test_event_body() -> None:
    b, conn = bus(), FakeConn()
    b.subscribe(conn, None)  # type: ignore[arg-type]
    b.publish("state", session(), state="busy", error=None, hook="UserPromptSubmit")
    assert conn.events() == [
        {
            "type": "event",
            "event": "state",
            "time": 1234.5,
            "session_id": "abcd-1",
            "key": "iid-1",
            "internal_id": "iid-1",
            "state": "busy",
            "hook": "UserPromptSubmit",  # None fields are left out
        }
    ]
    assert conn.lines[0].endswith(b"\n") and conn.lines[0].count(b"\n") == 1


def test_event_without_a_session() -> None:
    b, conn = bus(), FakeConn()
    b.subscribe(conn, None)  # type: ignore[arg-type]
    b.publish("daemon", None, note="starting")
    assert conn.events() == [
        {"type": "event", "event": "daemon", "time": 1234.5, "note": "starting"}
    ]


def test_listeners_get_every_event_even_without_subscribers() -> None:
    b = bus()
    got: list[dict[str, Any]] = []
    with b.listen(got.append):
        b.publish("state", session(), state="idle")
        b.publish("daemon", None)
    assert [e["event"] for e in got] == ["state", "daemon"]
    assert got[0]["session_id"] == "abcd-1"


def test_a_listener_may_remove_itself_while_called() -> None:
    b = bus()
    got: list[str] = []

    def once(event: dict[str, Any]) -> None:
        got.append(event["event"])
        b._listeners.remove(once)

    b._listeners.append(once)
    b.publish("a", None)
    b.publish("b", None)
    assert got == ["a"]


def test_filter_by_session_id_prefix_and_aliases() -> None:
    b = bus()
    everyone, mine, by_alias, other, no_match = (FakeConn() for _ in range(5))
    b.subscribe(everyone, None)  # type: ignore[arg-type]
    b.subscribe(mine, "abcd")  # type: ignore[arg-type]
    b.subscribe(by_alias, "old-")  # type: ignore[arg-type]
    b.subscribe(other, "ffff")  # type: ignore[arg-type]
    b.subscribe(no_match, "abcd-12")  # type: ignore[arg-type]
    b.publish("state", session("iid-1", "abcd-1", "old-0"), state="idle")
    assert len(everyone.lines) == 1 and len(mine.lines) == 1 and len(by_alias.lines) == 1
    assert other.lines == [] and no_match.lines == []


def test_a_filtered_subscriber_gets_no_session_less_events() -> None:
    b, conn = bus(), FakeConn()
    b.subscribe(conn, "abcd")  # type: ignore[arg-type]
    b.publish("daemon", None)
    b.publish("state", session(sid=None), state="idle")  # a session with no id yet
    assert conn.lines == []


def test_a_slow_subscriber_is_dropped_with_a_final_error_and_others_go_on() -> None:
    b = bus()
    slow, fast = FakeConn(room=2), FakeConn()
    b.subscribe(slow, None)  # type: ignore[arg-type]
    b.subscribe(fast, None)  # type: ignore[arg-type]
    for i in range(5):
        b.publish("state", session(), n=i)
    assert len(slow.lines) == 2
    assert len(slow.closed_with) == 1
    assert "not reading events fast enough" in (slow.closed_with[0] or "")
    assert "reconnect" in (slow.closed_with[0] or "")
    assert slow.id not in b._subscribers
    assert [e["n"] for e in fast.events()] == [0, 1, 2, 3, 4]


def test_a_closed_subscriber_is_dropped_on_the_next_event() -> None:
    b, conn = bus(), FakeConn()
    b.subscribe(conn, None)  # type: ignore[arg-type]
    conn.closed_with.append("gone")  # send_nowait now refuses
    b.publish("state", session())
    assert conn.id not in b._subscribers


def test_the_line_is_encoded_once_for_all_subscribers() -> None:
    b = bus()
    conns = [FakeConn() for _ in range(3)]
    for c in conns:
        b.subscribe(c, None)  # type: ignore[arg-type]
    b.publish("state", session(), state="idle")
    assert conns[0].lines[0] is conns[1].lines[0] is conns[2].lines[0]


def test_default_wall_clock_is_time() -> None:
    b, conn = EventBus(), FakeConn()
    b.subscribe(conn, None)  # type: ignore[arg-type]
    b.publish("x", None)
    assert isinstance(conn.events()[0]["time"], float) and conn.events()[0]["time"] > 1e9
