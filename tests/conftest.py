"""Shared fixtures: a real daemon in-process on the test's nursery, in a short temp dir."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from ccc_statusd import protocol
from ccc_statusd.config import DaemonConfig
from ccc_statusd.daemon import run_daemon
from ccc_statusd.hub import Hub
from ccc_statusd.paths import Paths

from .helpers import short_tmpdir


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A fresh directory with a short path, removed after the test (tests/helpers.py: AF_UNIX
    paths are limited to ~107 bytes, and pytest's tmp_path is often longer)."""
    d = short_tmpdir("ccc-t-")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def cache_dir() -> Iterator[Path]:
    """The daemon's cache dir (its socket lives there): short, like ``short_dir``."""
    d = short_tmpdir("ccc-")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def paths(cache_dir: Path) -> Paths:
    return Paths(cache_dir)


@pytest.fixture
def config(paths: Paths) -> DaemonConfig:
    return DaemonConfig(paths=paths, enable_watchers=False, request_timeout_s=2.0)


@pytest.fixture
async def daemon(nursery: trio.Nursery, config: DaemonConfig) -> Hub:
    """The real daemon on the test's nursery; cancelled when the test ends."""
    hub: Hub = await nursery.start(run_daemon, config)
    return hub


class LineClient:
    """A raw protocol client over a real Unix socket, for tests."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.framer = protocol.LineFramer(16 * 1024 * 1024)
        self.lines: list[bytes] = []

    async def send(self, obj: dict[str, Any] | bytes) -> None:
        data = obj if isinstance(obj, bytes) else protocol.encode_dict(obj)
        await self.stream.send_all(data)

    async def recv(self) -> dict[str, Any]:
        while not self.lines:
            data = await self.stream.receive_some(65536)
            if not data:
                raise EOFError("daemon closed the connection")
            self.lines.extend(self.framer.feed(data))
        return json.loads(self.lines.pop(0))

    async def request(self, obj: dict[str, Any] | bytes) -> dict[str, Any]:
        await self.send(obj)
        return await self.recv()

    async def aclose(self) -> None:
        await self.stream.aclose()


@pytest.fixture
async def connect(paths: Paths) -> AsyncIterator[Any]:
    clients: list[LineClient] = []

    async def _connect() -> LineClient:
        c = LineClient(await trio.open_unix_socket(str(paths.socket)))
        clients.append(c)
        return c

    yield _connect
    for c in clients:
        with trio.CancelScope(shield=True):
            await c.aclose()


async def answer_routed(client: LineClient, result: dict[str, Any] | None = None) -> dict[str, Any]:
    """Act as a session client once: read one routed message and answer it."""
    msg = await client.recv()
    reply = {
        "type": "response",
        "request_id": msg["request_id"],
        **(result or {"data": {"ok": True}}),
    }
    await client.send(reply)
    return msg
