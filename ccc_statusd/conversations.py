"""``ask``: deliver a prompt, then wait for the reply of the turn it started.

Theory of operation. The prompt is routed like any other (delivered now, or queued because the
session is busy). A listener on the event bus then follows that session: a queued prompt counts
as delivered when its outbox row fires; once delivered, the next ``Stop`` hook ends our turn
(prompts are only typed into idle sessions, so the next Stop is ours; ``UserPromptSubmit`` fires
when a prompt is *enqueued*, so it is not used as "turn started"). The reply is the Stop hook's
``last_assistant_message``, or, for builds without that field, the last assistant text in the
transcript. Several asks to one session are answered in order: each waits for its own delivery,
and the scheduler delivers one queued prompt per idle moment.
"""

from __future__ import annotations

import json
import math
import os
from typing import TYPE_CHECKING, Any

import trio

from . import protocol
from .routing import RoutingError

if TYPE_CHECKING:
    from .hub import Hub
    from .server import Conn

DEFAULT_ASK_TIMEOUT_S = 600.0
TRANSCRIPT_TAIL_BYTES = 512 * 1024  # the last reply is near the end; never read a whole history


async def ask(hub: Hub, msg: protocol.Ask, sender: Conn | None) -> dict[str, Any]:
    data = msg.data or {}
    timeout = data.get("timeout_s", DEFAULT_ASK_TIMEOUT_S)
    if (
        not isinstance(timeout, int | float)
        or isinstance(timeout, bool)
        or not 0 < timeout <= 7 * 86400
    ):
        raise protocol.RemoteProtocolError(
            '"timeout_s" must be a number of seconds between 0 and 604800'
        )
    sid = hub.resolve(msg.session_id)
    info = hub.registry.by_session_id(sid)
    asker_iid = msg.internal_id or data.get("internal_id")
    asker_sid = data.get("session_id")
    if info is not None and (
        (asker_iid and asker_iid == info.key) or (asker_sid and asker_sid in info.all_ids)
    ):
        raise RoutingError(
            f"session {sid} cannot ask itself: it would wait for the end of the very turn that "
            "is waiting; use ccc prompt to queue a prompt for later instead"
        )
    key = info.key if info is not None else None
    events_in, events_out = trio.open_memory_channel[dict[str, Any]](math.inf)

    def listener(event: dict[str, Any]) -> None:
        if key is not None and event.get("key") == key:
            events_in.send_nowait(event)

    hub.events.listeners.append(listener)
    try:
        prompt = protocol.Prompt(
            type="prompt", session_id=sid, text=msg.text, request_id=msg.request_id
        )
        routed = await hub.route(prompt, sender=sender)
        delivered = routed.get("status") == "delivered"
        queued_id = (routed.get("data") or {}).get("id") if not delivered else None
        with trio.move_on_after(timeout):
            async for event in events_out:
                kind = event["event"]
                if kind == "scheduled_fired" and event.get("id") == queued_id:
                    delivered = True
                elif kind == "hook" and event.get("hook") == "Stop" and delivered:
                    reply = await _reply_text(hub, event.get("payload") or {})
                    return protocol.response(
                        request_id=msg.request_id,
                        session_id=sid,
                        status="answered",
                        data={"reply": reply},
                    )
                elif kind == "state" and event.get("state") == "ended":
                    raise RoutingError(
                        f"session {sid} ended before answering; "
                        + (
                            "the prompt was delivered"
                            if delivered
                            else f"the prompt is still queued (id {queued_id})"
                        )
                    )
                elif kind == "state" and event.get("state") == "failed" and delivered:
                    raise RoutingError(
                        f"session {sid}'s turn failed ({event.get('error') or 'StopFailure'}); "
                        "the prompt was delivered: look at the session, then ask again"
                    )
        where = (
            "the prompt was delivered and the session is still working on it"
            if delivered
            else f"the prompt is still queued (id {queued_id}; cancel with: ccc schedule cancel {queued_id})"
        )
        raise RoutingError(f"no reply from session {sid} within {timeout:g} s; {where}")
    finally:
        hub.events.listeners.remove(listener)
        events_in.close()


async def _reply_text(hub: Hub, payload: dict[str, Any]) -> str | None:
    text = payload.get("last_assistant_message")
    if isinstance(text, str):
        return text
    path = payload.get("transcript_path")
    if isinstance(path, str) and path:
        return await hub.store.offload(last_assistant_text, path)
    return None


def last_assistant_text(path: str) -> str | None:
    """The text of the last assistant message in a transcript (reads only its tail)."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            fh.seek(max(0, size - TRANSCRIPT_TAIL_BYTES))
            tail = fh.read()
    except OSError:
        return None
    for raw in reversed(tail.splitlines()):
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(line, dict) or line.get("type") != "assistant":
            continue
        content = (line.get("message") or {}).get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            texts = [
                b.get("text") for b in content if isinstance(b, dict) and b.get("type") == "text"
            ]
            if any(isinstance(t, str) for t in texts):
                return "\n".join(t for t in texts if isinstance(t, str))
    return None
