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
import os
import stat
from typing import Any

import trio

from .. import protocol
from ..events import EventBus
from ..routing import RoutingError
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
        self.waiting: dict[str, set[str]] = {}  # asker session key → asked session keys

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

    def _would_cycle(self, asker: str, target: str) -> bool:
        """Whether ``target`` is (transitively) waiting on an ask to ``asker``."""
        seen: set[str] = set()
        stack = [target]
        while stack:
            key = stack.pop()
            if key == asker:
                return True
            if key in seen:
                continue
            seen.add(key)
            stack.extend(self.waiting.get(key, ()))
        return False

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
        if asker is not None and key is not None and self._would_cycle(asker, key):
            raise RoutingError(
                f"session {sid} is itself waiting (directly or through others) for an answer "
                "from the asking session: both would wait until they time out; send a prompt "
                "instead (ccc prompt / send_prompt), or answer its question first"
            )
        events_in, events_out = trio.open_memory_channel[dict[str, Any]](math.inf)

        def listener(event: dict[str, Any]) -> None:
            if key is not None and event.get("key") == key:
                events_in.send_nowait(event)

        if asker is not None and key is not None:
            self.waiting.setdefault(asker, set()).add(key)
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
                asked = self.waiting.get(asker)
                if asked is not None:
                    asked.discard(key)
                    if not asked:
                        del self.waiting[asker]

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


def read_tail(path: str, max_bytes: int) -> bytes | None:
    """The last ``max_bytes`` of a regular file, read without blocking; None for anything else
    (a FIFO, ``/dev/zero``, a directory) or an unreadable path."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, ValueError):
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        start = max(0, st.st_size - max_bytes)
        return os.pread(fd, min(max_bytes, st.st_size), start)
    except OSError:
        return None
    finally:
        os.close(fd)


def last_assistant_text(path: str) -> str | None:
    """The text of the last assistant message in a transcript (reads only its tail)."""
    tail = read_tail(path, TRANSCRIPT_TAIL_BYTES)
    if tail is None:
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
