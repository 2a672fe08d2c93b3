"""Hooks drive session state; prompts are delivered only when idle, else queued in the outbox."""

from __future__ import annotations

import trio

from ccc_statusd.hub import Hub
from ccc_statusd.store import Store

from .conftest import LineClient, answer_routed
from .fixtures import fixture, hook
from .helpers import wait_until

SENT = ("typed", "submitted")  # a prompt or command the session client typed

SID = "6656f299-72c7-4382-8647-f94b8f7faaf3"
NEW_SID = "0bf7fcec-6527-4470-9385-92271deedb9b"


async def send_hook(c: LineClient, payload: dict, iid: str | None = None, **env: str) -> None:
    msg = {"type": "hook", "data": payload, "env": env}
    if iid:
        msg["env"]["CCC_INTERNAL_ID"] = iid
    reply = await c.request(msg)
    assert reply.get("error") is None, reply


async def attach(connect, iid: str = "iid-flow") -> LineClient:
    session = await connect()
    reply = await session.request({"type": "register", "internal_id": iid, "data": {"kind": "pty"}})
    assert reply.get("error") is None
    return session


async def test_hooks_associate_and_set_state(daemon: Hub, connect) -> None:
    session = await attach(connect)
    hooks = await connect()
    await send_hook(hooks, hook("SessionStart-startup", SID), "iid-flow")
    info = daemon.registry.by_session_id(SID)
    assert info is not None and info.key == "iid-flow" and info.state == "idle"
    assert info.model == "claude-opus-5-5"
    assert info.transcript_path and info.transcript_path.endswith(f"{SID}.jsonl")
    await send_hook(hooks, hook("UserPromptSubmit", SID), "iid-flow")
    assert info.state == "busy"
    await send_hook(hooks, hook("Notification-permission_prompt", SID), "iid-flow")
    assert info.state == "waiting"
    await send_hook(hooks, hook("Stop", SID), "iid-flow")
    assert info.state == "idle" and info.last_assistant_message == "ECHO: hello world"
    listed = (await hooks.request({"type": "query", "query": "list_sessions"}))["data"]
    assert listed[0]["session_id"] == SID and listed[0]["state"] == "idle"
    await session.aclose()


async def test_busy_session_gets_message_queued_then_delivered_on_stop(
    daemon: Hub, connect
) -> None:
    session = await attach(connect)
    hooks = await connect()
    sender = await connect()
    await send_hook(hooks, hook("SessionStart-startup", SID), "iid-flow")
    await send_hook(hooks, hook("UserPromptSubmit", SID), "iid-flow")
    first = await sender.request({"type": "prompt", "session_id": SID[:8], "text": "one"})
    second = await sender.request({"type": "command", "session_id": SID, "name": "compact"})
    assert first["status"] == "queued" and "busy" in first["data"]["reason"]
    assert second["status"] == "queued"
    assert len(await daemon.store.call(Store.scheduled, SID)) == 2
    # The turn ends: the outbox is delivered in order, each acknowledged before deletion.
    await send_hook(hooks, hook("Stop", SID), "iid-flow")
    got1 = await answer_routed(session)
    got2 = await answer_routed(session)
    assert (got1["type"], got1["text"]) == ("prompt", "one")
    assert (got2["type"], got2["name"]) == ("command", "compact")

    async def outbox_empty() -> bool:
        return not await daemon.store.call(Store.scheduled, SID)

    await wait_until(outbox_empty, limit_s=5)


async def test_client_declining_not_idle_queues(daemon: Hub, connect) -> None:
    session = await attach(connect)
    sender = await connect()
    hooks = await connect()
    await send_hook(hooks, hook("SessionStart-startup", SID), "iid-flow")
    async with trio.open_nursery() as n:
        n.start_soon(
            answer_routed, session, {"error": "the user has a draft", "status": "not_idle"}
        )
        reply = await sender.request({"type": "prompt", "session_id": SID, "text": "later"})
    assert reply["status"] == "queued" and "draft" in reply["data"]["reason"]
    rows = await daemon.store.call(Store.scheduled, SID)
    assert [r["message"] for r in rows] == ["later"]


async def test_clear_rotates_id_and_old_id_still_routes(daemon: Hub, connect) -> None:
    session = await attach(connect)
    hooks = await connect()
    sender = await connect()
    await send_hook(hooks, hook("SessionStart-startup", SID), "iid-flow")
    await send_hook(hooks, hook("SessionEnd-clear", SID), "iid-flow")
    await send_hook(hooks, hook("SessionStart-clear", NEW_SID), "iid-flow")
    info = daemon.registry.by_session_id(NEW_SID)
    assert info is not None and info.aliases == [SID] and info.state == "idle"
    for target in (NEW_SID, SID):
        async with trio.open_nursery() as n:
            n.start_soon(answer_routed, session)
            reply = await sender.request({"type": "prompt", "session_id": target, "text": "hi"})
        assert reply["status"] in SENT and reply["session_id"] == target
        # Claude Code takes the prompt and ends the turn (until a hook says so, a second
        # message would be queued: the delivery settle window).
        await send_hook(hooks, hook("UserPromptSubmit", NEW_SID, prompt="hi"), "iid-flow")
        await send_hook(hooks, hook("Stop", NEW_SID), "iid-flow")
    daemon.registry.check_consistent()


async def test_adopted_session_without_client_or_tmux(daemon: Hub, connect) -> None:
    hooks = await connect()
    await send_hook(hooks, hook("SessionStart-startup", SID), CLAUDE_PID="4242")
    info = daemon.registry.by_session_id(SID)
    assert info is not None and info.key == "pid-4242" and not info.connected
    reply = await hooks.request({"type": "prompt", "session_id": SID, "text": "x"})
    assert "not connected" in reply["error"] and "ccc run -- claude" in reply["error"]


async def test_session_end_and_stop_failure(daemon: Hub, connect) -> None:
    await attach(connect)
    hooks = await connect()
    await send_hook(hooks, hook("SessionStart-startup", SID), "iid-flow")
    await send_hook(
        hooks,
        {**hook("Stop", SID), "hook_event_name": "StopFailure", "error": "rate_limit"},
        "iid-flow",
    )
    info = daemon.registry.by_session_id(SID)
    assert info is not None and info.state == "failed" and info.state_error == "rate_limit"
    await send_hook(hooks, hook("SessionEnd-prompt_input_exit", SID), "iid-flow")
    assert info.state == "ended"
    reply = await hooks.request({"type": "prompt", "session_id": SID, "text": "x"})
    assert "ended at" in reply["error"] and "--resume" in reply["error"]


async def test_statusline_feeds_context_window(daemon: Hub, connect) -> None:
    c = await connect()
    reply = await c.request({"type": "statusline", "data": fixture("statusline")})
    assert reply["data"]["short_id"] == SID[:8]
    row = await daemon.store.call(Store.context_window, SID)
    assert row["context_window_size"] == 1_000_000 and row["used_percentage"] == 1
    assert row["current_input_tokens"] == 14169
    # Before the first reply the figures are null: nothing is written, nothing breaks.
    start = await c.request(
        {"type": "statusline", "data": fixture("statusline-startup", session_id="fresh-0001")}
    )
    assert start.get("error") is None
    assert await daemon.store.call(Store.context_window, "fresh-0001") is None


async def test_metadata_and_cache_files_persist(daemon: Hub, connect, paths) -> None:
    await attach(connect)
    hooks = await connect()
    await send_hook(hooks, hook("SessionStart-startup", SID), "iid-flow")
    await daemon.flush_metadata()
    row = await daemon.store.call(Store.session, SID)
    assert row["internal_id"] == "iid-flow" and row["state"] == "idle"
    assert row["first_seen"] <= row["last_seen"]
    import json

    cached = json.loads(paths.session_cache(SID).read_text())
    assert cached["session_id"] == SID and cached["state"] == "idle"


async def test_hook_without_client_id_does_not_steal_a_connected_sessions_id(
    daemon: Hub, connect
) -> None:
    session = await attach(connect)
    hooks = await connect()
    await send_hook(hooks, hook("SessionStart-startup", SID), "iid-flow")
    await send_hook(hooks, hook("UserPromptSubmit", SID))  # no CCC_INTERNAL_ID, no pids
    info = daemon.registry.by_session_id(SID)
    assert info is not None and info.key == "iid-flow" and info.state == "busy"
    daemon.registry.check_consistent()
    await session.aclose()


async def test_second_message_waits_for_the_first_turns_hooks(daemon: Hub, connect) -> None:
    """Two senders at once: the second is queued until a hook tells what the first started."""
    session = await attach(connect)
    hooks = await connect()
    a, b = await connect(), await connect()
    await send_hook(hooks, hook("SessionStart-startup", SID), "iid-flow")
    async with trio.open_nursery() as n:
        n.start_soon(answer_routed, session)
        first = await a.request({"type": "prompt", "session_id": SID, "text": "one"})
    second = await b.request({"type": "prompt", "session_id": SID, "text": "two"})
    assert first["status"] in SENT
    assert second["status"] == "queued" and "just delivered" in second["data"]["reason"]
    await send_hook(hooks, hook("UserPromptSubmit", SID, prompt="one"), "iid-flow")
    await send_hook(hooks, hook("Stop", SID), "iid-flow")
    got = await answer_routed(session)  # the turn ended: the queued one goes now, once
    assert got["text"] == "two"
