"""The session client's connection to the daemon: register, heartbeat, answer routed messages,
reconnect. Owns one Unix-socket connection at a time and nothing else.

Theory of operation: :class:`SessionLink.run` loops forever: connect, send ``register``
(with the same ``internal_id`` every time, and the last known ``session_id``), wait for its
response, then heartbeat every ``heartbeat_interval_s`` while a reader task takes lines off the
socket. Lines of type ``prompt``/``command``/``eval`` are routed messages: each is handed to
the caller's ``handler`` in a task of the *link's* nursery (not the connection's), so a
delivery that has started typing is never cut in half by a dropped connection; its response
goes back on the connection it came from if that is still open. ``response`` lines answer our
own register/heartbeat and are only logged when they carry an error. When the connection ends
(EOF, error, daemon restart) the loop sleeps a jittered, exponentially growing delay (capped
at ``backoff_max_s``, reset after each successful registration) and starts over.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, NoReturn

import trio

from ..framing import ROUTED_TYPES, LineFramer, RemoteProtocolError, decode_object, encode_dict
from ..wire import SCHEDULED_PREFIX

log = logging.getLogger(__name__)

# Request ids with this prefix name one scheduled message across the daemon's retries.
STABLE_ID_PREFIX = SCHEDULED_PREFIX  # wire.py: a scheduled row's delivery id, same across retries
DELIVERED_MEMORY = 64

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

HEARTBEAT_INTERVAL_S = 30.0  # the seed's interval; the daemon's reaper allows 90 s of silence
BACKOFF_INITIAL_S = 0.05  # first retry is quick: a daemon restart takes well under a second
BACKOFF_MAX_S = 5.0  # a returning daemon is found within this long
CONNECT_TIMEOUT_S = 2.0  # a local connect that takes longer means the daemon is wedged
REGISTER_TIMEOUT_S = 10.0  # the daemon's own routing timeout; no answer by then = try again
RECEIVE_CHUNK_BYTES = 65536

# Fields of a register/heartbeat that live at the top level of the message, not in ``data``.
_TOP_LEVEL_KEYS = ("session_id", "claude_config_dir", "transcript_path")


class _ConnectionLost(Exception):
    """The daemon closed the connection or it failed; the link reconnects."""


_LOSS_TYPES = (_ConnectionLost, OSError, trio.TooSlowError)


@asynccontextmanager
async def _lost_on_failure() -> AsyncIterator[None]:
    """Turn a nursery's group of connection failures into one :class:`_ConnectionLost`."""
    try:
        yield
    except BaseExceptionGroup as group:
        match, rest = group.split(_LOSS_TYPES)
        if match is None or rest is not None:
            raise
        first: BaseException = match
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise _ConnectionLost(str(first) or type(first).__name__) from None


class _Connection:
    """One open connection: its stream, a write lock, and our requests still awaiting replies."""

    def __init__(self, stream: trio.SocketStream, number: int) -> None:
        self.stream = stream
        self.number = number
        self.write_lock = trio.Lock()
        self.pending: dict[str, str] = {}  # request_id → what we sent ("register", "heartbeat")
        self.register_reply: dict[str, Any] | None = None
        self.register_answered = trio.Event()
        self.closed = False

    async def send(self, obj: dict[str, Any]) -> None:
        if self.closed:
            raise _ConnectionLost("connection already closed")
        try:
            async with self.write_lock:
                await self.stream.send_all(encode_dict(obj))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self.closed = True
            raise _ConnectionLost(f"write failed: {exc}") from None


class SessionLink:
    """A session client's link to the daemon; see the module docstring.

    ``session_id`` is the last known Claude Code session id, sent on register so that a
    restarted daemon learns the mapping back; a register/heartbeat response that carries one
    updates it, and so does a ``session_id`` from ``metadata()`` (which heartbeats also carry;
    a heartbeat never sends an id only the daemon told us, as it may be stale after /clear).
    ``registrations`` counts successful registrations (1 after the first connect, 2 after
    the first reconnect, ...); ``connected`` says whether a registered connection is up.
    """

    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        internal_id: str,
        handler: Handler,
        *,
        metadata: Callable[[], dict[str, Any]] | None = None,
        session_id: str | None = None,
        heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S,
        backoff_initial_s: float = BACKOFF_INITIAL_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        register_timeout_s: float = REGISTER_TIMEOUT_S,
    ) -> None:
        self.socket_path = os.fspath(socket_path)
        self.internal_id = internal_id
        self.handler = handler
        self.metadata = metadata or dict
        self.session_id = session_id
        self.heartbeat_interval_s = heartbeat_interval_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.register_timeout_s = register_timeout_s
        self.registrations = 0
        self.connected = False
        self.handled = 0  # routed messages answered (or attempted)
        self._delivered: dict[str, dict[str, Any]] = {}  # stable request id → our answer
        self._registered = trio.Event()
        self._beat_now = trio.Event()
        self._ids = itertools.count(1)

    # --- public helpers -------------------------------------------------------------------

    async def wait_registered(self, count: int = 1) -> None:
        """Wait until the link has registered at least ``count`` times in all."""
        while self.registrations < count:
            await self._registered.wait()

    # --- the loop -------------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[SessionLink] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        """Connect, register, heartbeat and serve forever; ``task_status.started(self)`` fires
        after the first successful registration."""
        delay = self.backoff_initial_s
        started = False
        number = 0
        async with trio.open_nursery() as handlers:
            while True:
                number += 1
                registered_before = self.registrations
                try:
                    await self._serve_one(number, handlers, task_status if not started else None)
                except _ConnectionLost as exc:
                    log.info(
                        "session link %s: connection %d ended: %s", self.internal_id, number, exc
                    )
                except (OSError, trio.TooSlowError) as exc:
                    log.debug(
                        "session link %s: cannot reach the daemon at %s: %s",
                        self.internal_id,
                        self.socket_path,
                        exc,
                    )
                finally:
                    self.connected = False
                if self.registrations > registered_before:
                    started = True
                    delay = self.backoff_initial_s
                # Jitter keeps a crowd of sessions from reconnecting in lockstep after a restart.
                await trio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(self.backoff_max_s, delay * 2)

    async def _serve_one(
        self,
        number: int,
        handlers: trio.Nursery,
        task_status: trio.TaskStatus[SessionLink] | None,
    ) -> None:
        with trio.fail_after(CONNECT_TIMEOUT_S):
            stream = await trio.open_unix_socket(self.socket_path)
        conn = _Connection(stream, number)
        try:
            async with _lost_on_failure(), trio.open_nursery() as nursery:
                nursery.start_soon(self._read_loop, conn, handlers)
                await self._register(conn)
                self.registrations += 1
                self.connected = True
                self._registered.set()
                self._registered = trio.Event()
                log.info(
                    "session link %s: registered (connection %d, session %s)",
                    self.internal_id,
                    number,
                    self.session_id,
                )
                if task_status is not None:
                    task_status.started(self)
                await self._heartbeat_loop(conn)
        finally:
            conn.closed = True
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _register(self, conn: _Connection) -> None:
        msg = self._describe("register")
        await self._send_request(conn, "register", msg)
        with trio.fail_after(self.register_timeout_s):
            await conn.register_answered.wait()
        reply = conn.register_reply or {}
        if reply.get("error"):
            raise _ConnectionLost(f"the daemon refused the registration: {reply['error']}")

    def heartbeat_now(self) -> None:
        """Send the next heartbeat at once (e.g. the owner became ready for a declined message,
        so the daemon gets fresh metadata and a moment to retry its outbox)."""
        self._beat_now.set()

    async def _heartbeat_loop(self, conn: _Connection) -> NoReturn:
        while True:
            with trio.move_on_after(self.heartbeat_interval_s):
                await self._beat_now.wait()
            self._beat_now = trio.Event()
            await self._send_request(conn, "heartbeat", self._describe("heartbeat"))

    def _describe(self, kind: str) -> dict[str, Any]:
        """A register/heartbeat message from the owner's metadata."""
        try:
            data = dict(self.metadata())
        except Exception:  # the owner's callback must not take the link down
            log.exception("session link %s: metadata callback failed", self.internal_id)
            data = {}
        msg: dict[str, Any] = {"type": kind, "internal_id": self.internal_id}
        for key in _TOP_LEVEL_KEYS:
            value = data.pop(key, None)
            if value is not None:
                msg[key] = value
        if "session_id" in msg:
            self.session_id = msg["session_id"]
        elif self.session_id and kind == "register":
            # Only on register (so a restarted daemon learns the mapping back). A heartbeat
            # never echoes an id the owner did not give: after /clear the daemon learns the
            # new id from the hooks, and an old id sent back would undo that.
            msg["session_id"] = self.session_id
        if data:
            msg["data"] = data
        return msg

    async def _send_request(self, conn: _Connection, kind: str, msg: dict[str, Any]) -> None:
        request_id = f"{kind}-{next(self._ids)}"
        msg["request_id"] = request_id
        conn.pending[request_id] = kind
        await conn.send(msg)

    # --- reading --------------------------------------------------------------------------

    async def _read_loop(self, conn: _Connection, handlers: trio.Nursery) -> NoReturn:
        framer = LineFramer()
        while True:
            try:
                chunk = await conn.stream.receive_some(RECEIVE_CHUNK_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise _ConnectionLost(f"read failed: {exc}") from None
            if not chunk:
                raise _ConnectionLost("the daemon closed the connection")
            try:
                lines = framer.feed(chunk)
            except RemoteProtocolError as exc:
                raise _ConnectionLost(str(exc)) from None
            for line in lines:
                try:
                    obj = decode_object(line)
                except RemoteProtocolError as exc:
                    log.warning(
                        "session link %s: ignoring a bad line from the daemon: %s",
                        self.internal_id,
                        exc,
                    )
                    continue
                self._dispatch(conn, obj, handlers)

    def _dispatch(self, conn: _Connection, obj: dict[str, Any], handlers: trio.Nursery) -> None:
        kind = obj.get("type")
        request_id = obj.get("request_id")
        if kind == "response":
            sent = conn.pending.pop(request_id, None) if isinstance(request_id, str) else None
            if sent is None:
                log.debug(
                    "session link %s: response to no request of ours: %r", self.internal_id, obj
                )
                return
            sid = obj.get("session_id")
            if isinstance(sid, str) and sid and not obj.get("error"):
                self.session_id = sid
            if sent == "register":
                conn.register_reply = obj
                conn.register_answered.set()
            elif obj.get("error"):
                log.warning(
                    "session link %s: the daemon answered our %s with an error: %s",
                    self.internal_id,
                    sent,
                    obj["error"],
                )
            return
        if kind in ROUTED_TYPES:
            handlers.start_soon(self._handle, conn, obj)
            return
        log.warning(
            "session link %s: unexpected %r message from the daemon", self.internal_id, kind
        )
        if isinstance(request_id, str):
            reply = {
                "type": "response",
                "request_id": request_id,
                "error": f"a session client cannot handle {str(kind)[:40]!r} messages; "
                "it only takes prompt, command and eval",
            }
            handlers.start_soon(self._reply, conn, reply)

    async def _handle(self, conn: _Connection, msg: dict[str, Any]) -> None:
        rid = msg.get("request_id")
        # The daemon retries a scheduled message under the same id when it did not get our
        # answer (timeout, restart): if we already typed it, say so instead of typing it again.
        stable = isinstance(rid, str) and rid.startswith(STABLE_ID_PREFIX)
        if stable and rid in self._delivered:
            await self._reply(conn, {"type": "response", "request_id": rid, **self._delivered[rid]})
            return
        try:
            result = await self.handler(msg)
            if not isinstance(result, dict):
                raise TypeError(f"handler returned {type(result).__name__}, not a dict")
        except Exception as exc:
            log.exception(
                "session link %s: handler failed on %s", self.internal_id, msg.get("type")
            )
            result = {
                "error": f"the session client failed while delivering the {msg.get('type')}: "
                f"{exc}; check the session client's log"
            }
        self.handled += 1
        if stable and isinstance(rid, str) and not result.get("error"):
            self._delivered[rid] = dict(result)
            while len(self._delivered) > DELIVERED_MEMORY:
                self._delivered.pop(next(iter(self._delivered)))
        reply = dict(result)
        reply["type"] = "response"
        if isinstance(msg.get("request_id"), str):
            reply["request_id"] = msg["request_id"]
        else:
            reply.pop("request_id", None)
        await self._reply(conn, reply)

    async def _reply(self, conn: _Connection, reply: dict[str, Any]) -> None:
        try:
            await conn.send(reply)
        except _ConnectionLost as exc:
            # The daemon went away mid-request; it has already told the sender so.
            log.info(
                "session link %s: could not answer %s: %s",
                self.internal_id,
                reply.get("request_id"),
                exc,
            )


async def run_session_link(
    socket_path: str | os.PathLike[str],
    internal_id: str,
    handler: Handler,
    *,
    metadata: Callable[[], dict[str, Any]] | None = None,
    session_id: str | None = None,
    heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S,
    backoff_max_s: float = BACKOFF_MAX_S,
    task_status: trio.TaskStatus[SessionLink] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Run a session client's daemon link forever (see :class:`SessionLink`).

    ``handler(msg) -> result`` is awaited for each routed prompt/command/eval; the result dict
    is sent back as ``{"type":"response","request_id":<echo>, **result}``. ``metadata()`` is
    called for each register and heartbeat: keys ``session_id``, ``claude_config_dir`` and
    ``transcript_path`` go at the message's top level, everything else into ``data``.
    ``task_status.started(link)`` fires after the first successful registration, so
    ``link = await nursery.start(run_session_link, ...)`` waits for the daemon; use
    ``start_soon`` to run without waiting.
    """
    link = SessionLink(
        socket_path,
        internal_id,
        handler,
        metadata=metadata,
        session_id=session_id,
        heartbeat_interval_s=heartbeat_interval_s,
        backoff_max_s=backoff_max_s,
    )
    await link.run(task_status=task_status)
