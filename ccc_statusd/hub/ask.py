"""``ask``: deliver a prompt, then wait for the reply of the turn it started.

Theory of operation. The prompt is routed like any other (typed now, or queued because the
session cannot take it now). A listener on the event bus then follows that session: a queued
prompt counts as delivered when its outbox row fires; once delivered, the next ``Stop`` hook
ends our turn (prompts are only typed into idle sessions, so the next Stop is ours;
``UserPromptSubmit`` fires when a prompt is *enqueued*, so it is not used as "turn started").
The reply is the Stop hook's ``last_assistant_message``, or, for builds without that field, the
last assistant text in the transcript (a bounded, non-blocking read of its tail). Several asks
to one session are answered in order: each waits for its own delivery, and the scheduler
delivers one queued prompt per idle moment.

An ask holds its connection while it waits, so it watches it: when the asker hangs up, the ask
ends and its prompt, if still queued, is cancelled (an orphaned ask must not hold a connection
slot for days). Asks form a graph (asker session → asked session): an ask that would close a
cycle (A asks B while B asks A) is refused at once instead of waiting for both timeouts.
"""

from __future__ import annotations

import json
import math
from typing import Any

import trio

from .. import protocol
from ..askgraph import AskCycle, AskGraph
from ..events import EventBus
from ..routing import RoutingError
from ..safeio import read_tail
from ..server import Conn
from ..storeworker import StoreWorker
from .delivery import QUEUED, Delivery
from .directory import SessionDirectory

DEFAULT_ASK_TIMEOUT_S = 600.0
MAX_ASK_TIMEOUT_S = 7 * 86400.0
TRANSCRIPT_TAIL_BYTES = 512 * 1024  # the last reply is near the end; never read a whole history
STASH_BYTES = 64 * 1024  # what an asker may pipeline behind its ask while it waits


class Asks:
    def __init__(
        self,
        directory: SessionDirectory,
        delivery: Delivery,
        events: EventBus,
        store: StoreWorker,
        cancel_row: Any,
    ) -> None:
        self.directory = directory
        self.delivery = delivery
        self.events = events
        self.store = store
        self.cancel_row = cancel_row  # async (row id) → None: drop a still-queued prompt
        self.graph = AskGraph()  # asks in flight, by session key: refuses a cycle

    def _asker_key(self, msg: protocol.Ask) -> str | None:
        data = msg.data or {}
        iid = msg.internal_id or data.get("internal_id")
        if isinstance(iid, str) and self.directory.get(iid) is not None:
            return iid
        asker_sid = data.get("session_id")
        if isinstance(asker_sid, str):
            info = self.directory.by_session_id(asker_sid)
            if info is not None:
                return info.key
        return None

    async def ask(self, msg: protocol.Ask, sender: Conn | None) -> dict[str, Any]:
        data = msg.data or {}
        timeout = data.get("timeout_s", DEFAULT_ASK_TIMEOUT_S)
        if (
            not isinstance(timeout, int | float)
            or isinstance(timeout, bool)
            or not 0 < timeout <= MAX_ASK_TIMEOUT_S
        ):
            raise protocol.RemoteProtocolError(
                '"timeout_s" must be a number of seconds between 0 and 604800 (7 days)'
            )
        sid = self.directory.resolve(msg.session_id)
        info = self.directory.by_session_id(sid)
        key = info.key if info is not None else None
        asker = self._asker_key(msg)
        asker_sid = data.get("session_id")
        if info is not None and (
            asker == key or (isinstance(asker_sid, str) and asker_sid in info.all_ids)
        ):
            raise RoutingError(
                f"session {sid} cannot ask itself: it would wait for the end of the very turn "
                "that is waiting; use ccc prompt to queue a prompt for later instead"
            )
        if asker is not None and key is not None:
            try:
                self.graph.begin(asker, key)
            except AskCycle as exc:
                raise RoutingError(str(exc)) from None
        events_in, events_out = trio.open_memory_channel[dict[str, Any]](math.inf)

        def listener(event: dict[str, Any]) -> None:
            if key is not None and event.get("key") == key:
                events_in.send_nowait(event)

        state: dict[str, Any] = {"delivered": False, "queued_id": None}
        try:
            with self.events.listen(listener):
                if sender is None:
                    return await self._ask(msg, sid, timeout, events_out, state)
                reply = await sender.unless_hangup(
                    self._ask, msg, sid, timeout, events_out, state, max_stash=STASH_BYTES
                )
                if reply is not None:
                    return reply
                # The asker hung up: nobody wants the answer, nor the prompt if not yet sent.
                if not state["delivered"] and state["queued_id"]:
                    with trio.CancelScope(shield=True):
                        await self.cancel_row(state["queued_id"])
                raise RoutingError("the asker disconnected; the ask was cancelled")
        finally:
            events_in.close()
            if asker is not None and key is not None:
                self.graph.end(asker, key)

    async def _ask(
        self,
        msg: protocol.Ask,
        sid: str,
        timeout_s: float,
        events_out: trio.MemoryReceiveChannel[dict[str, Any]],
        state: dict[str, Any],
    ) -> dict[str, Any]:
        prompt = protocol.Prompt(
            type="prompt", session_id=sid, text=msg.text, request_id=msg.request_id
        )
        routed = await self.delivery.route(prompt, sender="ask")
        state["delivered"] = routed.get("status") != QUEUED
        if not state["delivered"]:
            state["queued_id"] = (routed.get("data") or {}).get("id")
        queued_id = state["queued_id"]
        with trio.move_on_after(timeout_s):
            async for event in events_out:
                kind = event["event"]
                if kind in ("typing", "scheduled_fired") and event.get("id") == queued_id:
                    state["delivered"] = True  # "typing" comes first: see Delivery._deliver
                elif kind == "typing_aborted" and event.get("id") == queued_id:
                    state["delivered"] = False  # declined after all: still queued
                elif kind == "hook" and event.get("hook") == "Stop" and state["delivered"]:
                    reply = await self._reply_text(event.get("payload") or {})
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
                            if state["delivered"]
                            else f"the prompt is still queued (id {queued_id})"
                        )
                    )
                elif kind == "state" and event.get("state") == "failed" and state["delivered"]:
                    raise RoutingError(
                        f"session {sid}'s turn failed ({event.get('error') or 'StopFailure'}); "
                        "the prompt was delivered: look at the session, then ask again"
                    )
        where = (
            "the prompt was delivered and the session is still working on it"
            if state["delivered"]
            else f"the prompt is still queued (id {queued_id}; cancel with: ccc schedule cancel {queued_id})"
        )
        raise RoutingError(f"no reply from session {sid} within {timeout_s:g} s; {where}")

    async def _reply_text(self, payload: dict[str, Any]) -> str | None:
        text = payload.get("last_assistant_message")
        if isinstance(text, str):
            return text
        path = payload.get("transcript_path")
        if isinstance(path, str) and path:
            return await self.store.offload(last_assistant_text, path)
        return None


def last_assistant_text(path: str) -> str | None:
    """The text of the last assistant message in a transcript (reads only its tail)."""
    try:
        tail = read_tail(path, TRANSCRIPT_TAIL_BYTES)  # non-blocking, regular files only
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
