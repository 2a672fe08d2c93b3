"""The session client's daemon link: register, heartbeat, routed messages, reconnect.

Runs against a fake daemon on a real Unix socket, on Trio's virtual clock.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import trio

from ccc_statusd.session.link import SessionLink, run_session_link

from .session_fakes import FakeDaemon, short_tmpdir


@pytest.fixture
def sock_dir():
    d = short_tmpdir()
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def _meta() -> dict[str, Any]:
    return {
        "kind": "pty",
        "pid": 1234,
        "cwd": "/home/user/project",
        "claude_config_dir": "/home/user/.claude",
        "capabilities": ["prompt", "command"],
    }


async def _echo_handler(msg: dict[str, Any]) -> dict[str, Any]:
    return {"data": {"delivered_via": "test", "got": msg.get("text") or msg.get("name")}}


async def test_register_shape_and_started(sock_dir: Path, autojump_clock: Any) -> None:
    daemon = FakeDaemon(sock_dir / "d.sock")
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.serve)
        link = await nursery.start(
            lambda task_status: run_session_link(
                daemon.path, "iid-1", _echo_handler, metadata=_meta, task_status=task_status
            )
        )
        assert isinstance(link, SessionLink)
        assert link.connected and link.registrations == 1
        reg = daemon.received[0]
        assert reg["type"] == "register"
        assert reg["internal_id"] == "iid-1"
        assert isinstance(reg["request_id"], str) and reg["request_id"]
        assert "session_id" not in reg
        assert reg["claude_config_dir"] == "/home/user/.claude"
        assert reg["data"] == {
            "kind": "pty",
            "pid": 1234,
            "cwd": "/home/user/project",
            "capabilities": ["prompt", "command"],
        }
        nursery.cancel_scope.cancel()


async def test_heartbeats_every_interval(sock_dir: Path, autojump_clock: Any) -> None:
    daemon = FakeDaemon(sock_dir / "d.sock")
    daemon.reply_session_id = "sess-aaaa"
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.serve)
        link = await nursery.start(
            lambda task_status: run_session_link(
                daemon.path,
                "iid-1",
                _echo_handler,
                metadata=_meta,
                heartbeat_interval_s=30.0,
                task_status=task_status,
            )
        )
        t0 = trio.current_time()
        await trio.sleep(95)
        beats = [m for m in daemon.received if m["type"] == "heartbeat"]
        assert len(beats) == 3
        assert all(b["internal_id"] == "iid-1" for b in beats)
        # the session id the daemon told us is not echoed back: it may be stale after /clear
        assert all("session_id" not in b for b in beats)
        assert beats[0]["claude_config_dir"] == "/home/user/.claude"
        assert beats[0]["data"]["kind"] == "pty"
        assert len({b["request_id"] for b in beats}) == 3
        assert link.session_id == "sess-aaaa"
        assert trio.current_time() - t0 == pytest.approx(95)
        nursery.cancel_scope.cancel()


async def test_routed_messages_answered_with_request_id(
    sock_dir: Path, autojump_clock: Any
) -> None:
    daemon = FakeDaemon(sock_dir / "d.sock")
    seen: list[dict[str, Any]] = []

    async def handler(msg: dict[str, Any]) -> dict[str, Any]:
        seen.append(msg)
        if msg["type"] == "eval":
            return {"error": "no eval here", "status": "unsupported"}
        if msg["type"] == "command":
            raise RuntimeError("boom")
        return {"data": {"delivered_via": "test"}}

    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.serve)
        await nursery.start(
            lambda task_status: run_session_link(
                daemon.path, "iid-1", handler, task_status=task_status
            )
        )
        r1 = await daemon.route("iid-1", {"type": "prompt", "session_id": "s1", "text": "hi"})
        assert r1["type"] == "response"
        assert r1["request_id"].startswith("route-")
        assert r1["data"] == {"delivered_via": "test"}
        assert "error" not in r1
        r2 = await daemon.route("iid-1", {"type": "eval", "session_id": "s1", "code": "1"})
        assert r2["error"] == "no eval here" and r2["status"] == "unsupported"
        r3 = await daemon.route("iid-1", {"type": "command", "session_id": "s1", "name": "clear"})
        assert "boom" in r3["error"]
        r4 = await daemon.route("iid-1", {"type": "query", "query": "ping"})
        assert "cannot handle 'query'" in r4["error"]
        assert [m["type"] for m in seen] == ["prompt", "eval", "command"]
        nursery.cancel_scope.cancel()


async def test_result_cannot_override_type_or_request_id(
    sock_dir: Path, autojump_clock: Any
) -> None:
    daemon = FakeDaemon(sock_dir / "d.sock")

    async def handler(msg: dict[str, Any]) -> dict[str, Any]:
        return {"type": "prompt", "request_id": "forged", "data": 1}

    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.serve)
        await nursery.start(
            lambda task_status: run_session_link(
                daemon.path, "iid-1", handler, task_status=task_status
            )
        )
        reply = await daemon.route("iid-1", {"type": "prompt", "session_id": "s1", "text": "x"})
        assert reply["type"] == "response" and reply["request_id"] != "forged"
        nursery.cancel_scope.cancel()


async def test_slow_handler_does_not_block_heartbeats(sock_dir: Path, autojump_clock: Any) -> None:
    daemon = FakeDaemon(sock_dir / "d.sock")

    async def handler(msg: dict[str, Any]) -> dict[str, Any]:
        await trio.sleep(100)
        return {}

    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.serve)
        await nursery.start(
            lambda task_status: run_session_link(
                daemon.path, "iid-1", handler, heartbeat_interval_s=10, task_status=task_status
            )
        )
        reply = await daemon.route("iid-1", {"type": "prompt", "session_id": "s", "text": "x"}, 200)
        assert "error" not in reply
        assert len([m for m in daemon.received if m["type"] == "heartbeat"]) >= 9
        nursery.cancel_scope.cancel()


async def test_reconnects_after_daemon_restart(sock_dir: Path, autojump_clock: Any) -> None:
    path = sock_dir / "d.sock"
    daemon = FakeDaemon(path)
    daemon.reply_session_id = "sess-first"
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.serve)
        link = await nursery.start(
            lambda task_status: run_session_link(
                path,
                "iid-7",
                _echo_handler,
                metadata=_meta,
                backoff_max_s=5.0,
                task_status=task_status,
            )
        )
        assert link.session_id == "sess-first"
        await daemon.stop()
        await trio.sleep(30)  # the daemon is down for a while: the link keeps retrying
        assert not link.connected
        daemon2 = FakeDaemon(path)
        # (measured once it listens: binding runs in a thread, and the virtual clock may
        # jump meanwhile)
        await nursery.start(daemon2.serve)
        t_up = trio.current_time()
        await link.wait_registered(2)
        # found again within the back-off cap
        assert trio.current_time() - t_up <= 5.0
        reg = daemon2.received[0]
        assert reg["type"] == "register"
        assert reg["internal_id"] == "iid-7"
        assert reg["session_id"] == "sess-first"  # the last known session id
        reply = await daemon2.route("iid-7", {"type": "prompt", "session_id": "x", "text": "again"})
        assert reply["data"]["got"] == "again"
        nursery.cancel_scope.cancel()


async def test_waits_for_a_daemon_that_is_not_there_yet(
    sock_dir: Path, autojump_clock: Any
) -> None:
    path = sock_dir / "d.sock"
    async with trio.open_nursery() as nursery:
        link = SessionLink(path, "iid-2", _echo_handler)
        nursery.start_soon(link.run)
        await trio.sleep(12)
        assert link.registrations == 0
        daemon = FakeDaemon(path)
        await nursery.start(daemon.serve)
        await link.wait_registered()
        assert link.connected
        nursery.cancel_scope.cancel()


async def test_refused_registration_is_retried(sock_dir: Path, autojump_clock: Any) -> None:
    daemon = FakeDaemon(sock_dir / "d.sock")
    daemon.refuse_register = "go away"
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.serve)
        link = SessionLink(daemon.path, "iid-3", _echo_handler, backoff_max_s=1.0)
        nursery.start_soon(link.run)
        await trio.sleep(5)
        attempts = [m for m in daemon.received if m["type"] == "register"]
        assert len(attempts) >= 3
        assert link.registrations == 0
        daemon.refuse_register = None
        await link.wait_registered()
        nursery.cancel_scope.cancel()


async def test_owner_set_session_id_and_metadata_session_id(
    sock_dir: Path, autojump_clock: Any
) -> None:
    daemon = FakeDaemon(sock_dir / "d.sock")
    meta: dict[str, Any] = {"kind": "scripted"}
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.serve)
        link = await nursery.start(
            lambda task_status: run_session_link(
                daemon.path,
                "iid-4",
                _echo_handler,
                metadata=lambda: dict(meta),
                heartbeat_interval_s=1,
                task_status=task_status,
            )
        )
        link.session_id = "set-by-owner"
        await trio.sleep(1.5)
        meta["session_id"] = "from-metadata"
        await trio.sleep(1)
        beats = [m for m in daemon.received if m["type"] == "heartbeat"]
        assert "session_id" not in beats[0]
        assert beats[1]["session_id"] == "from-metadata"
        assert beats[1]["data"] == {"kind": "scripted"}
        assert link.session_id == "from-metadata"
        # a reconnect registers with the last known id
        await daemon.stop()
        daemon2 = FakeDaemon(daemon.path)
        await nursery.start(daemon2.serve)
        await link.wait_registered(2)
        assert daemon2.received[0]["session_id"] == "from-metadata"
        nursery.cancel_scope.cancel()


async def test_heartbeat_now(sock_dir: Path, autojump_clock: Any) -> None:
    daemon = FakeDaemon(sock_dir / "d.sock")
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.serve)
        link = await nursery.start(
            lambda task_status: run_session_link(
                daemon.path,
                "iid-5",
                _echo_handler,
                heartbeat_interval_s=30,
                task_status=task_status,
            )
        )
        await trio.sleep(3)
        t0 = trio.current_time()
        link.heartbeat_now()
        await daemon.wait_for(lambda m: m["type"] == "heartbeat")
        assert trio.current_time() == t0
        # the regular rhythm carries on from there
        await trio.sleep(31)
        assert len([m for m in daemon.received if m["type"] == "heartbeat"]) == 2
        nursery.cancel_scope.cancel()


async def test_a_retried_scheduled_message_is_not_typed_twice(
    sock_dir: Path, autojump_clock: Any
) -> None:
    """The daemon retries a scheduled row under one id when it missed our answer: the client
    answers the repeat from memory instead of typing the text again."""
    daemon = FakeDaemon(sock_dir / "d.sock")
    typed: list[str] = []

    async def handler(msg: dict[str, Any]) -> dict[str, Any]:
        typed.append(msg["text"])
        return {"data": {"delivered_via": "test"}}

    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.serve)
        await nursery.start(
            lambda task_status: run_session_link(
                daemon.path, "iid-1", handler, task_status=task_status
            )
        )
        msg = {"type": "prompt", "session_id": "s1", "text": "once"}
        first = await daemon.route("iid-1", msg, request_id="sched-row1")
        again = await daemon.route("iid-1", msg, request_id="sched-row1")
        other = await daemon.route("iid-1", msg)  # ordinary ids are never deduplicated
        assert first["data"] == again["data"] == {"delivered_via": "test"}
        assert again["request_id"] == "sched-row1" and other.get("error") is None
        assert typed == ["once", "once"]
        nursery.cancel_scope.cancel()
