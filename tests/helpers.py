"""Two helpers every test uses the same way: a short temp dir for Unix sockets, and waiting for
a condition instead of sleeping a fixed time and hoping.

- ``short_tmpdir()``: ``/tmp/<prefix>XXXX`` (AF_UNIX paths are limited to 107 bytes; pytest's
  ``tmp_path`` is often longer). The ``short_dir`` fixture in conftest.py wraps it and removes
  the directory after the test.
- ``wait_until(predicate)`` (Trio) and ``wait_until_sync(predicate)`` (threads, subprocesses):
  poll ``predicate`` until it returns something truthy and return that; fail with ``what`` (a
  string, or a callable asked at failure time; else the predicate's name) after ``limit_s`` seconds (a Trio-named parameter: ruff's ASYNC109
  forbids ``timeout``). The Trio variant accepts sync or async
  predicates and runs under a MockClock as well (it sleeps on Trio's clock).
"""

from __future__ import annotations

import inspect
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, overload

import trio

T = TypeVar("T")

POLL_S = 0.01
LIMIT_S = 10.0


def short_tmpdir(prefix: str = "ccc-") -> Path:
    """A new empty directory with a short path under /tmp; the caller removes it."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


Description = str | Callable[[], str] | None


def _describe(predicate: Callable[[], object], what: Description) -> str:
    """``what`` (a callable is asked at failure time, to show the state then), else the name."""
    if callable(what):
        return what()
    return what or str(getattr(predicate, "__name__", predicate))


@overload
async def wait_until(
    predicate: Callable[[], Awaitable[T]],
    *,
    limit_s: float = ...,
    interval_s: float = ...,
    what: Description = ...,
) -> T: ...


@overload
async def wait_until(
    predicate: Callable[[], T],
    *,
    limit_s: float = ...,
    interval_s: float = ...,
    what: Description = ...,
) -> T: ...


async def wait_until(
    predicate: Callable[[], Any],
    *,
    limit_s: float = LIMIT_S,
    interval_s: float = POLL_S,
    what: Description = None,
) -> Any:
    """Poll ``predicate`` (sync or async) on Trio's clock until it is truthy; return its value."""
    with trio.move_on_after(limit_s):
        while True:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            await trio.sleep(interval_s)
    raise AssertionError(
        f"timed out after {limit_s:g} s waiting until {_describe(predicate, what)}"
    )


def wait_until_sync(
    predicate: Callable[[], T],
    *,
    limit_s: float = LIMIT_S,
    interval_s: float = POLL_S,
    what: Description = None,
) -> T:
    """Poll ``predicate`` until it is truthy and return its value (for threads/subprocesses)."""
    deadline = time.monotonic() + limit_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {limit_s:g} s waiting until {_describe(predicate, what)}"
            )
        time.sleep(interval_s)
