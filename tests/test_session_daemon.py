"""`ccc run` + `ccc hook` against the real daemon (in-process): the stand-in TUI's hooks reach
the daemon through ``python -m ccc_statusd.hookcmd``, and ``prompt``/``command`` senders on the
daemon's socket get their text typed into the pty.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trio

from ccc_statusd.config import DaemonConfig
from ccc_statusd.daemon import run_daemon
from ccc_statusd.hub import Hub
from ccc_statusd.paths import Paths

from .helpers import wait_until
from .session_fakes import STEP_TIMEOUT_S, Session, spawn_ccc_run, stop_process

SENT = ("typed", "submitted")  # a prompt or command the session client typed

HOOK_CMD = f"{sys.executable} -m ccc_statusd.hookcmd"


@pytest.fixture
def config(paths: Paths) -> DaemonConfig:
    # A quick scheduler retry: a queued message that a session declined once (the user had
    # just typed) is tried again soon.
    return DaemonConfig(
        paths=paths, enable_watchers=False, request_timeout_s=5.0, scheduler_retry_s=0.2
    )


@pytest.fixture
async def ccc_run(nursery: trio.Nursery, paths: Paths) -> AsyncIterator[Callable[..., Any]]:
    sessions: list[Session] = []

    async def start(**options: Any) -> Session:
        s = await spawn_ccc_run(nursery, paths.cache_dir, hook_cmd=HOOK_CMD, **options)
        sessions.append(s)
        await s.ready()
        return s

    yield start
    for s in sessions:
        await stop_process(s.proc)
        s.term.close()


async def wait_connected(hub: Hub, session_id: str) -> None:
    """Until the daemon maps ``session_id`` to a connected session client."""

    def connected() -> bool:
        info = hub.registry.by_session_id(session_id)
        return info is not None and info.connected and bool(info.internal_id)

    await wait_until(connected, limit_s=STEP_TIMEOUT_S, what=f"{session_id} is connected")


async def wait_turn_over(connect: Any, session_id: str, text: str | None = None) -> None:
    """Until the daemon lists the session (by any of its ids) idle, and, given ``text``, with
    that prompt submitted: the turn's hooks (each from a `ccc hook` process of its own) have
    all arrived, so the settle window after the delivery is over too."""
    client = await connect()

    async def over() -> bool:
        listed = (await client.request({"type": "query", "query": "list_sessions"}))["data"]
        for s in listed:
            if session_id not in [s.get("session_id"), *s.get("aliases", [])]:
                continue
            last = s.get("last_delivery") or {}
            done = text is None or (last.get("text") == text and last.get("submitted") is True)
            return bool(s["state"] == "idle" and done)
        return False

    await wait_until(over, limit_s=STEP_TIMEOUT_S, what=f"the turn of {session_id} is over")


async def send(connect: Any, msg: dict[str, Any]) -> dict[str, Any]:
    client = await connect()
    reply: dict[str, Any] = await client.request(msg)
    return reply


async def test_prompt_command_and_clear_alias(daemon: Hub, connect: Any, ccc_run: Any) -> None:
    # No post-delivery guard in the client (test_session_pty covers it): each step waits for
    # the daemon to see the session idle, then its message must be delivered, not queued.
    s: Session = await ccc_run(delivery_guard=0.0)
    sid = s.session_ids()[0]
    await wait_connected(daemon, sid)

    reply = await send(connect, {"type": "prompt", "session_id": sid[:8], "text": "hello\ndaemon"})
    assert reply.get("error") is None, reply
    assert reply["status"] in SENT
    assert reply["data"]["delivered_via"] == "pty"
    await s.wait_record(lambda r: r["event"] == "stop" and r["prompt"] == "hello\ndaemon")

    await wait_turn_over(connect, sid, "hello")
    reply = await send(connect, {"type": "command", "session_id": sid, "name": "/clear"})
    assert reply.get("error") is None, reply
    await s.wait_record(lambda r: r["event"] == "cleared")
    new_sid = s.session_ids()[1]
    assert new_sid != sid
    # `ccc hook` told the session client its new id (it re-registers with it after a restart)
    assert (s.record.parent / f"run-{s.iid}.session").read_text() == new_sid
    await wait_connected(daemon, new_sid)

    await wait_turn_over(connect, new_sid)  # SessionStart{source: clear} said idle
    reply = await send(connect, {"type": "prompt", "session_id": sid, "text": "via old alias"})
    assert reply.get("error") is None and reply["status"] in SENT, reply
    row = await s.wait_record(lambda r: r["event"] == "submit" and r["prompt"] == "via old alias")
    assert row["session_id"] == new_sid

    await wait_turn_over(connect, new_sid, "via old alias")
    reply = await send(connect, {"type": "prompt", "session_id": new_sid, "text": "via new id"})
    assert reply.get("error") is None and reply["status"] in SENT, reply
    await s.wait_record(lambda r: r["event"] == "stop" and r["prompt"] == "via new id")
    assert [r["prompt"] for r in s.records("submit")] == [
        "hello\ndaemon",
        "via old alias",
        "via new id",
    ]


async def test_draft_queues_then_delivers_after_the_turn(
    daemon: Hub, connect: Any, ccc_run: Any
) -> None:
    # No typing grace and no quiet period: the draft alone decides, so the queued message
    # goes out on the Stop that ends the user's turn (not on the scheduler's 5 s re-check).
    s: Session = await ccc_run(typing_grace=0.0, quiet=0.0)
    sid = s.session_ids()[0]
    await wait_connected(daemon, sid)
    mark = len(s.term.output)
    await s.term.type(b"my dra")
    await s.term.wait_output(b"my dra", mark)
    reply = await send(connect, {"type": "prompt", "session_id": sid, "text": "from a peer"})
    assert reply.get("error") is None, reply
    assert reply["status"] == "queued"
    assert not s.records("submit")
    # Finishing the draft submits it alone; nothing was merged into it (the last assertion).
    await s.term.type(b"ft\r")
    await s.wait_record(lambda r: r["event"] == "stop" and r["prompt"] == "from a peer")
    assert [r["prompt"] for r in s.records("submit")] == ["my draft", "from a peer"]


async def test_routing_resumes_after_daemon_restart(
    nursery: trio.Nursery, config: DaemonConfig, connect: Any, ccc_run: Any
) -> None:
    async with trio.open_nursery() as daemon_nursery:
        hub = await daemon_nursery.start(run_daemon, config)
        # No quiet-terminal wait (test_session_pty covers it): the new daemon has seen no hook,
        # and the prompt must still be delivered at once.
        s: Session = await ccc_run(quiet=0.0)
        sid = s.session_ids()[0]
        await wait_connected(hub, sid)
        daemon_nursery.cancel_scope.cancel()
    hub2: Hub = await nursery.start(run_daemon, config)
    # The session client re-registers with the id it learned from its SessionStart hook.
    await wait_connected(hub2, sid)
    reply = await send(connect, {"type": "prompt", "session_id": sid, "text": "after restart"})
    assert reply.get("error") is None and reply["status"] in SENT, reply
    await s.wait_record(lambda r: r["event"] == "stop" and r["prompt"] == "after restart")
