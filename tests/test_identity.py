"""Telling sessions apart and trusting the list: names, liveness, the live-only list, forget,
errors that say the next step, and what a daemon restart keeps (a subprocess daemon,
restarted in the middle)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import trio

from ccc_statusd.hub import Hub
from ccc_statusd.liveness import dead_sessions, is_alive, pid_start
from ccc_statusd.paths import Paths
from ccc_statusd.sessions import SessionInfo
from ccc_statusd.store import Store

from .fixtures import hook
from .helpers import wait_until
from .test_bad_input import BlockingClient
from .test_daemon_process import start, stop
from .test_session_flow import send_hook

A = "aaaa1111-0000-0000-0000-000000000000"
B = "bbbb1111-0000-0000-0000-000000000000"
C = "cccc1111-0000-0000-0000-000000000000"


def test_a_reused_pid_is_not_the_same_process() -> None:
    me = os.getpid()
    start_ticks = pid_start(me)
    assert start_ticks is not None and is_alive(me, start_ticks)
    assert not is_alive(me, start_ticks + 1)  # same pid, another start time: not it
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not is_alive(child.pid, None)
    gone = SessionInfo(key="k", session_id="s", pid=child.pid, state="idle")
    assert dead_sessions([gone, SessionInfo(key="me", pid=me, state="idle")]) == [(gone, "crashed")]
    quiet = SessionInfo(key="sid-q", session_id="q", state="idle", last_activity_wall=1000.0)
    recent = SessionInfo(key="sid-r", session_id="r", state="idle", last_activity_wall=1900.0)
    assert dead_sessions([quiet, recent], now_wall=2000.0, silent_after_s=500.0) == [
        (quiet, "silent")
    ]


async def test_names_route_and_are_unique_among_live_sessions(daemon: Hub, connect: Any) -> None:
    api = await connect()
    r = await api.request(
        {"type": "register", "internal_id": "iid-api", "session_id": A, "data": {"name": "api"}}
    )
    assert r.get("error") is None
    web = await connect()
    await web.request({"type": "register", "internal_id": "iid-web", "session_id": B})
    sender = await connect()
    taken = await sender.request(
        {"type": "query", "query": "set_name", "session_id": B, "data": {"name": "api"}}
    )
    assert "taken by live session" in taken["error"]
    ok = await sender.request(
        {"type": "query", "query": "set_name", "session_id": "bbbb1111", "data": {"name": "web"}}
    )
    assert ok.get("error") is None and ok["data"] == {"name": "web"}
    async with trio.open_nursery() as n:
        n.start_soon(sender.request, {"type": "prompt", "session_id": "web", "text": "hi"})
        routed = await web.recv()
        assert routed["session_id"] == B and routed["text"] == "hi"
        await web.send({"type": "response", "request_id": routed["request_id"]})
    listed = (await sender.request({"type": "query", "query": "list_sessions"}))["data"]
    assert {r["name"] for r in listed} == {"api", "web"}
    cleared = await sender.request(
        {"type": "query", "query": "set_name", "session_id": "web", "data": {"name": ""}}
    )
    assert cleared["data"] == {"name": None}


async def test_the_default_list_is_live_sessions_and_forget_removes_an_ended_one(
    daemon: Hub, connect: Any
) -> None:
    hooks = await connect()
    await send_hook(hooks, hook("SessionStart-startup", A), None, CLAUDE_PID=str(os.getpid()))
    await send_hook(hooks, hook("SessionStart-startup", B), None, CLAUDE_PID="999999")
    await send_hook(hooks, hook("SessionEnd-prompt_input_exit", B), None, CLAUDE_PID="999999")
    listed = (await hooks.request({"type": "query", "query": "list_sessions"}))["data"]
    assert [r["session_id"] for r in listed] == [A]
    row = listed[0]
    assert set(row) >= {"name", "kind", "where", "queued", "live", "end_reason"}  # stable schema
    everything = (
        await hooks.request({"type": "query", "query": "list_sessions", "data": {"all": True}})
    )["data"]
    ended = next(r for r in everything if r["session_id"] == B)
    assert ended["state"] == "ended" and ended["end_reason"] == "exited" and not ended["live"]
    refused = await hooks.request({"type": "query", "query": "forget", "session_id": A})
    assert "only ended sessions" in refused["error"]
    await daemon.flush_metadata()
    await daemon.scheduler.enqueue(B, "prompt", "left behind")  # would retry for ever
    gone = await hooks.request({"type": "query", "query": "forget", "session_id": B})
    assert gone.get("error") is None and B in gone["data"]["forgotten"]
    assert await daemon.store.call(Store.count_scheduled, B) == 0 and daemon.scheduler.count == 0
    assert not daemon.config.paths.session_cache(B).exists()
    everything = (
        await hooks.request({"type": "query", "query": "list_sessions", "data": {"all": True}})
    )["data"]
    assert B not in {r["session_id"] for r in everything}


async def test_a_crashed_session_is_ended_and_the_error_says_how_to_resume(
    daemon: Hub, connect: Any
) -> None:
    child = await trio.lowlevel.open_process([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        hooks = await connect()
        await send_hook(hooks, hook("SessionStart-startup", C), None, CLAUDE_PID=str(child.pid))
        info = daemon.registry.by_session_id(C)
        assert info is not None and info.pid_start is not None
    finally:
        child.kill()
        await child.wait()
    daemon.directory.end(info, "crashed")  # what the liveness task does on its next pass
    reply = await hooks.request({"type": "prompt", "session_id": C, "text": "hello?"})
    assert "crashed" in reply["error"] and f"ccc run -- claude --resume {C}" in reply["error"]


async def test_a_ccc_run_session_whose_link_is_down_says_it_reconnects(
    daemon: Hub, connect: Any
) -> None:
    session = await connect()
    await session.request(
        {
            "type": "register",
            "internal_id": "iid-wrap",
            "session_id": A,
            "data": {"kind": "pty", "child_pid": os.getpid()},
        }
    )
    await session.aclose()
    sender = await connect()

    async def disconnected() -> bool:
        info = daemon.registry.by_session_id(A)
        return info is not None and not info.connected

    await wait_until(disconnected)
    reply = await sender.request({"type": "prompt", "session_id": A, "text": "hi"})
    assert (
        "reconnects by itself" in reply["error"] and "try again in a few seconds" in reply["error"]
    )


def test_a_restart_keeps_aliases_state_names_and_panes(paths: Paths) -> None:
    me = str(os.getpid())  # a process that is alive for the whole test stands in for Claude
    proc = start(paths)
    try:
        with BlockingClient(str(paths.socket)) as c:
            env = {"CLAUDE_PID": me, "TMUX_PANE": "%42", "TMUX": "/tmp/tmux-x/other,1,0"}
            for payload in (
                hook("SessionStart-startup", A),
                hook("SessionEnd-clear", A),
                hook("SessionStart-clear", B),
                hook("Stop", B),
            ):
                assert c.request({"type": "hook", "data": payload, "env": env}).get("error") is None
            r = c.request(
                {"type": "query", "query": "set_name", "session_id": B, "data": {"name": "docs"}}
            )
            assert r.get("error") is None, r
    finally:
        code, err = stop(proc)
    assert code == 0, err
    proc = start(paths)
    try:
        with BlockingClient(str(paths.socket)) as c:
            listed = c.request({"type": "query", "query": "list_sessions"})["data"]
            assert len(listed) == 1, listed
            row = listed[0]
            assert row["session_id"] == B and row["state"] == "idle" and row["name"] == "docs"
            assert row["where"] == "%42" and row["tmux_socket"] == "/tmp/tmux-x/other"
            assert A in row["aliases"]
            # The old id of the /clear still routes to the same session (by name too).
            for target in (A, "docs"):
                path = c.request({"type": "query", "query": "session_path", "session_id": target})
                assert path["session_id"] in (A, B), path
    finally:
        code, err = stop(proc)
    assert code == 0, err


def test_session_ids_and_names_complete_from_the_cache_files(
    paths: Paths, monkeypatch: Any
) -> None:
    from ccc_statusd.cache import write_session_cache
    from ccc_statusd.cli import complete_session

    monkeypatch.setenv("CCC_CACHE_DIR", str(paths.cache_dir))
    write_session_cache(paths, A, {"session_id": A, "name": "api", "state": "idle"})
    write_session_cache(paths, B, {"session_id": B, "name": "old", "state": "ended"})
    assert complete_session("aaaa") == [A]
    assert complete_session("a") == [A, "api"]
    assert complete_session("o") == []  # an ended session's name is free again
