"""The daemon's one door to the database: store calls run off the event loop, one at a time.

SQLite work blocks, so it never runs on the Trio thread. A ``CapacityLimiter(1)`` serialises
the calls (one connection, one writer), and each call is one transaction (``Store`` methods).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import trio

from .store import Store

T = TypeVar("T")


class StoreWorker:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._limiter = trio.CapacityLimiter(1)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on a worker thread (``fn`` is usually a bound Store method)."""
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    async def run(self, method: str, *args: Any) -> Any:
        return await self.call(getattr(self.store, method), *args)

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self.call(self.store.close)
