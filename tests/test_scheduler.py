"""The scheduler on virtual time: due order, early wake, offline sessions, ack before delete."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
import trio

from ccc_statusd.config import DaemonConfig
from ccc_statusd.daemon import run_daemon
from ccc_statusd.hub import Hub
from ccc_statusd.scheduler import Delivered, Failed, InvalidMessage, Scheduler
from ccc_statusd.store import ScheduleFull, Store
from ccc_statusd.storeworker import StoreWorker

from .conftest import LineClient

BASE_WALL = 1_800_000_000.0


@pytest.fixture
async def vdaemon(nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, paths) -> Hub:
    """The daemon with its wall clock driven by Trio's virtual clock."""
    config = DaemonConfig(
        paths=paths,
        enable_watchers=False,
        request_timeout_s=1000.0,
        scheduler_retry_s=30.0,
        stale_after_s=1e6,
        store_inline=True,
    )
    wall = lambda: BASE_WALL + trio.current_time()  # noqa: E731
    return await nursery.start(partial(run_daemon, config, wall=wall))


async def add(hub: Hub, sid: str, text: str, in_s: float, **kw) -> dict:
    """Insert a row the way the CLI does: its own connection, synchronously.

    (Awaiting a worker thread would let the autojump clock leap ahead mid-insert.)
    """
    store = Store(hub.config.paths.db)
    try:
        return store.add_scheduled(sid, text, int(hub.wall() + in_s), **kw)
    finally:
        store.close()


async def register(connect, iid: str, sid: str) -> LineClient:
    c = await connect()
    reply = await c.request(
        {"type": "register", "internal_id": iid, "session_id": sid, "request_id": "reg"}
    )
    assert reply.get("error") is None
    return c


async def serve(client: LineClient, log: list, *, answer: bool = True) -> None:
    while True:
        try:
            msg = await client.recv()
        except (EOFError, trio.ClosedResourceError):
            return
        if msg.get("type") not in ("prompt", "command"):
            continue
        log.append((trio.current_time(), msg))
        if answer:
            await client.send({"type": "response", "request_id": msg["request_id"], "data": {}})


async def test_due_order_and_never_early(vdaemon: Hub, connect, nursery, autojump_clock) -> None:
    client = await register(connect, "iid-s", "sched-0001")
    log: list = []
    nursery.start_soon(serve, client, log)
    start = trio.current_time()
    await add(vdaemon, "sched-0001", "second", 300)
    await add(vdaemon, "sched-0001", "first", 120)
    await (await connect()).request({"type": "query", "query": "reload_schedule"})
    await trio.sleep(400)
    assert [m["text"] for _, m in log] == ["first", "second"]
    assert log[0][0] - start >= 119 and log[1][0] - start >= 299
    assert await vdaemon.store.call(Store.scheduled) == []


async def test_reload_wakes_early(vdaemon: Hub, connect, nursery, autojump_clock) -> None:
    client = await register(connect, "iid-w", "wake-0001")
    log: list = []
    nursery.start_soon(serve, client, log)
    await trio.sleep(5)  # the scheduler is now asleep (up to its 60 s re-read)
    t0 = trio.current_time()
    await add(vdaemon, "wake-0001", "now please", 0)
    await (await connect()).request({"type": "query", "query": "reload_schedule"})
    await trio.sleep(1)
    assert [m["text"] for _, m in log] == ["now please"]
    assert log[0][0] - t0 < 1


async def test_offline_session_keeps_message_and_gets_it_on_register(
    vdaemon: Hub, connect, nursery, autojump_clock
) -> None:
    row = await add(vdaemon, "offline-0001", "hello later", 0)
    vdaemon.scheduler.wake()
    await trio.sleep(1)
    stored = await vdaemon.store.call(Store.scheduled_one, row["id"])
    assert stored["attempts"] >= 1 and "no session matches" in stored["last_error"]
    t0 = trio.current_time()
    client = await register(connect, "iid-o", "offline-0001")
    log: list = []
    nursery.start_soon(serve, client, log)
    await trio.sleep(1)
    assert [m["text"] for _, m in log] == ["hello later"]
    assert log[0][0] - t0 < 1, "registration must trigger delivery, not the back-off timer"
    assert await vdaemon.store.call(Store.scheduled_one, row["id"]) is None


async def test_row_deleted_only_after_ack(vdaemon: Hub, connect, nursery, autojump_clock) -> None:
    client = await register(connect, "iid-a", "ack-0001")
    row = await add(vdaemon, "ack-0001", "must not be lost", 0)
    vdaemon.scheduler.wake()
    msg = await client.recv()  # received but not acknowledged...
    assert msg["text"] == "must not be lost"
    assert await vdaemon.store.call(Store.scheduled_one, row["id"]) is not None
    await client.aclose()  # ...and the client vanishes: the row stays, with the error
    await trio.sleep(1)
    stored = await vdaemon.store.call(Store.scheduled_one, row["id"])
    assert stored is not None and "disconnected" in stored["last_error"]


async def test_cancelled_row_is_never_delivered(
    vdaemon: Hub, connect, nursery, autojump_clock
) -> None:
    client = await register(connect, "iid-c", "cancel-0001")
    log: list = []
    nursery.start_soon(serve, client, log)
    row = await add(vdaemon, "cancel-0001", "never", 60)
    await trio.sleep(10)
    assert await vdaemon.store.call(Store.delete_scheduled, row["id"])
    await trio.sleep(120)
    assert log == []


async def test_reaper_closes_silent_session_client(nursery, autojump_clock, paths, connect) -> None:
    config = DaemonConfig(
        paths=paths,
        enable_watchers=False,
        reaper_interval_s=60,
        stale_after_s=90,
        store_inline=True,
    )
    hub: Hub = await nursery.start(run_daemon, config)
    quiet = await register(connect, "iid-quiet", "quiet-0001")
    alive = await register(connect, "iid-alive", "alive-0001")
    for _ in range(8):  # heartbeats every 30 s keep one alive
        await trio.sleep(30)
        assert (await alive.request({"type": "heartbeat", "internal_id": "iid-alive"})).get(
            "error"
        ) is None
    assert "iid-quiet" not in hub.clients.by_key  # type: ignore[union-attr]
    assert "iid-alive" in hub.clients.by_key  # type: ignore[union-attr]
    last = await quiet.recv()
    assert "no heartbeat" in last["error"]
    hub.registry.check_consistent()


# --- the scheduler alone, with a stand-in deliverer -----------------------------------------


class StandIn:
    """A Deliverer that answers each row with the next scripted outcome (or raises it)."""

    def __init__(self, outcomes: dict[str, list[Any]]) -> None:
        self.outcomes = outcomes
        self.tried: list[str] = []
        self.reports: list[tuple[str, Any, int, bool]] = []

    async def deliver_row(self, row: dict[str, Any]) -> Any:
        self.tried.append(row["message"])
        todo = self.outcomes.get(row["message"]) or [Delivered()]
        outcome = todo.pop(0) if len(todo) > 1 else todo[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def report_row(self, row: dict[str, Any], outcome: Any, *, attempts: int, parked: bool) -> None:
        self.reports.append((row["message"], outcome, attempts, parked))


@pytest.fixture
def sched(paths) -> Iterator[Scheduler]:
    store = StoreWorker(Store(paths.db), inline=True)
    yield Scheduler(store, wall=lambda: BASE_WALL + trio.current_time(), retry_s=30.0)
    store._store.close()


async def test_a_permanent_failure_is_parked_and_never_blocks_later_rows(
    sched: Scheduler, autojump_clock: trio.testing.MockClock
) -> None:
    await sched.enqueue("sess-0001", "prompt", "first")
    await sched.enqueue("sess-0001", "prompt", "second")
    d = StandIn({"first": [Failed("cannot be typed", permanent=True)]})
    await sched.run_due(d)  # first: parked; second waits for the next pass (one per pass)
    await sched.run_due(d)
    assert d.tried == ["first", "second"]
    rows = await sched.store.call(Store.scheduled)
    assert [(r["message"], r["state"], r["last_error"]) for r in rows] == [
        ("first", "parked", "cannot be typed")
    ]
    assert sched.count == 1  # parked rows stay listed
    await sched.run_due(d)
    assert d.tried == ["first", "second"]  # a parked row is never tried again


async def test_an_unexpected_exception_is_a_failure_of_that_row_only(
    sched: Scheduler, autojump_clock: trio.testing.MockClock
) -> None:
    await sched.enqueue("sess-0002", "prompt", "boom")
    d = StandIn({"boom": [ValueError("bug"), Delivered()]})
    delay = await sched.run_due(d)
    row = (await sched.store.call(Store.scheduled))[0]
    assert row["attempts"] == 1 and "ValueError: bug" in row["last_error"]
    assert row["state"] == "pending" and 0 < delay <= 30.0
    await trio.sleep(delay)
    await sched.run_due(d)
    assert await sched.store.call(Store.scheduled) == [] and sched.count == 0


async def test_transient_failures_back_off_and_are_never_parked(
    sched: Scheduler, autojump_clock: trio.testing.MockClock
) -> None:
    """A session that is away (not connected, not running) gets its message when it is back:
    the row backs off (up to max_retry_s) and stays pending, with its last error."""
    await sched.enqueue("sess-0003", "prompt", "flaky")
    d = StandIn({"flaky": [Failed("not connected")]})
    delays = []
    for _ in range(12):
        delay = await sched.run_due(d)
        delays.append(delay)
        await trio.sleep(delay)
    row = (await sched.store.call(Store.scheduled))[0]
    assert row["state"] == "pending" and row["attempts"] >= 5
    assert max(delays) <= sched.max_retry_s and delays[1] > delays[0]
    assert not any(parked for *_, parked in d.reports)


async def test_enqueue_refuses_what_could_never_be_typed(sched: Scheduler) -> None:
    for session, kind, message, name in (
        ("6656f299 (copy)", "prompt", "hi", None),
        ("sess-0004", "command", "", "bad!name"),
        ("sess-0004", "prompt", "   ", None),
        ("sess-0004", "eval", "1+1", None),
    ):
        with pytest.raises(InvalidMessage):
            await sched.enqueue(session, kind, message, command_name=name)
    assert await sched.store.call(Store.count_scheduled) == 0


async def test_caps_refuse_a_flood_with_a_sentence(sched: Scheduler) -> None:
    sched.max_per_session = 2
    sched.max_total = 3
    await sched.enqueue("sess-0005", "prompt", "a")
    await sched.enqueue("sess-0005", "prompt", "b")
    with pytest.raises(ScheduleFull, match="already has 2 messages waiting"):
        await sched.enqueue("sess-0005", "prompt", "c")
    await sched.enqueue("sess-0006", "prompt", "d")
    with pytest.raises(ScheduleFull, match="the schedule is full"):
        await sched.enqueue("sess-0007", "prompt", "e")


async def test_a_row_being_typed_cannot_be_cancelled(sched: Scheduler) -> None:
    row = await sched.enqueue("sess-0008", "prompt", "typing")
    assert await sched.store.call(Store.claim_scheduled, row["id"]) is not None
    assert await sched.cancel(row["id"]) == "in_flight"
    await sched.store.call(Store.release_scheduled, row["id"], None, 0, park=False)
    assert await sched.cancel(row["id"]) == "cancelled" and sched.count == 0
    assert await sched.cancel(row["id"]) == "missing"


async def test_a_flooded_outbox_costs_a_few_rows_per_pass(sched: Scheduler) -> None:
    for i in range(50):
        await sched.enqueue("sess-0009", "prompt", f"m{i}")
    await sched.enqueue("sess-0010", "prompt", "other")
    due = await sched.store.call(Store.due_scheduled, int(sched.wall()) + 10, 4)
    assert len(due) == 5 and due[-1]["message"] == "other"
