"""The daemon's shared state and what it does with each message type.

The hub holds the session registry (the seed's ``sessionToInternal`` and what we know of each
session), the store worker, the event bus, and the scheduler's wake-up. ``handle_line`` takes one
raw line from a connection and returns the one reply line (or None for a session client's
``response``, which answers a request of ours and must not be answered back).

Theory of operation for routed messages (prompt / command / eval): resolve the id (full or
unique prefix), ask ``routing.decide`` where it goes, then either write it to the session
client's queue with a fresh ``request_id`` and wait (bounded) for its ``response``, type it
into a tmux pane, or store it in the session's outbox (``scheduled_messages`` with trigger
``idle``) for the scheduler to deliver at the session's next idle moment.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
from collections.abc import Callable
from typing import Any

import trio

from . import __version__, protocol
from .cache import write_session_cache
from .config import DaemonConfig
from .events import EventBus
from .protocol import RemoteProtocolError
from .routing import Deliver, DeliverTmux, Queue, RoutingError, command_line, decide, resolve_id
from .server import Conn, PendingReply, Server
from .sessions import (
    BUSY,
    ENDED,
    FAILED,
    IDLE,
    UNKNOWN,
    WAITING,
    SessionInfo,
    SessionRegistry,
    hook_session_key,
    state_after_hook,
)
from .storeworker import StoreWorker

log = logging.getLogger(__name__)

_request_ids = itertools.count(1)
# After typing into a session, further messages wait this long for a hook (UserPromptSubmit,
# Stop...) to tell what the session is doing; sessions without hooks get one message per window.
DELIVERY_SETTLE_S = 3.0
# Session metadata is flushed at most this often (coalescing heartbeats into one transaction).
FLUSH_INTERVAL_S = 0.25
# How many delivered texts per session are remembered to confirm them against
# UserPromptSubmit (a prompt that never shows up there was swallowed somewhere).
DELIVERED_MEMORY = 32


class NotIdle(Exception):
    """Not now: the hooks say busy/waiting (``by_client`` False), or the session client declined
    (``by_client`` True: the user has a draft, is typing, or the terminal is not quiet)."""

    def __init__(
        self, reason: str, *, by_client: bool = False, retry_s: float | None = None
    ) -> None:
        super().__init__(reason)
        self.by_client = by_client
        self.retry_s = retry_s  # when to look again, if known (else a hook will wake us)


class Hub:
    def __init__(
        self,
        config: DaemonConfig,
        store: StoreWorker,
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.wall = wall
        self.registry = SessionRegistry()
        self.events = EventBus(wall)
        self.server: Server | None = None
        self.started_at = trio.current_time()
        self.started_wall = wall()
        self.remembered_ids: set[str] = set()  # ids in the database, routable or not
        self.scheduled_count = 0
        self.wake_scheduler: Callable[..., None] = lambda session_ids=(): None
        self.transcripts: dict[str, dict[str, Any]] = {}  # session id → transcript aggregate
        self.config_dirs: set[str] = set()
        self._dirty: set[str] = set()
        self._dirty_event = trio.Event()
        self._flush_lock = trio.Lock()
        self._cache_fingerprints: dict[str, int] = {}  # skip rewriting unchanged cache files
        self.counters = {"routed": 0, "queued": 0, "errors": 0, "hooks": 0}
        self.loop_stats: Any = None  # instrument.LoopStats, only under `make bench`

    # --- start-up ---------------------------------------------------------------------------

    async def load(self) -> None:
        """Remember the ids of sessions in the database, so they resolve by prefix."""
        rows = await self.store.run("sessions")
        for row in rows:
            self.remembered_ids.add(row["session_id"])
            if row.get("claude_config_dir"):
                self.config_dirs.add(row["claude_config_dir"])
        self.scheduled_count = await self.store.run("count_scheduled")

    # --- the entry point --------------------------------------------------------------------

    async def handle_line(self, conn: Conn, line: bytes) -> bytes | None:
        obj: dict[str, Any] | None = None
        try:
            obj = protocol.decode_object(line)
            msg = protocol.validate(obj)
            reply = await self.dispatch(conn, msg)
        except (RemoteProtocolError, RoutingError) as exc:
            self.counters["errors"] += 1
            rid = protocol.request_id_of(obj) if obj is not None else None
            reply = protocol.response(request_id=rid, error=str(exc))
        if reply is None:
            return None
        return protocol.encode_dict(reply)

    async def dispatch(self, conn: Conn, msg: Any) -> dict[str, Any] | None:
        rid = msg.request_id
        kind = msg.type
        if kind == "response":
            return self._on_response(conn, msg)
        if kind == "query":
            return await self._on_query(conn, msg)
        if kind in ("prompt", "command", "eval"):
            return await self.route(msg, sender=conn)
        if kind == "ask":
            from .conversations import ask

            return await ask(self, msg, conn)
        if kind == "hook":
            await self.on_hook(msg)
            return protocol.response(request_id=rid)
        if kind == "statusline":
            return protocol.response(request_id=rid, data=await self.on_statusline(msg))
        if kind == "register":
            return self._on_register(conn, msg)
        if kind == "associate":
            return self._on_associate(conn, msg)
        if kind == "heartbeat":
            return self._on_heartbeat(conn, msg)
        raise RemoteProtocolError(f"message type {kind!r} is not accepted by the daemon")

    # --- session clients --------------------------------------------------------------------

    def _on_register(self, conn: Conn, msg: protocol.Register) -> dict[str, Any]:
        iid = msg.internal_id
        if conn.internal_id is not None and conn.internal_id != iid:
            raise RemoteProtocolError(
                f"this connection is already registered as {conn.internal_id}; open a new "
                "connection to register another session client"
            )
        if self.server is not None:
            self.server.register_client(iid, conn)
        data = msg.data or {}
        info = self.registry.ensure(
            iid,
            internal_id=iid,
            kind=_str(data.get("kind")) or "pty",
            pid=_int(data.get("pid")),
            cwd=_str(data.get("cwd")),
            tmux_pane=_str(data.get("tmux_pane")),
            claude_config_dir=msg.claude_config_dir or _str(data.get("config_dir")),
            transcript_path=msg.transcript_path,
        )
        caps = data.get("capabilities")
        if isinstance(caps, list):
            info.capabilities = [c for c in caps if isinstance(c, str)]
        info.connected = True
        info.data.pop("client_left", None)
        info.last_heartbeat = trio.current_time()
        info.first_seen = info.first_seen or self.wall()
        if msg.session_id:
            self._associate(info, msg.session_id)
        self.touch(info)
        self.events.publish("connected", info, kind=info.kind)
        self.wake_scheduler(info.all_ids)
        return protocol.response(request_id=msg.request_id, session_id=info.session_id)

    def _on_associate(self, conn: Conn, msg: protocol.Associate) -> dict[str, Any]:
        info = self._registered(conn, msg.internal_id)
        self._associate(info, msg.session_id)
        if msg.transcript_path:
            info.transcript_path = msg.transcript_path
        if msg.claude_config_dir:
            info.claude_config_dir = msg.claude_config_dir
        self.touch(info)
        self.wake_scheduler(info.all_ids)
        return protocol.response(request_id=msg.request_id, session_id=info.session_id)

    def _on_heartbeat(self, conn: Conn, msg: protocol.Heartbeat) -> dict[str, Any]:
        info = self._registered(conn, msg.internal_id)
        info.last_heartbeat = trio.current_time()
        if msg.session_id and msg.session_id != info.session_id:
            self._associate(info, msg.session_id)
        if msg.transcript_path:
            info.transcript_path = msg.transcript_path
        if msg.claude_config_dir:
            info.claude_config_dir = msg.claude_config_dir
        data = msg.data or {}
        for attr in ("cwd", "tmux_pane"):
            value = _str(data.get(attr))
            if value:
                setattr(info, attr, value)
        if data.get("input_idle") is True:
            # The client had declined a message (draft, typing) and is free again: retry now.
            self.wake_scheduler(info.all_ids)
        self.touch(info)
        return protocol.response(request_id=msg.request_id)

    def _registered(self, conn: Conn, internal_id: str) -> SessionInfo:
        """The session registered as ``internal_id`` on this very connection, or the error."""
        info = self.registry.sessions.get(internal_id)
        if info is None or (self.server and self.server.clients.get(internal_id) is not conn):
            raise RemoteProtocolError(
                f"internal_id {internal_id} is not registered on this connection; "
                "send a register message first"
            )
        return info

    def _associate(self, info: SessionInfo, session_id: str) -> None:
        _, previous = self.registry.associate(info.key, session_id)
        self.remembered_ids.add(session_id)
        if previous is not None or info.session_id == session_id:
            self.events.publish("associated", info, previous=previous)

    def _on_response(self, conn: Conn, msg: protocol.Response) -> dict[str, Any] | None:
        pending = conn.pending.pop(msg.request_id or "", None)
        if pending is None:
            raise RemoteProtocolError(
                f"unexpected response (request_id {msg.request_id!r} is not awaiting an answer "
                "on this connection); only answer messages the daemon sent you"
            )
        pending.result = {"data": msg.data, "error": msg.error, "status": msg.status}
        pending.event.set()
        return None

    def on_disconnect(self, conn: Conn) -> None:
        if self.server is None or not self.server.unregister_client(conn):
            return
        info = self.registry.sessions.get(conn.internal_id or "")
        conn.internal_id = None
        if info is None:
            return
        info.connected = False
        info.data["client_left"] = True
        self.events.publish("disconnected", info)
        if info.session_id is None:
            self.registry.forget(info.key)
        else:
            self.touch(info)

    # --- routing ----------------------------------------------------------------------------

    def known_ids(self) -> set[str]:
        return self.registry.known_ids() | self.remembered_ids

    def resolve(self, target: str) -> str:
        """A full id (the common case: no set is built) or a unique prefix → full session id."""
        if target in self.registry.session_to_internal or target in self.remembered_ids:
            return target
        return resolve_id(target, self.known_ids())

    async def route(
        self,
        msg: Any,
        *,
        sender: Conn | None,
        allow_queue: bool = True,
        delivery_id: str | None = None,
    ) -> dict[str, Any]:
        """Route a prompt/command/eval; the reply says delivered, queued, or what went wrong."""
        kind = msg.type
        rid = msg.request_id
        if kind == "eval" and not self.config.allow_eval:
            raise RoutingError(
                "eval is disabled on this daemon; restart it with: ccc-statusd --allow-eval "
                "(it lets any local client run code inside your Claude Code sessions)"
            )
        sid = self.resolve(msg.session_id)
        info = self.registry.by_session_id(sid)
        conn = self.server.clients.get(info.key) if (info and self.server) else None
        settling_s = info.data.get("settle_until", 0.0) - trio.current_time() if info else 0.0
        decision = decide(kind, info, sid, client_connected=conn is not None, settling_s=settling_s)
        text = (
            msg.text
            if kind == "prompt"
            else command_line(msg.name, msg.text)
            if kind == "command"
            else msg.code
        )
        if isinstance(decision, Queue):
            if not allow_queue:
                raise NotIdle(decision.reason, retry_s=decision.retry_s)
            return await self._queue(sid, kind, text, decision.reason, rid, sender)
        assert info is not None
        if kind != "eval" and info.state != UNKNOWN:
            info.data["settle_until"] = trio.current_time() + DELIVERY_SETTLE_S
        # Remember the text before typing it: Claude Code's UserPromptSubmit hook can reach us
        # (on another connection) before the session client's acknowledgement does.
        entry = self._remember_delivery(info, text) if kind != "eval" else None
        try:
            if isinstance(decision, Deliver):
                assert conn is not None
                result = await self.deliver_to_client(conn, sid, msg, delivery_id)
            elif isinstance(decision, DeliverTmux):
                result = await self._deliver_tmux(
                    decision.pane, info.data.get("tmux_socket"), sid, msg
                )
            else:  # pragma: no cover - exhaustive
                raise AssertionError(decision)
        except BaseException as exc:
            self._forget_delivery(info, entry)
            info.data.pop("settle_until", None)
            if isinstance(exc, NotIdle) and allow_queue:
                return await self._queue(sid, kind, text, str(exc), rid, sender)
            raise
        if kind != "eval":
            self.events.publish("delivered", info, kind=kind, text=_preview(text))
        self.counters["routed"] += 1
        return protocol.response(
            request_id=rid,
            session_id=sid,
            status="delivered",
            data=result.get("data"),
        )

    async def deliver_to_client(
        self, conn: Conn, sid: str, msg: Any, delivery_id: str | None = None
    ) -> dict[str, Any]:
        """Write one routed message to a session client and wait for its ``response``.

        ``delivery_id`` (a scheduled row's ``sched-<id>``) is reused across retries, so a client
        that already typed it answers without typing it twice."""
        request_id = delivery_id or f"d{next(_request_ids)}"
        out: dict[str, Any] = {"type": msg.type, "request_id": request_id, "session_id": sid}
        info = self.registry.by_session_id(sid)
        if info is not None:
            # What the hooks say: a client may skip its own quiet-terminal check when "idle".
            out["data"] = {"state": info.state}
        if msg.type == "prompt":
            out["text"] = msg.text
        elif msg.type == "command":
            out["name"] = msg.name.lstrip("/")
            if msg.text:
                out["text"] = msg.text
        else:
            out["code"] = msg.code
        pending = PendingReply()
        conn.pending[request_id] = pending
        if not conn.send_nowait(protocol.encode_dict(out)):
            conn.pending.pop(request_id, None)
            raise RoutingError(
                f"session {sid} is not reading its messages (its queue of "
                f"{self.config.outbound_queue} is full); it may be hung: restart it"
            )
        with trio.move_on_after(self.config.request_timeout_s):
            await pending.event.wait()
        conn.pending.pop(request_id, None)
        result = pending.result
        if not pending.event.is_set():
            raise RoutingError(
                f"session {sid} did not answer within {self.config.request_timeout_s:g} s; it may "
                "be hung. The message may still arrive; check with: ccc sessions"
            )
        if result is None:
            raise RoutingError(
                f"session {sid} disconnected before confirming delivery; the message may not "
                "have arrived: check the session, then send again"
            )
        if result.get("error"):
            if result.get("status") == "not_idle":
                raise NotIdle(str(result["error"]), by_client=True)
            raise RoutingError(f"session {sid} answered with an error: {result['error']}")
        return result

    async def _deliver_tmux(
        self, pane: str, socket: str | None, sid: str, msg: Any
    ) -> dict[str, Any]:
        from .tmux_delivery import TmuxDeliveryError, deliver_command_to_pane, deliver_to_pane

        delay = self.config.tmux_enter_delay_s
        try:
            if msg.type == "command":
                await deliver_command_to_pane(
                    pane, msg.name.lstrip("/"), msg.text, enter_delay_s=delay, socket_name=socket
                )
            else:
                await deliver_to_pane(pane, msg.text, enter_delay_s=delay, socket_name=socket)
        except TmuxDeliveryError as exc:
            raise RoutingError(
                f"could not type into session {sid}'s tmux pane {pane}: {exc}; "
                "attach the session with: ccc run -- claude"
            ) from None
        return {"data": {"delivered_via": "tmux", "pane": pane}}

    async def _queue(
        self, sid: str, kind: str, text: str, reason: str, rid: str | None, sender: Conn | None
    ) -> dict[str, Any]:
        row = await self.store.run(
            "add_scheduled",
            sid,
            text,
            int(self.wall()),
            kind=kind,
            trigger="idle",
            now=int(self.wall()),
        )
        self.scheduled_count += 1
        self.counters["queued"] += 1
        info = self.registry.by_session_id(sid)
        if info is not None:
            self.events.publish("queued", info, id=row["id"], reason=reason, text=_preview(text))
        self.wake_scheduler()
        return protocol.response(
            request_id=rid,
            session_id=sid,
            status="queued",
            data={"id": row["id"], "reason": reason},
        )

    def _remember_delivery(self, info: SessionInfo, text: str) -> dict[str, Any]:
        delivered = info.data.setdefault("delivered", [])
        entry = {"text": text, "at": self.wall(), "submitted": False}
        delivered.append(entry)
        del delivered[:-DELIVERED_MEMORY]
        return entry

    def _forget_delivery(self, info: SessionInfo, entry: dict[str, Any] | None) -> None:
        delivered = info.data.get("delivered", [])
        if entry is not None and entry in delivered and not entry["submitted"]:
            delivered.remove(entry)

    # --- hooks and statusline ---------------------------------------------------------------

    async def on_hook(self, msg: protocol.Hook) -> SessionInfo | None:
        payload = msg.data
        env = msg.env or {}
        event = payload.get("hook_event_name")
        sid = payload.get("session_id")
        if not isinstance(event, str) or not isinstance(sid, str):
            raise RemoteProtocolError(
                'hook data needs the "session_id" and "hook_event_name" strings Claude Code '
                "sends; configure the hook command as: ccc hook"
            )
        if not protocol.is_safe_id(sid):
            raise RemoteProtocolError(f"hook session_id {sid[:40]!r} is not a plain id")
        key = hook_session_key(payload, env, msg.internal_id)
        if key is None:  # pragma: no cover - sid is safe, so a key always exists
            return None
        owner = self.registry.session_to_internal.get(sid)
        if (
            owner is not None
            and owner != key
            and not (msg.internal_id or env.get("CCC_INTERNAL_ID"))
        ):
            # A hook that does not name its client must not take an id away from the session
            # client that holds it (its prompts would then fail as "not connected").
            owner_info = self.registry.sessions.get(owner)
            if owner_info is not None and owner_info.connected:
                key = owner
        self.counters["hooks"] += 1
        info = self.registry.sessions.get(key)
        if info is None:
            info = self.registry.ensure(key, first_seen=self.wall())
            if not key.startswith("pid-") and not key.startswith("sid-"):
                info.internal_id = key
        now = self.wall()
        if event == "SessionEnd" and sid != info.session_id and sid in info.aliases:
            return info  # the old id of a /clear: the new SessionStart already took over
        if info.session_id != sid:
            self._associate(info, sid)
        pid = env.get("CLAUDE_PID") or (
            (env.get("PPID_PARENT") or env.get("PPID")) if not info.internal_id else None
        )
        self.registry.ensure(
            key,
            transcript_path=_str(payload.get("transcript_path")),
            cwd=_str(payload.get("cwd")) or _str(env.get("CLAUDE_PROJECT_DIR")),
            claude_config_dir=_str(env.get("CLAUDE_CONFIG_DIR")),
            tmux_pane=_str(env.get("TMUX_PANE")),
            pid=_int(pid),
        )
        if info.claude_config_dir:
            self.config_dirs.add(info.claude_config_dir)
        if env.get("TMUX") and env.get("TMUX_PANE"):
            from .tmux_delivery import socket_from_tmux_env

            info.data["tmux_socket"] = socket_from_tmux_env(env["TMUX"])
        if event == "SessionStart" and isinstance(payload.get("model"), str):
            info.model = payload["model"]
        if event == "UserPromptSubmit":
            self._confirm_submitted(info, payload.get("prompt"))
        if event == "Stop":
            lam = payload.get("last_assistant_message")
            if isinstance(lam, str):
                info.last_assistant_message = lam
        info.last_activity = now
        info.data.pop("settle_until", None)
        state = state_after_hook(event, payload)
        if event == "SessionEnd" and payload.get("reason") == "clear":
            state = BUSY  # about to be replaced by SessionStart{source: clear}
        if state is not None:
            error = None
            if state == FAILED:
                error = (
                    _str(payload.get("error"))
                    or _str(payload.get("error_type"))
                    or "the turn failed"
                )
            if self.registry.set_state(info, state, now, error):
                self.events.publish("state", info, state=state, error=error, hook=event)
            if state == IDLE:
                self.wake_scheduler(info.all_ids)
        self.events.publish("hook", info, hook=event, payload=payload)
        self.touch(info)
        return info

    def _confirm_submitted(self, info: SessionInfo, prompt: Any) -> None:
        if not isinstance(prompt, str):
            return
        for entry in info.data.get("delivered", []):
            if not entry["submitted"] and entry["text"].strip() == prompt.strip():
                entry["submitted"] = True
                log.info(
                    "session %s submitted the delivered prompt %r",
                    info.session_id,
                    _preview(prompt),
                )
                self.touch(info)
                self.events.publish("submitted", info, text=_preview(prompt))
                return

    async def on_statusline(self, msg: protocol.Statusline) -> dict[str, Any]:
        payload = msg.data
        env = msg.env or {}
        sid = payload.get("session_id")
        if not isinstance(sid, str) or not protocol.is_safe_id(sid):
            raise RemoteProtocolError(
                'statusline data needs the "session_id" Claude Code sends; configure the '
                "statusLine command as: ccc statusline"
            )
        info = self.registry.by_session_id(sid)
        if info is None:
            key = hook_session_key(payload, env, msg.internal_id) or f"sid-{sid}"
            info = self.registry.ensure(key, first_seen=self.wall())
            self._associate(info, sid)
        model = payload.get("model")
        if isinstance(model, dict):
            info.model = _str(model.get("display_name")) or _str(model.get("id")) or info.model
        cost = payload.get("cost")
        if isinstance(cost, dict) and _num(cost.get("total_cost_usd")) is not None:
            info.cost_usd = _num(cost["total_cost_usd"])
        ws = payload.get("workspace")
        if isinstance(ws, dict) and _str(ws.get("current_dir")):
            info.cwd = ws["current_dir"]
        if isinstance(payload.get("rate_limits"), dict):
            info.rate_limits = payload["rate_limits"]
        if _str(payload.get("transcript_path")):
            info.transcript_path = payload["transcript_path"]
        ctx = _context_figures(payload.get("context_window"))
        if ctx is not None:
            info.context = ctx
            await self.store.run("upsert_context_window", sid, ctx, int(self.wall()))
            self.events.publish("context", info, used_percentage=ctx["used_percentage"])
        self.touch(info)
        others = [s for s in self.registry.sessions.values() if s is not info]
        return {
            "short_id": sid[:8],
            "state": info.state,
            "scheduled": await self.store.run("count_scheduled", sid),
            "others_busy": sum(1 for s in others if s.state == BUSY),
            "others_waiting": sum(1 for s in others if s.state == WAITING),
            "branch": info.git_branch,
        }

    # --- queries ----------------------------------------------------------------------------

    async def _on_query(self, conn: Conn, msg: protocol.Query) -> dict[str, Any]:
        from . import queries

        return await queries.answer(self, conn, msg)

    # --- persistence of session state ------------------------------------------------------

    def touch(self, info: SessionInfo) -> None:
        """Mark a session for the next metadata flush (coalesced: one transaction per flush)."""
        self._dirty.add(info.key)
        self._dirty_event.set()

    def session_row(self, info: SessionInfo) -> dict[str, Any]:
        return {
            "session_id": info.session_id,
            "claude_config_dir": info.claude_config_dir or "",
            "transcript_path": info.transcript_path,
            "internal_id": info.internal_id,
            "cwd": info.cwd,
            "model": info.model,
            "state": info.state,
            "state_changed_at": int(info.state_changed_at) if info.state_changed_at else None,
            "state_error": info.state_error,
            "client_kind": info.kind,
            "pid": info.pid,
            "tmux_pane": info.tmux_pane,
            "git_branch": info.git_branch,
            "cost_usd": info.cost_usd,
            "last_assistant_message": info.last_assistant_message,
        }

    def cache_record(self, info: SessionInfo) -> dict[str, Any]:
        record = info.to_public()
        agg = self.transcripts.get(info.session_id or "")
        if agg:
            record["transcript"] = agg
        record["updated_at"] = self.wall()
        return record

    async def run_metadata_flusher(
        self,
        *,
        interval_s: float = FLUSH_INTERVAL_S,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Persist changed sessions: DB rows in one transaction, then their cache files.

        At most one flush per ``interval_s``: a heartbeat storm becomes one transaction per
        interval instead of one per heartbeat.
        """
        task_status.started()
        while True:
            await self._dirty_event.wait()
            try:
                await self.flush_metadata()
            except Exception:
                # One bad row must never end the daemon: log it, drop this batch, go on.
                log.exception("could not save session metadata; this batch is skipped")
            await trio.sleep(interval_s)

    async def flush_metadata(self) -> None:
        # Serialised: a caller (shutdown, a test) returns only after any flush in progress is done.
        async with self._flush_lock:
            await self._flush_metadata()

    async def _flush_metadata(self) -> None:
        self._dirty_event = trio.Event()
        keys, self._dirty = self._dirty, set()
        try:
            await self._write_metadata(keys)
        except BaseException:
            # Not written (cancelled at shutdown, or failed): keep the batch for the next try.
            self._dirty |= keys
            self._dirty_event.set()
            raise

    async def _write_metadata(self, keys: set[str]) -> None:
        infos = [self.registry.sessions[k] for k in keys if k in self.registry.sessions]
        infos = [i for i in infos if i.session_id]
        if not infos:
            return
        rows = [self.session_row(i) for i in infos]
        for info in infos:
            for alias in info.aliases:
                rows.append(
                    {
                        "session_id": alias,
                        "alias_of": info.session_id,
                        "internal_id": info.internal_id,
                        "claude_config_dir": info.claude_config_dir or "",
                    }
                )
        await self.store.run("upsert_sessions", rows, int(self.wall()))
        for info in infos:
            self.remembered_ids.update(info.all_ids)
        records = []
        for info in infos:
            record = self.cache_record(info)
            fingerprint = hash(
                repr(sorted((k, repr(v)) for k, v in record.items() if k != "updated_at"))
            )
            sid = info.session_id or ""
            if self._cache_fingerprints.get(sid) != fingerprint:
                self._cache_fingerprints[sid] = fingerprint
                records.append((sid, record))
        if records:
            await self.store.offload(self._write_caches, records)
        for info in infos:
            if _retired(info):
                # Persisted above; keeping every session ever seen in memory would grow forever.
                self.registry.forget(info.key)
                self._cache_fingerprints.pop(info.session_id or "", None)

    def _write_caches(self, records: list[tuple[str | None, dict[str, Any]]]) -> None:
        for sid, record in records:
            if sid is None:
                continue
            try:
                write_session_cache(self.config.paths, sid, record)
            except OSError as exc:
                log.warning("could not write the cache file of session %s: %s", sid, exc)

    # --- status -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        server = self.server
        conns = server.conns.values() if server else []
        out = {
            "pid": os.getpid(),
            "version": __version__,
            "uptime_s": round(trio.current_time() - self.started_at, 3),
            "started_at": self.started_wall,
            "connections": len(server.conns) if server else 0,
            "session_clients": len(server.clients) if server else 0,
            "subscribers": sum(1 for c in conns if c.subscriber),
            "sessions": len(self.registry.sessions),
            "sessions_by_state": _count_states(self.registry.sessions.values()),
            "scheduled": self.scheduled_count,
            "allow_eval": self.config.allow_eval,
            "counters": dict(self.counters),
            "paths": {
                "cache_dir": str(self.config.paths.cache_dir),
                "socket": str(self.config.paths.socket),
                "pid": str(self.config.paths.pid),
                "log": str(self.config.paths.log),
                "db": str(self.config.paths.db),
            },
        }
        if self.loop_stats is not None:
            out["loop"] = self.loop_stats.snapshot()
        return out


def _retired(info: SessionInfo) -> bool:
    """A session nothing can reach any more: its client left, or it ended and has no client."""
    if info.connected:
        return False
    return bool(info.data.get("client_left")) or info.state == ENDED


def _count_states(infos: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for info in infos:
        out[info.state] = out.get(info.state, 0) + 1
    return out


def _context_figures(ctx: Any) -> dict[str, Any] | None:
    """The statusline's context_window, as the seed's table columns (None before a reply)."""
    if not isinstance(ctx, dict):
        return None
    used = _num(ctx.get("used_percentage"))
    if used is None:
        return None
    raw_usage = ctx.get("current_usage")
    usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
    remaining = _num(ctx.get("remaining_percentage"))
    return {
        "context_window_size": _int(ctx.get("context_window_size")) or 0,
        "used_percentage": used,
        "remaining_percentage": remaining if remaining is not None else 100.0 - used,
        "total_input_tokens": _int(ctx.get("total_input_tokens")) or 0,
        "total_output_tokens": _int(ctx.get("total_output_tokens")) or 0,
        "cache_read_input_tokens": _int(usage.get("cache_read_input_tokens")),
        "cache_creation_input_tokens": _int(usage.get("cache_creation_input_tokens")),
        "current_input_tokens": _int(usage.get("input_tokens")),
        "current_output_tokens": _int(usage.get("output_tokens")),
    }


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # what SQLite can store


def _int(value: Any) -> int | None:
    """An integer that fits SQLite, or None (a 30-digit "pid" must not reach the database)."""
    if isinstance(value, bool):
        return None
    out: int | None = None
    if isinstance(value, int):
        out = value
    elif isinstance(value, str) and value.isdigit() and len(value) <= 19:
        out = int(value)
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        out = int(value)
    return out if out is not None and INT64_MIN <= out <= INT64_MAX else None


def _num(value: Any) -> float | None:
    """A finite number (no NaN, no inf, nothing SQLite cannot hold), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        out = float(value)
    except OverflowError:
        return None
    return out if math.isfinite(out) and abs(out) <= INT64_MAX else None


def _preview(text: str, limit: int = 80) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


__all__ = ["Hub", "NotIdle"]
