"""ccc_statusd.storeworker: store calls run off the event loop one at a time, other blocking work
on its own lane, ``call`` with a Store method and keyword arguments (typed), errors come back to the caller,
inline mode (on the Trio thread, for MockClock tests), and ``aclose``."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from collections.abc import Iterator

import pytest
import trio
import trio.testing

from ccc_statusd.store import Store
from ccc_statusd.storeworker import StoreWorker

from .helpers import short_tmpdir, wait_until


@pytest.fixture
def store() -> Iterator[Store]:
    d = short_tmpdir("ccc-sw-")
    s = Store(d / "scheduled.db")
    try:
        yield s
    finally:
        try:
            s.close()
        except sqlite3.ProgrammingError:
            pass  # the test closed it
        shutil.rmtree(d, ignore_errors=True)


class Gate:
    """A blocking function for the worker thread that holds until the test opens the gate."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.open = threading.Event()
        self.threads: list[int] = []

    def __call__(self, value: int) -> int:
        self.threads.append(threading.get_ident())
        self.entered.set()
        assert self.open.wait(30), "the test never opened the gate"
        return value


async def test_call_runs_off_the_event_loop_and_returns(store: Store) -> None:
    worker = StoreWorker(store)
    seen: list[int] = []

    def where(x: int) -> int:
        seen.append(threading.get_ident())
        return x * 2

    assert await worker.on_db(where, 21) == 42
    assert seen and seen[0] != threading.get_ident()


async def test_calls_are_serialised(store: Store) -> None:
    worker = StoreWorker(store)
    gate = Gate()
    results: list[str] = []

    async def first() -> None:
        results.append(f"first {await worker.on_db(gate, 1)}")

    async def second() -> None:
        results.append(f"second {await worker.on_db(lambda: 2)}")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(first)
        await wait_until(gate.entered.is_set, what="the first call started")
        nursery.start_soon(second)
        # The second call waits for the one database lane, however long the first takes.
        await wait_until(
            lambda: worker._limiter.statistics().tasks_waiting == 1,
            what="the second call queued behind the first",
        )
        assert results == []
        gate.open.set()
    assert results == ["first 1", "second 2"]


async def test_offload_is_not_queued_behind_the_database(store: Store) -> None:
    worker = StoreWorker(store)
    gate = Gate()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker.on_db, gate, 1)
        await wait_until(gate.entered.is_set, what="the database call started")
        assert await worker.offload(lambda x: x + 1, 1) == 2
        gate.open.set()


async def test_offloads_are_serialised_among_themselves(store: Store) -> None:
    worker = StoreWorker(store)
    gate = Gate()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker.offload, gate, 1)
        await wait_until(gate.entered.is_set, what="the first offload started")
        nursery.start_soon(worker.offload, lambda: None)
        await wait_until(lambda: worker._files.statistics().tasks_waiting == 1)
        gate.open.set()


async def test_call_a_store_method_with_args_and_kwargs(store: Store) -> None:
    worker = StoreWorker(store)
    row = await worker.call(
        Store.add_scheduled, "s1", "", 100, kind="command", command_name="c", id="sched-1"
    )
    assert row["id"] == "sched-1" and row["kind"] == "command"
    assert await worker.call(Store.count_scheduled) == 1
    assert await worker.call(Store.count_scheduled, "s1") == 1
    assert [r["id"] for r in await worker.call(Store.scheduled, session_id="s1")] == ["sched-1"]
    assert await worker.call(Store.delete_scheduled, "sched-1") is True
    assert await worker.call(Store.count_scheduled) == 0


async def test_errors_reach_the_caller_and_the_worker_goes_on(store: Store) -> None:
    worker = StoreWorker(store)

    def boom() -> None:
        raise ValueError("store said no")

    with pytest.raises(ValueError, match="store said no"):
        await worker.on_db(boom)
    assert await worker.on_db(lambda: "still here") == "still here"


async def test_inline_mode_runs_on_the_trio_thread(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    worker = StoreWorker(store, inline=True)
    here = threading.get_ident()
    threads: list[int] = []

    def record(x: int) -> int:
        threads.append(threading.get_ident())
        return x

    before = trio.current_time()
    assert await worker.on_db(record, 1) == 1
    assert await worker.offload(record, 2) == 2
    await worker.call(Store.add_scheduled, "s1", "m", 5, id="a")
    assert await worker.call(Store.count_scheduled) == 1
    assert threads == [here, here]
    assert trio.current_time() == before  # no virtual time passed while SQLite worked


async def test_inline_call_is_a_checkpoint(store: Store) -> None:
    worker = StoreWorker(store, inline=True)
    with trio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(trio.Cancelled):
            await worker.on_db(lambda: None)


async def test_aclose_closes_the_store(store: Store) -> None:
    worker = StoreWorker(store)
    await worker.call(Store.add_scheduled, "s1", "m", 5, id="a")
    await worker.aclose()
    with pytest.raises(sqlite3.ProgrammingError):
        store.count_scheduled()
    reopened = Store(store.path)
    try:
        assert reopened.count_scheduled() == 1
    finally:
        reopened.close()


async def test_aclose_finishes_even_when_cancelled(store: Store) -> None:
    worker = StoreWorker(store)
    with trio.CancelScope() as scope:
        scope.cancel()
        await worker.aclose()  # shielded: the store is closed all the same
    with pytest.raises(sqlite3.ProgrammingError):
        store.count_scheduled()
