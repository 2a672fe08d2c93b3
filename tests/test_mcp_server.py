"""``ccc mcp`` through the SDK's own client: a real ``ClientSession`` over ``stdio_client``
spawning ``ccc mcp`` against the real daemon (in-process), with stand-in session clients that
answer routed messages and send the hooks Claude Code would."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from ccc_statusd.hub import Hub
from ccc_statusd.paths import Paths

from .conftest import LineClient, answer_routed
from .fixtures import hook
from .test_session_flow import attach, send_hook

CCC = os.path.join(os.path.dirname(sys.executable), "ccc")
ME = "11111111-aaaa-4382-8647-f94b8f7faaf3"
PEER = "22222222-bbbb-4382-8647-f94b8f7faaf3"
TOOLS = {
    "list_sessions",
    "whoami",
    "send_prompt",
    "send_command",
    "ask_session",
    "schedule_prompt",
    "list_scheduled",
    "cancel_scheduled",
}


@asynccontextmanager
async def mcp_client(
    paths: Paths, *args: str, env: dict[str, str] | None = None
) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=CCC,
        args=["--socket", str(paths.socket), "mcp", *args],
        env={"CCC_INTERNAL_ID": "iid-me", **(env or {})},
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def result_of(res: Any) -> dict[str, Any]:
    assert not res.is_error, res.content
    return json.loads(res.content[0].text)


def error_of(res: Any) -> str:
    assert res.is_error, res.content
    return str(res.content[0].text)


async def two_sessions(connect: Any) -> tuple[LineClient, LineClient, LineClient]:
    """Me (iid-me) and a peer (iid-peer), both idle; returns (me, peer, hooks)."""
    me = await attach(connect, "iid-me")
    peer = await attach(connect, "iid-peer")
    hooks = await connect()
    await send_hook(hooks, hook("SessionStart-startup", ME), "iid-me")
    await send_hook(hooks, hook("SessionStart-startup", PEER), "iid-peer")
    return me, peer, hooks


async def test_tools_are_listed_with_descriptions(daemon: Hub, paths: Paths) -> None:
    async with mcp_client(paths) as s:
        tools = (await s.list_tools()).tools
    assert {t.name for t in tools} == TOOLS
    for t in tools:
        assert t.description and len(t.description) > 40, t.name
        for name, prop in (t.input_schema.get("properties") or {}).items():
            assert prop.get("description"), (t.name, name)
    by_name = {t.name: t for t in tools}
    assert by_name["list_sessions"].annotations.read_only_hint is True
    assert by_name["send_prompt"].annotations.read_only_hint is False


async def test_list_sessions_and_whoami(daemon: Hub, connect, paths: Paths) -> None:
    await two_sessions(connect)
    async with mcp_client(paths) as s:
        listed = result_of(await s.call_tool("list_sessions", {}))
        me = result_of(await s.call_tool("whoami", {}))
    assert listed["count"] == 2
    rows = {r["session_id"]: r for r in listed["sessions"]}
    assert rows[ME]["you"] is True and "you" not in rows[PEER]
    assert rows[PEER]["id"] == PEER[:8] and rows[PEER]["state"] == "idle"
    assert rows[PEER]["queued"] == 0 and rows[PEER]["model"]
    assert me["session_id"] == ME and me["identified_by"] == "internal_id"


async def test_caller_found_by_parent_pid(daemon: Hub, connect, paths: Paths) -> None:
    # No CCC_INTERNAL_ID: the session whose pid is ccc mcp's parent (this test process) is us.
    s1 = await connect()
    reply = await s1.request(
        {"type": "register", "internal_id": "iid-pid", "data": {"kind": "pty", "pid": os.getpid()}}
    )
    assert reply.get("error") is None
    hooks = await connect()
    await send_hook(hooks, hook("SessionStart-startup", ME), "iid-pid")
    async with mcp_client(paths, env={"CCC_INTERNAL_ID": ""}) as s:
        me = result_of(await s.call_tool("whoami", {}))
    assert me["session_id"] == ME and me["identified_by"] == "pid"


async def test_whoami_unknown_caller_says_what_to_do(daemon: Hub, paths: Paths) -> None:
    async with mcp_client(paths, env={"CCC_INTERNAL_ID": ""}) as s:
        err = error_of(await s.call_tool("whoami", {}))
    assert "cannot tell which session" in err and "ccc run" in err


async def test_send_prompt_carries_the_sender_header(daemon: Hub, connect, paths: Paths) -> None:
    _, peer, _ = await two_sessions(connect)
    async with mcp_client(paths) as s:
        async with trio.open_nursery() as n:
            got: list[dict[str, Any]] = []

            async def session() -> None:
                got.append(await answer_routed(peer))

            n.start_soon(session)
            out = result_of(
                await s.call_tool("send_prompt", {"session": PEER[:6], "text": "run the tests"})
            )
    assert out["status"] in ("typed", "submitted") and out["session_id"] == PEER
    text = got[0]["text"]
    assert text.startswith(f"[from {ME[:8]} via ccc;") and "send_prompt or ask_session" in text
    assert text.endswith("\nrun the tests")


async def test_no_header_sends_plain_text(daemon: Hub, connect, paths: Paths) -> None:
    _, peer, _ = await two_sessions(connect)
    async with mcp_client(paths, "--no-header") as s:
        async with trio.open_nursery() as n:
            got: list[dict[str, Any]] = []

            async def session() -> None:
                got.append(await answer_routed(peer))

            n.start_soon(session)
            result_of(await s.call_tool("send_prompt", {"session": PEER, "text": "plain"}))
    assert got[0]["text"] == "plain"


async def test_send_errors(daemon: Hub, connect, paths: Paths) -> None:
    await two_sessions(connect)
    async with mcp_client(paths) as s:
        mine = error_of(await s.call_tool("send_prompt", {"session": ME[:8], "text": "x"}))
        unknown = error_of(await s.call_tool("send_prompt", {"session": "ffff0000", "text": "x"}))
        empty = error_of(await s.call_tool("send_prompt", {"session": PEER, "text": "  "}))
        missing = error_of(await s.call_tool("send_prompt", {"session": PEER}))
    assert "that session is you" in mine
    assert "ffff0000" in unknown
    assert "text is empty" in empty
    assert "text" in missing.lower()


async def test_send_prompt_queued_when_busy(daemon: Hub, connect, paths: Paths) -> None:
    _, _, hooks = await two_sessions(connect)
    await send_hook(hooks, hook("UserPromptSubmit", PEER), "iid-peer")
    async with mcp_client(paths) as s:
        out = result_of(await s.call_tool("send_prompt", {"session": PEER, "text": "later"}))
        listed = result_of(await s.call_tool("list_sessions", {}))
    assert out["status"] == "queued" and out["queued_id"]
    assert "next idle moment" in out["message"]
    assert {r["session_id"]: r["queued"] for r in listed["sessions"]}[PEER] == 1


async def test_send_command_reports_the_status(daemon: Hub, connect, paths: Paths) -> None:
    _, peer, _ = await two_sessions(connect)
    async with mcp_client(paths) as s:
        async with trio.open_nursery() as n:
            got: list[dict[str, Any]] = []

            async def session() -> None:
                got.append(await answer_routed(peer))

            n.start_soon(session)
            out = result_of(
                await s.call_tool(
                    "send_command", {"session": PEER, "name": "/model", "args": "sonnet"}
                )
            )
    assert out["status"] in ("typed", "submitted")
    assert got[0]["type"] == "command" and got[0]["text"] == "sonnet"
    assert got[0]["name"].lstrip("/") == "model"


async def test_ask_session_returns_the_reply_with_progress(
    daemon: Hub, connect, paths: Paths
) -> None:
    _, peer, hooks = await two_sessions(connect)
    progressed = trio.Event()
    notes: list[str | None] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        notes.append(message)
        progressed.set()

    async def claude() -> None:
        msg = await answer_routed(peer)
        await send_hook(hooks, hook("UserPromptSubmit", PEER, prompt=msg["text"]), "iid-peer")
        await progressed.wait()  # answer only once the asker has seen progress
        await send_hook(
            hooks, hook("Stop", PEER, last_assistant_message="42, from " + msg["text"]), "iid-peer"
        )

    async with mcp_client(paths, "--progress-every", "0.05") as s:
        async with trio.open_nursery() as n:
            n.start_soon(claude)
            res = await s.call_tool(
                "ask_session",
                {"session": PEER[:8], "question": "what is 6*7?", "timeout": 30},
                progress_callback=on_progress,
            )
    out = result_of(res)
    assert out["session_id"] == PEER and out["reply"].startswith("42, from [question from")
    assert out["reply"].endswith("what is 6*7?")
    assert notes and "waiting for session" in str(notes[0])


async def test_ask_session_errors(daemon: Hub, connect, paths: Paths) -> None:
    _, peer, _ = await two_sessions(connect)
    async with mcp_client(paths) as s:
        mine = error_of(await s.call_tool("ask_session", {"session": ME, "question": "x"}))
        async with trio.open_nursery() as n:
            n.start_soon(answer_routed, peer)
            late = error_of(
                await s.call_tool("ask_session", {"session": PEER, "question": "x", "timeout": 0.3})
            )
        bad = error_of(
            await s.call_tool("ask_session", {"session": PEER, "question": "x", "timeout": -1})
        )
    assert "is you" in mine and "send_prompt" in mine
    assert "no reply" in late and "was delivered" in late
    assert "timeout" in bad.lower()


async def test_schedule_list_cancel(daemon: Hub, connect, paths: Paths) -> None:
    await two_sessions(connect)
    async with mcp_client(paths) as s:
        made = result_of(
            await s.call_tool(
                "schedule_prompt", {"session": PEER[:8], "text": "stand-up", "delay": "10m"}
            )
        )
        listed = result_of(await s.call_tool("list_scheduled", {}))
        only_me = result_of(await s.call_tool("list_scheduled", {"session": ME[:8]}))
        only_peer = result_of(await s.call_tool("list_scheduled", {"session": PEER[:8]}))
        cancelled = result_of(await s.call_tool("cancel_scheduled", {"id": str(made["id"])}))
        after = result_of(await s.call_tool("list_scheduled", {}))
        again = error_of(await s.call_tool("cancel_scheduled", {"id": str(made["id"])}))
        both = error_of(
            await s.call_tool(
                "schedule_prompt", {"session": PEER, "text": "x", "at": "14:30", "delay": "1m"}
            )
        )
        never = error_of(await s.call_tool("schedule_prompt", {"session": PEER, "text": "x"}))
        bad = error_of(
            await s.call_tool("schedule_prompt", {"session": PEER, "text": "x", "delay": "soon"})
        )
        nobody = error_of(
            await s.call_tool(
                "schedule_prompt", {"session": "ffff0000", "text": "x", "delay": "1m"}
            )
        )
    assert made["session_id"] == PEER
    [row] = listed["scheduled"]
    assert row["id"] == made["id"] and 590 <= row["due_in_s"] <= 600
    assert row["text"].startswith(f"[from {ME[:8]}") and row["text"].endswith("stand-up")
    assert only_me["count"] == 0 and only_peer["count"] == 1
    assert cancelled["cancelled"] == str(made["id"]) and after["count"] == 0
    assert "no scheduled prompt matches" in again
    assert "only one of at and delay" in both
    assert "say when" in never
    assert "delay 'soon' is not a duration" in bad
    assert "ffff0000" in nobody


async def test_rate_limit_stops_a_looping_sender(daemon: Hub, connect, paths: Paths) -> None:
    _, _, hooks = await two_sessions(connect)
    await send_hook(hooks, hook("UserPromptSubmit", PEER), "iid-peer")  # busy: sends queue
    async with mcp_client(paths, "--rate-limit", "2") as s:
        for _ in range(2):
            result_of(await s.call_tool("send_prompt", {"session": PEER, "text": "again"}))
        err = error_of(await s.call_tool("send_prompt", {"session": PEER, "text": "again"}))
        listed = result_of(await s.call_tool("list_scheduled", {}))
    assert "rate limit:" in err and "--rate-limit" in err
    assert listed["count"] == 2


async def test_daemon_not_running(paths: Paths) -> None:
    async with mcp_client(paths) as s:
        err = error_of(await s.call_tool("list_sessions", {}))
    assert "daemon not running" in err and "ccc-statusd" in err


async def test_ask_cycle_is_refused_at_once(daemon: Hub, connect, paths: Paths) -> None:
    _, peer, hooks = await two_sessions(connect)
    async with (
        mcp_client(paths, env={"CCC_INTERNAL_ID": "iid-me"}) as me,
        mcp_client(paths, env={"CCC_INTERNAL_ID": "iid-peer"}) as other,
    ):
        results: dict[str, Any] = {}

        async def first_ask() -> None:
            results["first"] = await me.call_tool(
                "ask_session", {"session": PEER, "question": "q1", "timeout": 60}
            )

        async with trio.open_nursery() as n:
            n.start_soon(first_ask)
            msg = await answer_routed(peer)  # PEER's turn starts: me waits for its answer
            await send_hook(hooks, hook("UserPromptSubmit", PEER, prompt=msg["text"]), "iid-peer")
            # ... and PEER, in that turn, asks me back: refused at once, not after 10 minutes.
            back = error_of(await other.call_tool("ask_session", {"session": ME, "question": "q2"}))
            await send_hook(hooks, hook("Stop", PEER, last_assistant_message="a1"), "iid-peer")
    assert "would deadlock" in back and f"{PEER[:8]} → {ME[:8]} → {PEER[:8]}" in back
    assert result_of(results["first"])["reply"] == "a1"
    assert not list((paths.cache_dir / "asks").glob("*.json"))  # the first ask's mark is gone


def test_leftover_ask_marks_are_ignored_and_removed(cache_dir: Path) -> None:
    from ccc_statusd.mcp_server import _asks_in_flight, _mark_ask

    asks = cache_dir / "asks"
    live = _mark_ask(asks, ("A", "B"), 60)
    assert live is not None and (live.stat().st_mode & 0o777) == 0o600
    dead = {"asker": "B", "target": "C", "pid": 2**22 + 7, "until": time.time() + 60}
    (asks / "1-1.json").write_text(json.dumps(dead))
    late = {"asker": "C", "target": "D", "pid": os.getpid(), "until": time.time() - 1}
    (asks / "1-2.json").write_text(json.dumps(late))
    (asks / "1-3.json").write_text("not json")
    (asks / "1-4.json").write_text("[1, 2]")
    assert _asks_in_flight(asks) == [("A", "B")]
    assert _asks_in_flight(asks, exclude=live) == []
    assert not (asks / "1-1.json").exists() and not (asks / "1-2.json").exists()
    assert _asks_in_flight(cache_dir / "missing") == []


async def test_list_sessions_hides_ended_ones_unless_all(
    daemon: Hub, connect, paths: Paths
) -> None:
    _, _, hooks = await two_sessions(connect)
    await send_hook(hooks, hook("SessionEnd-prompt_input_exit", PEER), "iid-peer")
    async with mcp_client(paths) as s:
        live = result_of(await s.call_tool("list_sessions", {}))
        every = result_of(await s.call_tool("list_sessions", {"all": True}))
    assert [r["session_id"] for r in live["sessions"]] == [ME]
    assert {r["session_id"] for r in every["sessions"]} == {ME, PEER}


async def test_send_prompt_wait_returns_once_the_queued_prompt_is_typed(
    daemon: Hub, connect, paths: Paths
) -> None:
    _, peer, hooks = await two_sessions(connect)
    await send_hook(hooks, hook("UserPromptSubmit", PEER), "iid-peer")  # busy: it queues
    got: list[dict[str, Any]] = []

    async def claude() -> None:
        # Finish the current turn once the prompt is queued; the outbox then delivers it.
        for _ in range(3000):  # poll: the queueing happens in another process
            if (await hooks.request({"type": "query", "query": "list_scheduled"}))["data"]:
                break
            await trio.sleep(0.01)
        await send_hook(hooks, hook("Stop", PEER), "iid-peer")
        got.append(await answer_routed(peer))

    async with mcp_client(paths) as s:
        async with trio.open_nursery() as n:
            n.start_soon(claude)
            out = result_of(
                await s.call_tool("send_prompt", {"session": PEER, "text": "later", "wait": True})
            )
    assert out["status"] == "typed" and "queued first" in out["message"]
    assert got[0]["text"].endswith("\nlater")


async def test_schedule_after_limit_reset_needs_a_known_reset(
    daemon: Hub, connect, paths: Paths
) -> None:
    await two_sessions(connect)
    async with mcp_client(paths) as s:
        err = error_of(
            await s.call_tool(
                "schedule_prompt", {"session": PEER, "text": "go on", "after_limit_reset": True}
            )
        )
    assert "no upcoming usage-limit reset is known" in err
