"""ask waits for the reply of the turn it starts; subscribe/watch stream what happens."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Awaitable, Callable

import trio

from ccc_statusd.hub import Hub

from .conftest import LineClient, answer_routed
from .fixtures import hook
from .helpers import wait_until
from .test_session_flow import attach, send_hook

SENT = ("typed", "submitted")  # a prompt or command the session client typed

SID = "6656f299-72c7-4382-8647-f94b8f7faaf3"


async def play_turn(
    session: LineClient, hooks: LineClient, reply: str | None, *, iid: str = "iid-flow"
) -> dict:
    """Be Claude Code for one turn: take the typed prompt, fire UserPromptSubmit, then Stop."""
    msg = await answer_routed(session)
    await send_hook(hooks, hook("UserPromptSubmit", SID, prompt=msg["text"]), iid)
    stop = hook("Stop", SID, last_assistant_message=reply)
    if reply is None:
        del stop["last_assistant_message"]
    await send_hook(hooks, stop, iid)
    return msg


async def test_ask_returns_the_turns_reply(daemon: Hub, connect) -> None:
    session = await attach(connect)
    hooks = await connect()
    asker = await connect()
    await send_hook(hooks, hook("SessionStart-startup", SID), "iid-flow")
    async with trio.open_nursery() as n:
        n.start_soon(play_turn, session, hooks, "ECHO: what is 2+2")
        reply = await asker.request(
            {"type": "ask", "session_id": SID[:8], "text": "what is 2+2", "request_id": "q"}
        )
    assert reply["status"] == "answered" and reply["data"]["reply"] == "ECHO: what is 2+2"
    assert reply["request_id"] == "q"
    listed = (await asker.request({"type": "query", "query": "list_sessions"}))["data"]
    assert listed[0]["last_delivery"]["text"] == "what is 2+2"
    assert listed[0]["last_delivery"]["submitted"] is True  # UserPromptSubmit confirmed it


async def test_ask_falls_back_to_the_transcript(daemon: Hub, connect, cache_dir) -> None:
    transcript = cache_dir / "t.jsonl"
    transcript.write_text(
        json.dumps(
            {
                "type": "assistant",
                "message": {"content": [{"type": "text", "text": "from the transcript"}]},
            }
        )
        + "\n"
    )
    session = await attach(connect)
    hooks = await connect()
    asker = await connect()
    await send_hook(
        hooks, hook("SessionStart-startup", SID, transcript_path=str(transcript)), "iid-flow"
    )

    async def turn() -> None:
        msg = await answer_routed(session)
        stop = hook("Stop", SID, transcript_path=str(transcript))
        del stop["last_assistant_message"]
        await send_hook(hooks, stop, "iid-flow")
        assert msg["text"] == "hi"

    async with trio.open_nursery() as n:
        n.start_soon(turn)
        reply = await asker.request({"type": "ask", "session_id": SID, "text": "hi"})
    assert reply["data"]["reply"] == "from the transcript"


async def test_two_asks_are_answered_in_order(daemon: Hub, connect) -> None:
    session = await attach(connect)
    hooks = await connect()
    a, b, probe = await connect(), await connect(), await connect()
    await send_hook(hooks, hook("SessionStart-startup", SID), "iid-flow")
    replies: dict[str, dict] = {}
    first_turn_started = trio.Event()

    async def ask(c: LineClient, text: str) -> None:
        replies[text] = await c.request({"type": "ask", "session_id": SID, "text": text})

    def outbox_holds(n: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            status = await probe.request({"type": "query", "query": "status"})
            return bool(status["data"]["scheduled"] == n)

        check.__name__ = f"the outbox holds {n}"
        return check

    async def claude() -> None:
        for turn in range(2):
            msg = await answer_routed(session)
            await send_hook(hooks, hook("UserPromptSubmit", SID, prompt=msg["text"]), "iid-flow")
            if turn == 0:
                # The turn stays open until the second ask waits in the outbox.
                first_turn_started.set()
                await wait_until(outbox_holds(1))
            else:
                # A real turn ends long after the typed prompt was acknowledged; the fake one
                # waits for that (the Stop, on another connection, could overtake it).
                await wait_until(outbox_holds(0))
            await send_hook(
                hooks, hook("Stop", SID, last_assistant_message=f"re: {msg['text']}"), "iid-flow"
            )

    async with trio.open_nursery() as n:
        n.start_soon(claude)
        n.start_soon(ask, a, "first")
        await first_turn_started.wait()  # the first is delivered, the session busy
        n.start_soon(ask, b, "second")
    assert replies["first"]["data"]["reply"] == "re: first"
    assert replies["second"]["data"]["reply"] == "re: second"


async def test_ask_errors_end_timeout_self(daemon: Hub, connect) -> None:
    session = await attach(connect)
    hooks = await connect()
    asker = await connect()
    await send_hook(hooks, hook("SessionStart-startup", SID), "iid-flow")
    mine = await asker.request(
        {"type": "ask", "session_id": SID, "text": "x", "data": {"internal_id": "iid-flow"}}
    )
    assert "cannot ask itself" in mine["error"]
    async with trio.open_nursery() as n:
        n.start_soon(answer_routed, session)
        slow = await asker.request(
            {"type": "ask", "session_id": SID, "text": "x", "data": {"timeout_s": 0.3}}
        )
    assert "no reply" in slow["error"] and "was delivered" in slow["error"]
    await send_hook(hooks, hook("Stop", SID), "iid-flow")

    async def end() -> None:
        await answer_routed(session)
        await send_hook(hooks, hook("SessionEnd-prompt_input_exit", SID), "iid-flow")

    async with trio.open_nursery() as n:
        n.start_soon(end)
        ended = await asker.request({"type": "ask", "session_id": SID, "text": "x"})
    assert "ended before answering" in ended["error"]


async def test_subscribe_streams_events_and_drops_slow_readers(daemon: Hub, connect) -> None:
    watcher = await connect()
    sub = await watcher.request({"type": "query", "query": "subscribe"})
    assert sub["data"]["subscribed"] is True
    slow = await connect()
    await slow.request({"type": "query", "query": "subscribe"})
    session = await attach(connect)
    hooks = await connect()
    await send_hook(hooks, hook("SessionStart-startup", SID), "iid-flow")
    seen = []
    with trio.fail_after(5):
        while len(seen) < 3:
            seen.append(await watcher.recv())
    assert [e["event"] for e in seen] == ["connected", "associated", "state"]
    assert seen[2]["state"] == "idle"
    # `slow` never reads: flood events until the kernel buffer and its queue overflow; it is
    # dropped alone, and routing keeps working. (`watcher` drains to stay subscribed.)
    big = hook("PreToolUse-echo", SID, tool_input={"command": "x" * 20_000})

    async def drain() -> None:
        while True:
            await watcher.recv()

    async with trio.open_nursery() as n:
        n.start_soon(drain)
        for _ in range(2_000):
            await send_hook(hooks, big, "iid-flow")
            if len(daemon.events._subscribers) == 1:
                break
        n.cancel_scope.cancel()
    assert len(daemon.events._subscribers) == 1
    await send_hook(hooks, hook("Stop", SID), "iid-flow")
    async with trio.open_nursery() as n:
        n.start_soon(answer_routed, session)
        ok = await hooks.request({"type": "prompt", "session_id": SID, "text": "still routing"})
    assert ok["status"] in SENT


async def test_ccc_watch_prints_the_turn(daemon: Hub, connect, paths) -> None:
    session = await attach(connect)
    hooks = await connect()
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "ccc_statusd.cli", "--socket", str(paths.socket), "watch", "--json"],
        stdout=subprocess.PIPE,
    )
    try:
        await wait_until(
            lambda: daemon.events.subscriber_count, limit_s=20, what="ccc watch subscribed"
        )
        with trio.fail_after(20):
            await send_hook(hooks, hook("SessionStart-startup", SID), "iid-flow")
            async with trio.open_nursery() as n:
                n.start_soon(play_turn, session, hooks, "ECHO: hi")
                await (await connect()).request({"type": "prompt", "session_id": SID, "text": "hi"})
            buf = b""
            events: list[dict] = []
            while not any(e["event"] == "state" and e.get("hook") == "Stop" for e in events):
                buf += await proc.stdout.receive_some(65536)  # type: ignore[union-attr]
                *lines, buf = buf.split(b"\n")
                events += [json.loads(line) for line in lines if line.strip()]
    finally:
        proc.kill()
        await proc.wait()
        await proc.stdout.aclose()  # type: ignore[union-attr]
    story = [e["event"] + ":" + str(e.get("state") or "") for e in events if e["event"] != "hook"]
    # The hook (another connection) may overtake the session client's acknowledgement, so
    # "delivered" and "submitted" may come either side of "busy"; the states come in order.
    states = [e for e in story if e.startswith("state:")]
    assert story[:2] == ["associated:", "state:idle"], story
    assert states == ["state:idle", "state:busy", "state:idle"], story
    assert "delivered:" in story and "submitted:" in story, story


async def test_async_client_ask(daemon: Hub, connect, paths) -> None:
    """The anyio client's ask, on trio (the blocking client's is covered through `ccc ask`)."""
    from ccc_statusd.aclient import AsyncClient

    session = await attach(connect)
    hooks = await connect()
    await send_hook(hooks, hook("SessionStart-startup", SID), "iid-flow")
    async with trio.open_nursery() as n:
        n.start_soon(play_turn, session, hooks, "ECHO: from the async client")
        async with AsyncClient(paths.socket) as client:
            reply = await client.ask(SID[:8], "from the async client", timeout_s=30)
    assert reply["data"]["reply"] == "ECHO: from the async client"
