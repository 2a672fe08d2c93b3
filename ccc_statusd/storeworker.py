"""The daemon's one door to the database: store calls run off the event loop, one at a time.

SQLite work blocks, so it never runs on the Trio thread. A ``CapacityLimiter(1)`` serialises
the calls (one connection, one writer), and each call is one transaction (``Store`` methods).
Calls name the method itself (``await worker.call(Store.scheduled, sid)``), so mypy checks
the arguments and the result type of every one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

import trio

from .store import Store

T = TypeVar("T")
P = ParamSpec("P")


class StoreWorker:
    """``inline=True`` runs calls on the event loop instead: only for virtual-time tests, where a
    worker thread would let Trio's autojump clock leap ahead while SQLite works."""

    def __init__(self, store: Store, *, inline: bool = False) -> None:
        self._store = store
        self.inline = inline
        self._limiter = trio.CapacityLimiter(1)
        self._files = trio.CapacityLimiter(1)

    async def call(
        self, method: Callable[Concatenate[Store, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``method(store, *args, **kwargs)`` on the database thread (one at a time)."""

        def run() -> T:
            return method(self._store, *args, **kwargs)

        if self.inline:
            await trio.lowlevel.checkpoint()
            return run()
        return await trio.to_thread.run_sync(run, limiter=self._limiter)

    async def on_db(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Other work on the same database connection (the transcript index), serialised with
        the store calls."""
        return await self.call(lambda _store: fn(*args, **kwargs))

    async def offload(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Other blocking work (cache files, file reads): off the loop, not queued behind the
        database, and one at a time (two writers of one cache file would share its temp name)."""

        def run() -> T:
            return fn(*args, **kwargs)

        if self.inline:
            await trio.lowlevel.checkpoint()
            return run()
        return await trio.to_thread.run_sync(run, limiter=self._files)

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self.call(Store.close)
