"""The hub's owners working together on a real daemon: the one state transition (pane death
reaches a waiting ask), asks that are orphaned or would deadlock, takeovers, bounded ingest."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from ccc_statusd.discovery import on_pane
from ccc_statusd.hub import Hub
from ccc_statusd.store import Store

from .conftest import LineClient
from .fixtures import hook
from .helpers import wait_until
from .test_session_flow import attach, send_hook

A = "aaaa0000-1111-2222-3333-444444444444"
B = "bbbb0000-1111-2222-3333-444444444444"


async def adopted_busy(hooks: LineClient, sid: str, pid: str, pane: str) -> None:
    """A session known from its hooks only, in a tmux pane, in the middle of a turn."""
    await send_hook(hooks, hook("SessionStart-startup", sid), None, CLAUDE_PID=pid, TMUX_PANE=pane)
    await send_hook(hooks, hook("UserPromptSubmit", sid, prompt="x"), None, CLAUDE_PID=pid)


async def test_an_ask_hears_at_once_when_the_pane_of_its_session_dies(
    daemon: Hub, connect: Any
) -> None:
    hooks, asker = await connect(), await connect()
    await adopted_busy(hooks, A, "4242", "%7")
    async with trio.open_nursery() as n:
        replies: list[dict[str, Any]] = []

        async def ask() -> None:
            replies.append(
                await asker.request({"type": "ask", "session_id": A, "text": "still there?"})
            )

        n.start_soon(ask)

        async def queued() -> bool:
            return await daemon.store.call(Store.count_scheduled, A) == 1

        await wait_until(queued)
        with trio.fail_after(2):  # not the ask's 600 s timeout
            on_pane(daemon, A, alive=False)
            while not replies:  # noqa: ASYNC110 - the reply comes from the daemon's task
                await trio.sleep(0.01)
    assert "ended before answering" in replies[0]["error"]
    assert "still queued" in replies[0]["error"]
    assert daemon.registry.by_session_id(A).state == "ended"  # type: ignore[union-attr]


async def test_an_orphaned_ask_is_cancelled_with_its_queued_prompt(
    daemon: Hub, connect: Any
) -> None:
    hooks, asker = await connect(), await connect()
    await adopted_busy(hooks, A, "4243", "%8")
    await asker.send({"type": "ask", "session_id": A, "text": "q", "data": {"timeout_s": 86400}})

    async def queued() -> bool:
        return await daemon.store.call(Store.count_scheduled, A) == 1

    await wait_until(queued)
    await asker.aclose()  # the asker goes away (Ctrl-C, a killed agent)

    async def cleaned() -> bool:
        return (
            await daemon.store.call(Store.count_scheduled, A) == 0
            and daemon.scheduler.count == 0
            and not any(c.in_request for c in daemon.server.conns.values())  # type: ignore[union-attr]
        )

    await wait_until(cleaned)


async def test_an_ask_that_would_close_a_cycle_is_refused_at_once(
    daemon: Hub, connect: Any
) -> None:
    a, b, hooks, a_asks = await connect(), await connect(), await connect(), await connect()
    for c, iid, sid in ((a, "iid-a", A), (b, "iid-b", B)):
        reply = await c.request({"type": "register", "internal_id": iid, "session_id": sid})
        assert reply.get("error") is None
    # B is busy: A's question waits in B's outbox.
    await send_hook(hooks, hook("UserPromptSubmit", B, prompt="work"), "iid-b")
    await a_asks.send({"type": "ask", "session_id": B, "text": "q1", "internal_id": "iid-a"})

    async def waiting() -> bool:
        return ("iid-a", "iid-b") in daemon.asks.graph.edges

    await wait_until(waiting)
    b_asks = await connect()
    with trio.fail_after(2):
        reply = await b_asks.request(
            {"type": "ask", "session_id": A, "text": "q2", "internal_id": "iid-b"}
        )
    assert "would deadlock" in reply["error"] and "send_prompt" in reply["error"]


async def test_a_taken_over_session_client_is_told_closed_and_announced(
    daemon: Hub, connect: Any
) -> None:
    watcher = await connect()
    await watcher.request({"type": "query", "query": "subscribe"})
    old = await connect()
    await old.request({"type": "register", "internal_id": "iid-old", "session_id": A})
    new = await connect()
    reply = await new.request({"type": "register", "internal_id": "iid-new", "session_id": A})
    assert reply.get("error") is None and reply["session_id"] == A
    last = await old.recv()
    assert "replaced by a newer connection" in last["error"]
    with trio.fail_after(2):
        while True:
            event = await watcher.recv()
            if event.get("event") == "taken_over":
                break
    assert event["by_pid"] and event["internal_id"] == "iid-old"
    info = daemon.registry.by_session_id(A)
    assert info is not None and info.key == "iid-new" and info.connected
    old_info = daemon.registry.sessions.get("iid-old")  # forgotten: it has no id left
    assert old_info is None or not old_info.connected


async def test_associate_is_accepted_from_any_connection_of_the_user(
    daemon: Hub, connect: Any
) -> None:
    await attach(connect, "iid-assoc")
    hook_process = await connect()
    reply = await hook_process.request(
        {"type": "associate", "internal_id": "iid-assoc", "session_id": A}
    )
    assert reply.get("error") is None and reply["session_id"] == A
    reply = await hook_process.request(
        {"type": "associate", "internal_id": "iid-nobody", "session_id": B}
    )
    assert "is not registered" in reply["error"]


async def test_what_clients_make_the_daemon_keep_is_bounded(daemon: Hub, connect: Any) -> None:
    hooks = await connect()
    for i in range(40):
        await send_hook(
            hooks,
            hook("SessionStart-startup", f"cfg{i:04d}-0000"),
            None,
            CLAUDE_PID=str(5000 + i),
            CLAUDE_CONFIG_DIR=f"/tmp/no-such-config-{i}",
        )
    assert len(daemon.directory.config_dirs) == daemon.config.max_client_config_dirs
    reply = await hooks.request(
        {
            "type": "statusline",
            "data": {
                "session_id": "cfg0000-0000",
                "rate_limits": {"x": "y" * 100_000},
                "model": {"display_name": "m" * 100_000},
            },
        }
    )
    assert reply.get("error") is None
    info = daemon.registry.by_session_id("cfg0000-0000")
    assert info is not None and info.rate_limits is None and info.model != "m" * 100_000


async def test_a_copied_transcript_never_becomes_a_session(daemon: Hub) -> None:
    daemon.directory.set_transcript("6656f299 (copy)", {"transcript_path": "/x (copy).jsonl"})
    assert "6656f299 (copy)" not in daemon.directory.known_ids()
    assert "6656f299 (copy)" not in daemon.directory.transcripts


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 1 MiB tmpfs (root only: skipped elsewhere, with the reason)."""
    d = Path(tempfile.mkdtemp(prefix="ccc-full-", dir="/tmp"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(d)], capture_output=True
    )
    if mounted.returncode != 0:
        d.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)
        d.rmdir()


def fill(path: Path) -> None:
    """Write zeros until the disk says no."""
    with open(path, "wb") as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()


async def test_a_full_disk_is_named_and_nothing_stored_is_lost(
    nursery: trio.Nursery, small_disk: Path
) -> None:
    from ccc_statusd.config import DaemonConfig
    from ccc_statusd.daemon import run_daemon
    from ccc_statusd.paths import Paths

    paths = Paths(small_disk)
    hub: Hub = await nursery.start(
        run_daemon, DaemonConfig(paths=paths, enable_watchers=False, request_timeout_s=2.0)
    )
    c = LineClient(await trio.open_unix_socket(str(paths.socket)))
    hooks = LineClient(await trio.open_unix_socket(str(paths.socket)))
    await adopted_busy(hooks, A, "4244", "%9")
    first = await c.request({"type": "prompt", "session_id": A, "text": "kept"})
    assert first["status"] == "queued"
    filler = small_disk / "filler"
    fill(filler)
    reply = await c.request({"type": "prompt", "session_id": A, "text": "x" * 300_000})
    assert "the disk is full" in reply["error"] and "df -h" in reply["error"]
    filler.unlink()
    rows = await hub.store.call(Store.scheduled, A)
    assert [r["message"] for r in rows] == ["kept"]
    await c.aclose()
    await hooks.aclose()


async def test_a_container_session_is_read_at_its_host_path(
    nursery: trio.Nursery, cache_dir: Path
) -> None:
    """--path-map /workspace=HOST: a hook from a container names /workspace/...; the daemon
    reads the transcript at HOST/... (here for an ask's reply, which falls back to it)."""
    import json

    from ccc_statusd.config import DaemonConfig
    from ccc_statusd.daemon import run_daemon
    from ccc_statusd.pathmap import build
    from ccc_statusd.paths import Paths

    host = cache_dir / "proj"
    host.mkdir()
    line = {"type": "assistant", "message": {"content": [{"type": "text", "text": "mapped"}]}}
    (host / "t.jsonl").write_text(json.dumps(line) + "\n")
    paths = Paths(cache_dir)
    config = DaemonConfig(
        paths=paths,
        enable_watchers=False,
        request_timeout_s=2.0,
        path_maps=build([("/workspace", str(host))]),
    )
    hub: Hub = await nursery.start(run_daemon, config)
    session = LineClient(await trio.open_unix_socket(str(paths.socket)))
    hooks = LineClient(await trio.open_unix_socket(str(paths.socket)))
    asker = LineClient(await trio.open_unix_socket(str(paths.socket)))
    await session.request({"type": "register", "internal_id": "iid-box", "session_id": A})
    start = hook("SessionStart-startup", A, transcript_path="/workspace/t.jsonl", cwd="/workspace")
    await send_hook(hooks, start, "iid-box")
    info = hub.registry.by_session_id(A)
    assert info is not None and info.transcript_path == str(host / "t.jsonl")
    assert info.cwd == str(host) and info.container == "/workspace"
    async with trio.open_nursery() as n:
        replies: list[dict[str, Any]] = []

        async def ask() -> None:
            replies.append(await asker.request({"type": "ask", "session_id": A, "text": "q"}))

        n.start_soon(ask)
        routed = await session.recv()
        await session.send({"type": "response", "request_id": routed["request_id"]})
        stop = hook("Stop", A, transcript_path="/workspace/t.jsonl")
        stop.pop("last_assistant_message", None)
        await send_hook(hooks, stop, "iid-box")
    assert replies[0]["data"]["reply"] == "mapped"
    for c in (session, hooks, asker):
        await c.aclose()


async def test_cancel_scheduled_through_the_daemon(daemon: Hub, connect: Any) -> None:
    hooks, c = await connect(), await connect()
    await adopted_busy(hooks, A, "4245", "%10")
    queued = await c.request({"type": "prompt", "session_id": A, "text": "later"})
    row_id = queued["data"]["id"]
    reply = await c.request(
        {"type": "query", "query": "cancel_scheduled", "data": {"id": row_id[:6]}}
    )
    assert reply["data"] == {"cancelled": row_id} and daemon.scheduler.count == 0
    again = await c.request({"type": "query", "query": "cancel_scheduled", "data": {"id": row_id}})
    assert "no scheduled message matches" in again["error"]


async def test_many_concurrent_deliveries_to_one_client_are_all_answered(
    daemon: Hub, connect: Any
) -> None:
    """Replies arriving while other requests to the same client start and finish: each sender
    gets its own answer (a stale pending-table cleanup once dropped a live request's entry,
    and its sender waited for the timeout)."""
    session = await connect()
    await session.request({"type": "register", "internal_id": "iid-many", "session_id": A})

    async def answer_all() -> None:
        while True:
            msg = await session.recv()
            if msg.get("type") == "prompt":
                await session.send({"type": "response", "request_id": msg["request_id"]})

    errors: list[str] = []

    async def sender(n: int) -> None:
        c = await connect()
        for i in range(25):
            reply = await c.request({"type": "prompt", "session_id": A, "text": f"{n}-{i}"})
            if reply.get("error"):
                errors.append(reply["error"])

    with trio.fail_after(30):
        async with trio.open_nursery() as n:
            n.start_soon(answer_all)
            async with trio.open_nursery() as senders:
                for k in range(8):
                    senders.start_soon(sender, k)
            n.cancel_scope.cancel()
    assert errors == []
    assert daemon.clients.pending_count(daemon.clients.by_key["iid-many"].id) == 0


async def test_a_reconnect_under_the_same_internal_id_keeps_the_session_going(
    daemon: Hub, connect: Any
) -> None:
    watcher = await connect()
    await watcher.request({"type": "query", "query": "subscribe"})
    first = await connect()
    await first.request({"type": "register", "internal_id": "iid-same", "session_id": A})
    second = await connect()
    reply = await second.request({"type": "register", "internal_id": "iid-same", "session_id": A})
    assert reply.get("error") is None
    info = daemon.registry.by_session_id(A)
    assert info is not None and info.connected and info.state != "ended"
    kinds = []
    with trio.move_on_after(0.5):
        while True:
            kinds.append((await watcher.recv()).get("event"))
    assert "taken_over" in kinds and "disconnected" not in kinds, kinds
