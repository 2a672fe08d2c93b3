"""Session clients: ``register``, ``associate``, ``heartbeat``, ``response``, disconnects.

Owns the seed's ``clients`` map (session key → the connection of its session client) and the
routed requests waiting for a client's ``response``. A session client registers under an
``internal_id`` on its own connection; registering an id, or a ``session_id``, that another
live connection holds takes it over (SPEC §4 rule 6): the old connection is told why and
closed, and a ``taken_over`` event names the new client's pid. ``associate`` binds a session id
to a registered ``internal_id`` from any connection of ours (the seed's hooks send it from
their own process); ``heartbeat`` only from the client's own connection.
"""

from __future__ import annotations

import itertools
import logging
import math
from typing import Any

import trio

from .. import protocol
from ..events import EventBus
from ..liveness import is_alive
from ..pathmap import PathMap, to_host
from ..protocol import RemoteProtocolError
from ..routing import RoutingError
from ..server import Conn, Server
from ..sessions import ENDED, UNKNOWN, SessionInfo
from .directory import SessionDirectory
from .values import sqlite_int as _int
from .values import text as _str

log = logging.getLogger(__name__)

_request_ids = itertools.count(1)


class PendingReply:
    """A request routed to a session client, waiting for its ``response``."""

    __slots__ = ("event", "result")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.result: dict[str, Any] | None = None


class ClientDeclined(Exception):
    """The session client said "not now" (a draft, a picker, a panel...); ``str`` says why."""


class SessionClients:
    def __init__(
        self,
        directory: SessionDirectory,
        events: EventBus,
        server: Server | None,
        path_maps: PathMap = (),
    ) -> None:
        self.path_maps = path_maps  # a client in a container names its paths (--path-map)
        self.directory = directory
        self.events = events
        self.server = server
        self.by_key: dict[str, Conn] = {}
        self._pending: dict[int, dict[str, PendingReply]] = {}  # conn id → request id → reply

    def connection(self, key: str) -> Conn | None:
        return self.by_key.get(key)

    def pending_count(self, conn_id: int) -> int:
        """Routed requests written to this connection and not answered yet."""
        return len(self._pending.get(conn_id, ()))

    # --- messages from session clients ---------------------------------------------------------

    def register(self, conn: Conn, msg: protocol.Register) -> dict[str, Any]:
        iid = msg.internal_id
        if conn.label is not None and conn.role == "session" and conn.label != iid:
            raise RemoteProtocolError(
                f"this connection is already registered as {conn.label}; open a new "
                "connection to register another session client"
            )
        if self.server is not None and (why := self.server.may_become_long_lived(conn)):
            raise RemoteProtocolError(why)
        old = self.by_key.get(iid)
        if old is not None and old is not conn:
            self._take_over(old, iid, conn, iid, why="the same internal_id")
        if msg.session_id:
            owner = self.directory.owner_key(msg.session_id)
            owner_conn = self.by_key.get(owner) if owner and owner != iid else None
            if owner_conn is not None and owner_conn is not conn:
                self._take_over(owner_conn, owner or "", conn, iid, why=f"session {msg.session_id}")
        self.by_key[iid] = conn
        conn.role = "session"
        conn.label = iid
        data = msg.data or {}
        info = self.directory.ensure(
            iid,
            internal_id=iid,
            kind=_str(data.get("kind"), 32) or "pty",
            cwd=self._host(_str(data.get("cwd"))),
            tmux_pane=_str(data.get("tmux_pane"), 64),
            claude_config_dir=self._host(msg.claude_config_dir or _str(data.get("config_dir"))),
            transcript_path=self._host(msg.transcript_path),
        )
        # The Claude process (ccc run's child), not the wrapper: liveness watches it.
        self.directory.set_pid(info, _int(data.get("child_pid")) or _int(data.get("pid")))
        if info.state == ENDED:  # the same internal id came back (a restarted wrapper)
            info.state, info.end_reason = UNKNOWN, None
        name = _str(data.get("name"), 64)
        if name:
            try:
                self.directory.set_name(info, name)
            except RoutingError as exc:
                log.warning("session client %s: %s", iid, exc)
        self.directory.add_config_dir(info.claude_config_dir)
        caps = data.get("capabilities")
        if isinstance(caps, list):
            info.capabilities = [c for c in caps if isinstance(c, str)][:32]
        info.connected = True
        info.client_left = False
        info.last_heartbeat_trio = trio.current_time()
        if msg.session_id:
            self.directory.associate(info, msg.session_id)
        self.directory.touch(info)
        self.events.publish("connected", info, kind=info.kind)
        self.directory.wake(info.all_ids)
        return protocol.response(request_id=msg.request_id, session_id=info.session_id)

    def _take_over(self, old: Conn, old_key: str, new: Conn, new_key: str, *, why: str) -> None:
        """A newer connection claims what ``old`` held: tell it, close it, say so."""
        log.info(
            "session client %s (connection %d) taken over by connection %d (pid %s) for %s",
            old_key,
            old.id,
            new.id,
            new.peer_pid,
            why,
        )
        info = self.directory.get(old_key)
        self.events.publish("taken_over", info, by_pid=new.peer_pid, reason=why)
        self._unmap(old)
        if info is not None and old_key != new_key:  # the same key: the session goes on
            self._left(info)
        old.close(
            f"this session client was replaced by a newer connection (pid {new.peer_pid}) "
            f"claiming {why}; if that was not you, restart this session's ccc run"
        )

    def associate(self, conn: Conn, msg: protocol.Associate) -> dict[str, Any]:
        info = self.directory.get(msg.internal_id)
        if info is None or msg.internal_id not in self.by_key:
            raise RemoteProtocolError(
                f"internal_id {msg.internal_id} is not registered; its session client must "
                "send a register message first"
            )
        self.directory.associate(info, msg.session_id)
        self._paths(info, msg.transcript_path, msg.claude_config_dir)
        self.directory.touch(info)
        self.directory.wake(info.all_ids)
        return protocol.response(request_id=msg.request_id, session_id=info.session_id)

    def heartbeat(self, conn: Conn, msg: protocol.Heartbeat) -> dict[str, Any]:
        info = self.directory.get(msg.internal_id)
        if info is None or self.by_key.get(msg.internal_id) is not conn:
            raise RemoteProtocolError(
                f"internal_id {msg.internal_id} is not registered on this connection; "
                "send a register message first"
            )
        info.last_heartbeat_trio = trio.current_time()
        if msg.session_id and msg.session_id != info.session_id:
            self.directory.associate(info, msg.session_id)
        self._paths(info, msg.transcript_path, msg.claude_config_dir)
        data = msg.data or {}
        cwd = self._host(_str(data.get("cwd")))
        if cwd:
            info.cwd = cwd
        pane = _str(data.get("tmux_pane"), 64)
        if pane:
            info.tmux_pane = pane
        if data.get("input_idle") is True:
            # The client had declined a message (draft, typing) and is free again: retry now.
            self.directory.wake(info.all_ids)
        self.directory.touch(info)
        return protocol.response(request_id=msg.request_id)

    def _host(self, path: str | None) -> str | None:
        """A path a client named, at its host location (None: not to be used)."""
        if path is None or not self.path_maps:
            return path
        return to_host(path, self.path_maps)

    def _paths(self, info: SessionInfo, transcript: str | None, config_dir: str | None) -> None:
        transcript, config_dir = self._host(transcript), self._host(config_dir)
        if transcript:
            info.transcript_path = transcript
        if config_dir:
            info.claude_config_dir = config_dir
            self.directory.add_config_dir(config_dir)

    def response(self, conn: Conn, msg: protocol.Response) -> None:
        pending = self._pending.get(conn.id, {}).pop(msg.request_id or "", None)
        if pending is None:
            raise RemoteProtocolError(
                f"unexpected response (request_id {msg.request_id!r} is not awaiting an answer "
                "on this connection); only answer messages the daemon sent you"
            )
        pending.result = {"data": msg.data, "error": msg.error, "status": msg.status}
        pending.event.set()

    def disconnect(self, conn: Conn) -> None:
        for pending in self._pending.pop(conn.id, {}).values():
            pending.event.set()  # result None: "disconnected before confirming"
        if not self._unmap(conn):
            return
        info = self.directory.get(conn.label or "")
        if info is not None:
            self._left(info)

    def _left(self, info: SessionInfo) -> None:
        """The session's client is gone: unreachable now, retired once persisted; if its
        Claude process is gone too, the session ended (crashed, as no SessionEnd came)."""
        info.connected = False
        info.client_left = True
        self.events.publish("disconnected", info)
        if info.pid is not None and not is_alive(info.pid, info.pid_start):
            self.directory.end(info, "crashed")
        if info.session_id is None:
            self.directory.forget(info.key)
        else:
            self.directory.touch(info)

    def _unmap(self, conn: Conn) -> bool:
        key = conn.label
        if key is not None and self.by_key.get(key) is conn:
            del self.by_key[key]
            if conn.role == "session":
                conn.role = "client"
            return True
        return False

    # --- requests to session clients -----------------------------------------------------------

    async def request(
        self, conn: Conn, sid: str, message: dict[str, Any], timeout_s: float, queue_len: int
    ) -> dict[str, Any]:
        """Write one routed message (``message`` without ``request_id`` gets a fresh one) and
        wait for the client's ``response``; RoutingError / ClientDeclined otherwise."""
        request_id = message.setdefault("request_id", f"d{next(_request_ids)}")
        pending = PendingReply()
        waiting = self._pending.setdefault(conn.id, {})
        waiting[request_id] = pending
        try:
            if not conn.send_nowait(protocol.encode_dict(message)):
                raise RoutingError(
                    f"session {sid} is not reading its messages (its queue of {queue_len} is "
                    "full); it may be hung: restart it"
                )
            with trio.move_on_after(timeout_s if math.isfinite(timeout_s) else math.inf):
                await pending.event.wait()
        finally:
            if waiting.get(request_id) is pending:
                del waiting[request_id]
            # Only our own (now empty) table: another request may have made a new one since.
            if not waiting and self._pending.get(conn.id) is waiting:
                del self._pending[conn.id]
        result = pending.result
        if not pending.event.is_set():
            raise RoutingError(
                f"session {sid} did not answer within {timeout_s:g} s; it may be hung. The "
                "message may still arrive; check with: ccc sessions"
            )
        if result is None:
            raise RoutingError(
                f"session {sid} disconnected before confirming delivery; the message may not "
                "have arrived: check the session, then send again"
            )
        if result.get("error"):
            if result.get("status") == "not_idle":
                raise ClientDeclined(str(result["error"]))
            raise RoutingError(f"session {sid} answered with an error: {result['error']}")
        return result


__all__ = ["ClientDeclined", "PendingReply", "SessionClients", "SessionInfo"]
