"""The transport under pressure: per-peer and long-lived slot limits, the subscriber cap,
output budgets, read buffers that shrink back, and a shutdown that answers requests in
flight. A real daemon on a real socket each time."""

from __future__ import annotations

import sys
from typing import Any

import trio

from ccc_statusd import protocol
from ccc_statusd.config import DaemonConfig
from ccc_statusd.daemon import run_daemon
from ccc_statusd.hub import Hub
from ccc_statusd.paths import Paths

from .conftest import LineClient
from .helpers import wait_until

PING = {"type": "query", "query": "ping"}


async def start(nursery: trio.Nursery, paths: Paths, **options: Any) -> Hub:
    options = {"enable_watchers": False, "request_timeout_s": 2.0, **options}
    config = DaemonConfig(paths=paths, **options)
    hub: Hub = await nursery.start(run_daemon, config)
    return hub


async def test_one_process_cannot_take_every_slot(
    nursery: trio.Nursery, paths: Paths, connect: Any
) -> None:
    await start(nursery, paths, max_per_peer=3)
    held = [await connect() for _ in range(3)]
    for c in held:
        assert (await c.request(PING))["data"] == "pong"
    extra = await connect()
    reply = await extra.recv()
    assert (
        "too many connections from process" in reply["error"] and "--max-per-peer" in reply["error"]
    )
    await held[0].aclose()

    async def room() -> bool:
        c = await connect()
        try:
            return (await c.request(PING)).get("data") == "pong"
        except EOFError:
            return False

    await wait_until(room)


async def test_long_lived_connections_leave_slots_for_hooks(
    nursery: trio.Nursery, paths: Paths, connect: Any
) -> None:
    await start(nursery, paths, max_connections=6, reserved_short=3, max_per_peer=100)
    subs = []
    for _ in range(3):
        c = await connect()
        assert (await c.request({"type": "query", "query": "subscribe"})).get("error") is None
        subs.append(c)
    fourth = await connect()
    reply = await fourth.request({"type": "register", "internal_id": "iid-late"})
    assert "long-lived" in reply["error"] and "hooks" in reply["error"]
    # ... while a hook still gets in and is answered.
    hook = await connect()
    assert (await hook.request(PING))["data"] == "pong"


async def test_the_subscriber_cap(nursery: trio.Nursery, paths: Paths, connect: Any) -> None:
    await start(nursery, paths, max_subscribers=2)
    for _ in range(2):
        c = await connect()
        assert (await c.request({"type": "query", "query": "subscribe"})).get("error") is None
    c = await connect()
    reply = await c.request({"type": "query", "query": "subscribe"})
    assert "too many event subscribers" in reply["error"]
    assert (await c.request(PING))["data"] == "pong"  # refused, not cut off


async def test_a_session_client_that_never_reads_holds_bounded_memory(
    nursery: trio.Nursery, paths: Paths, connect: Any
) -> None:
    hub = await start(
        nursery,
        paths,
        max_conn_output_bytes=256 * 1024,
        outbound_queue=10_000,
        request_timeout_s=0.01,
    )
    stuck = await connect()
    await stuck.request({"type": "register", "internal_id": "iid-stuck", "session_id": "stuck-1"})
    sender = await connect()
    text = "x" * 100_000
    errors = []
    for _ in range(40):  # 4 MB of prompts to a client that reads none of them
        reply = await sender.request({"type": "prompt", "session_id": "stuck-1", "text": text})
        errors.append(reply.get("error") or "")
        if "not reading its messages" in errors[-1]:
            break
    assert "not reading its messages" in errors[-1], errors
    assert hub.server is not None
    queued = hub.server.stats()["output_bytes_queued"]
    assert queued <= 256 * 1024 + len(text) + 1024, queued


def test_a_read_buffer_shrinks_back_after_a_long_line() -> None:
    framer = protocol.LineFramer(2 * 1024 * 1024)
    assert framer.feed(b"x" * (1024 * 1024) + b"\n") == [b"x" * (1024 * 1024)]
    assert sys.getsizeof(framer._buf) < 1024  # not the 1 MiB it once held


async def test_shutdown_answers_a_request_in_flight(
    nursery: trio.Nursery, paths: Paths, connect: Any
) -> None:
    hub = await start(nursery, paths, request_timeout_s=30.0)
    session = await connect()
    await session.request({"type": "register", "internal_id": "iid-slow", "session_id": "slow-1"})
    sender = await connect()
    await sender.send({"type": "prompt", "session_id": "slow-1", "text": "hi", "request_id": "p"})
    routed = await session.recv()
    assert hub.server is not None
    async with trio.open_nursery() as n:
        n.start_soon(hub.server.drain, 5.0)
        await trio.sleep(0.05)  # the daemon is draining: the answer still gets through
        await session.send({"type": "response", "request_id": routed["request_id"]})
    reply = await sender.recv()
    assert reply["request_id"] == "p" and reply["status"] in ("typed", "submitted")


async def test_a_request_still_running_after_the_grace_is_told_why(
    nursery: trio.Nursery, paths: Paths, connect: Any
) -> None:
    hub = await start(nursery, paths, request_timeout_s=30.0)
    session = await connect()
    await session.request({"type": "register", "internal_id": "iid-hung", "session_id": "hung-1"})
    sender = await connect()
    await sender.send({"type": "prompt", "session_id": "hung-1", "text": "hi"})
    await session.recv()  # never answered
    assert hub.server is not None
    await hub.server.drain(0.2)
    last: LineClient = sender
    reply = await last.recv()
    assert "shutting down" in reply["error"]


def test_the_connection_cap_fits_the_open_files_limit(paths: Paths) -> None:
    """With ``ulimit -n 128`` and the default cap of 16,384, clients past the limit are refused
    at once with a sentence, not left hanging while the log fills with "accept failed"."""
    import resource
    import socket
    import subprocess
    import time

    from .test_daemon_process import DAEMON, ping

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))

    proc = subprocess.Popen(
        [*DAEMON, "--cache-dir", str(paths.cache_dir), "--no-watchers", "--max-per-peer", "1000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=low_limit,
    )
    socks: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 10
        while not ping(paths.socket):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        refused = None
        for _ in range(200):
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(3)
            s.connect(str(paths.socket))
            s.sendall(b'{"type":"query","query":"ping"}\n')
            line = s.makefile().readline()
            socks.append(s)
            if "too many connections" in line:
                refused = line
                break
        assert refused is not None and "--max-connections" in refused
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "accept failed" not in err.decode()
    assert "open-files limit" in paths.log.read_text()
