"""The daemon over its real socket: start-up, queries, register, routing, files and modes."""

from __future__ import annotations

import os
import stat

import trio

from ccc_statusd.hub import Hub
from ccc_statusd.paths import Paths

from .conftest import answer_routed

SENT = ("typed", "submitted")  # a prompt or command the session client typed


async def test_ping_and_status(daemon: Hub, connect, paths: Paths) -> None:
    c = await connect()
    assert await c.request({"type": "query", "query": "ping", "request_id": "a"}) == {
        "type": "response",
        "request_id": "a",
        "data": "pong",
    }
    status = (await c.request({"type": "query", "query": "status"}))["data"]
    assert status["pid"] == os.getpid()
    assert status["paths"]["socket"] == str(paths.socket)


async def test_files_and_modes(daemon: Hub, paths: Paths) -> None:
    assert stat.S_IMODE(os.stat(paths.cache_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(paths.socket).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(paths.pid).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(paths.db).st_mode) == 0o600
    assert paths.pid.read_text().strip() == str(os.getpid())


async def test_route_prompt_to_session_client(daemon: Hub, connect) -> None:
    session = await connect()
    reply = await session.request(
        {
            "type": "register",
            "internal_id": "iid-1",
            "session_id": "abcdef12-0000",
            "request_id": "r",
        }
    )
    assert reply.get("error") is None
    sender = await connect()
    async with trio.open_nursery() as n:
        got: list[dict] = []

        async def serve() -> None:
            got.append(await answer_routed(session, {"data": {"delivered_via": "test"}}))

        n.start_soon(serve)
        reply = await sender.request(
            {"type": "prompt", "session_id": "abcd", "text": "hello\nworld", "request_id": "s1"}
        )
    assert got[0]["type"] == "prompt" and got[0]["text"] == "hello\nworld"
    assert got[0]["request_id"] and got[0]["session_id"] == "abcdef12-0000"
    assert reply["status"] in SENT
    assert reply["request_id"] == "s1"
    assert reply["data"] == {"delivered_via": "test"}


async def test_command_and_eval_gate(daemon: Hub, connect) -> None:
    session = await connect()
    await session.request({"type": "register", "internal_id": "iid-2", "session_id": "sess-cmd-1"})
    sender = await connect()
    async with trio.open_nursery() as n:
        got: list[dict] = []

        async def serve() -> None:
            got.append(await answer_routed(session))

        n.start_soon(serve)
        reply = await sender.request(
            {
                "type": "command",
                "session_id": "sess-cmd-1",
                "name": "/compact",
                "text": "keep it short",
            }
        )
    assert reply["status"] in SENT
    assert got[0]["name"] == "compact" and got[0]["text"] == "keep it short"
    reply = await sender.request({"type": "eval", "session_id": "sess-cmd-1", "code": "1+1"})
    assert "--allow-eval" in reply["error"]


async def test_routing_errors_are_distinct(daemon: Hub, connect) -> None:
    sender = await connect()
    unknown = await sender.request({"type": "prompt", "session_id": "nope-nope", "text": "x"})
    assert "no session matches" in unknown["error"]
    short = await sender.request({"type": "prompt", "session_id": "ab", "text": "x"})
    assert "at least 4 characters" in short["error"]
    a = await connect()
    b = await connect()
    await a.request({"type": "register", "internal_id": "i-a", "session_id": "dup-1111"})
    await b.request({"type": "register", "internal_id": "i-b", "session_id": "dup-2222"})
    amb = await sender.request({"type": "prompt", "session_id": "dup-", "text": "x"})
    assert "ambiguous" in amb["error"] and "dup-1111" in amb["error"] and "dup-2222" in amb["error"]
    # Timeout: b never answers.
    to = await sender.request({"type": "prompt", "session_id": "dup-2222", "text": "x"})
    assert "did not answer within" in to["error"]
    # Gone mid-request: a disconnects while the sender waits.
    async with trio.open_nursery() as n:

        async def vanish() -> None:
            await a.recv()
            await a.aclose()

        n.start_soon(vanish)
        gone = await sender.request({"type": "prompt", "session_id": "dup-1111", "text": "x"})
    assert "disconnected before confirming" in gone["error"]
    # Now it is known but not connected.
    nc = await sender.request({"type": "prompt", "session_id": "dup-1111", "text": "x"})
    assert "reconnects by itself" in nc["error"]  # a ccc run session whose link dropped


async def test_reregister_replaces_old_connection(daemon: Hub, connect) -> None:
    old = await connect()
    await old.request({"type": "register", "internal_id": "iid-r", "session_id": "rereg-1"})
    new = await connect()
    await new.request({"type": "register", "internal_id": "iid-r", "session_id": "rereg-1"})
    last = await old.recv()
    assert "replaced" in last["error"]
    sender = await connect()
    async with trio.open_nursery() as n:
        n.start_soon(answer_routed, new)
        reply = await sender.request({"type": "prompt", "session_id": "rereg-1", "text": "hi"})
    assert reply["status"] in SENT
    active = (await sender.request({"type": "query", "query": "active_sessions"}))["data"]
    assert [s["session_id"] for s in active] == ["rereg-1"]
    daemon.registry.check_consistent()


async def test_pipelined_burst_in_order(daemon: Hub, connect) -> None:
    c = await connect()
    burst = b"".join(
        (b'{"type":"query","query":"ping","request_id":"%d"}\n' % i) for i in range(1000)
    )
    await c.send(burst)
    for i in range(1000):
        assert (await c.recv())["request_id"] == str(i)
