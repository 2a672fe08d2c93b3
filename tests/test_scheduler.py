"""The scheduler on virtual time: due order, early wake, offline sessions, ack before delete."""

from __future__ import annotations

from functools import partial

import pytest
import trio

from ccc_statusd.config import DaemonConfig
from ccc_statusd.daemon import run_daemon
from ccc_statusd.hub import Hub
from ccc_statusd.store import Store

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
