"""ccc_statusd.reaper: which connections ``stale_connections`` picks (pure, over a tiny fake
registry with ``.conns``), and ``run_reaper`` closing them on a MockClock."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import trio
import trio.testing

from ccc_statusd.reaper import run_reaper, stale_connections

_ids = itertools.count(1)


@dataclass
class FakeConn:
    """The fields the reaper reads, and a ``close`` that records why."""

    last_seen: float
    internal_id: str | None = None
    subscriber: bool = False
    in_request: bool = False
    id: int = field(default_factory=lambda: next(_ids))
    closed_with: list[str | None] = field(default_factory=list)

    @property
    def role(self) -> str:
        return "session" if self.internal_id else "subscriber" if self.subscriber else "client"

    @property
    def label(self) -> str | None:
        return self.internal_id

    def close(self, error: str | None = None) -> None:
        self.closed_with.append(error)


class FakeRegistry:
    def __init__(self, *conns: FakeConn) -> None:
        self.conns = {c.id: c for c in conns}


def picked(reg: FakeRegistry, now: float, stale: float = 90, idle: float = 30) -> list[int]:
    return [cid for cid, _ in stale_connections(reg.conns.values(), now, stale, idle)]  # type: ignore[arg-type]


def test_nothing_to_close_in_an_empty_registry() -> None:
    assert picked(FakeRegistry(), now=1e6) == []


def test_session_client_closed_only_after_stale_limit() -> None:
    conn = FakeConn(last_seen=100.0, internal_id="iid-1")
    reg = FakeRegistry(conn)
    assert picked(reg, now=190.0) == []  # exactly at the limit: kept
    assert picked(reg, now=190.5) == [conn.id]
    [(_, why)] = stale_connections(reg.conns.values(), 190.5, 90, 30)  # type: ignore[arg-type]
    assert "no heartbeat for 90 s (limit 90 s)" in why and "register again" in why


def test_session_client_is_not_held_by_the_idle_limit_or_a_request() -> None:
    # A session client silent longer than idle_timeout but within stale_after is kept, and one
    # past stale_after goes even while it is in a request (heartbeats are its only sign of life).
    quiet = FakeConn(last_seen=0.0, internal_id="iid-q")
    busy = FakeConn(last_seen=0.0, internal_id="iid-b", in_request=True)
    reg = FakeRegistry(quiet, busy)
    assert picked(reg, now=60.0) == []
    assert sorted(picked(reg, now=91.0)) == sorted([quiet.id, busy.id])


def test_plain_client_closed_after_idle_limit() -> None:
    conn = FakeConn(last_seen=10.0)
    reg = FakeRegistry(conn)
    assert picked(reg, now=40.0) == []
    assert picked(reg, now=40.1) == [conn.id]
    [(_, why)] = stale_connections(reg.conns.values(), 41.0, 90, 30)  # type: ignore[arg-type]
    assert "connection idle for 31 s (limit 30 s)" in why and "reconnect" in why


def test_plain_client_in_a_request_is_not_idle() -> None:
    # An `ask` can wait minutes for its answer.
    reg = FakeRegistry(FakeConn(last_seen=0.0, in_request=True))
    assert picked(reg, now=1e6) == []


def test_subscribers_are_exempt() -> None:
    reg = FakeRegistry(FakeConn(last_seen=0.0, subscriber=True))
    assert picked(reg, now=1e6) == []


def test_selection_over_a_mixed_registry() -> None:
    now = 1000.0
    conns = {
        "fresh session": FakeConn(last_seen=now - 5, internal_id="a"),
        "stale session": FakeConn(last_seen=now - 91, internal_id="b"),
        "fresh client": FakeConn(last_seen=now - 5),
        "idle client": FakeConn(last_seen=now - 31),
        "client in request": FakeConn(last_seen=now - 500, in_request=True),
        "old subscriber": FakeConn(last_seen=now - 500, subscriber=True),
    }
    reg = FakeRegistry(*conns.values())
    chosen = set(picked(reg, now))
    assert chosen == {conns["stale session"].id, conns["idle client"].id}


async def test_run_reaper_closes_stale_ones_each_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()
    session = FakeConn(last_seen=start, internal_id="iid-1")
    client = FakeConn(last_seen=start)
    subscriber = FakeConn(last_seen=start, subscriber=True)
    reg: Any = FakeRegistry(session, client, subscriber)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: run_reaper(
                reg,
                interval_s=60,
                stale_after_s=90,
                idle_timeout_s=30,
                task_status=task_status,
            )
        )
        await trio.sleep(61)  # first pass at t+60: the plain client has been idle 60 s
        assert len(client.closed_with) == 1 and "idle" in (client.closed_with[0] or "")
        assert session.closed_with == [] and subscriber.closed_with == []
        del reg.conns[client.id]  # what closing does in the real server
        await trio.sleep(60)  # second pass at t+120: the session client missed its heartbeats
        assert len(session.closed_with) == 1 and "no heartbeat" in (session.closed_with[0] or "")
        assert subscriber.closed_with == []
        nursery.cancel_scope.cancel()


async def test_run_reaper_skips_a_connection_gone_meanwhile(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class Vanishing(FakeRegistry):
        """``conns`` loses the connection between the selection and the close."""

        def __init__(self, conn: FakeConn) -> None:
            super().__init__(conn)
            self.reads = 0

        @property  # type: ignore[override]
        def conns(self) -> dict[int, FakeConn]:
            self.reads += 1
            return self._conns if self.reads % 2 else {}

        @conns.setter
        def conns(self, value: dict[int, FakeConn]) -> None:
            self._conns = value

    conn = FakeConn(last_seen=trio.current_time())
    reg: Any = Vanishing(conn)
    with trio.move_on_after(200):
        await run_reaper(reg, interval_s=60, stale_after_s=90, idle_timeout_s=30)
    assert conn.closed_with == [] and reg.reads >= 4
