"""The daemon's one door to the database: store calls run off the event loop, one at a time.

SQLite work blocks, so it never runs on the Trio thread. A ``CapacityLimiter(1)`` serialises
the calls (one connection, one writer), and each call is one transaction (``Store`` methods).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import trio

from .store import Store

T = TypeVar("T")


class StoreWorker:
    """``inline=True`` runs calls on the event loop instead: only for virtual-time tests, where a
    worker thread would let Trio's autojump clock leap ahead while SQLite works."""

    def __init__(self, store: Store, *, inline: bool = False) -> None:
        self.store = store
        self.inline = inline
        self._limiter = trio.CapacityLimiter(1)
        self._files = trio.CapacityLimiter(1)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the worker thread (``fn`` is usually a bound Store method)."""
        if self.inline:
            await trio.lowlevel.checkpoint()
            return fn(*args)
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    async def offload(self, fn: Callable[..., T], *args: Any) -> T:
        """Other blocking work (cache files, file reads): off the loop, not queued behind the
        database, and one at a time (two writers of one cache file would share its temp name)."""
        if self.inline:
            await trio.lowlevel.checkpoint()
            return fn(*args)
        return await trio.to_thread.run_sync(fn, *args, limiter=self._files)

    async def run(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``Store.<method>(*args, **kwargs)`` off the event loop."""
        fn = getattr(self.store, method)
        return await self.call(
            partial(fn, *args, **kwargs) if kwargs else fn, *args if not kwargs else ()
        )

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self.call(self.store.close)
