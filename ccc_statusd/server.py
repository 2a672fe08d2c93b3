"""The Unix-socket listener and the connection tasks: the transport, and nothing else.

Theory of operation. ``Server.serve`` binds nothing (the socket is bound at start-up) and owns a
child nursery with one task per connection. A connection task owns its stream: it reads lines
through a bounded ``LineFramer``, hands each to the ``Handler`` (the hub), and writes the single
reply. All writes to a connection go through that connection's bounded outbound queue (bounded
in lines and in bytes, and by a budget shared by all connections), drained by a writer task, so
a peer that never reads fills its own queue and gets cut off without stalling anyone else.
``Server.conns`` (id → Conn) is the registry the reaper scans; each connection removes itself
in ``finally``, so the registry empties when the connections are gone.

The transport knows nothing of sessions: a connection has a ``role`` (``client``,
``session``, ``subscriber``) that the handler sets, and a ``label`` for logs.

Admission: only our uid (and ``--allow-uid`` ones) may connect; at most ``max_connections``
in all, ``max_per_peer`` from one process (``SO_PEERCRED`` pid), and long-lived roles
(sessions, subscribers) may not take the last ``reserved_short`` slots, kept for hooks and
one-shot requests.

Shutdown: ``drain`` stops accepting and gives requests in flight a grace deadline to get their
answer (hypercorn's pattern) before the root nursery is cancelled.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import socket
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, Protocol, TypeVar

import trio

from . import protocol
from .config import SHUTDOWN_GRACE_S, DaemonConfig
from .peers import PeerPolicy

log = logging.getLogger(__name__)

RECV_CHUNK = 65536
T = TypeVar("T")
_conn_ids = itertools.count(1)
LONG_LIVED = frozenset({"session", "subscriber"})


class Handler(Protocol):
    """What the server hands each line to (the hub)."""

    async def handle_line(self, conn: Conn, line: bytes) -> bytes | None: ...

    def on_disconnect(self, conn: Conn) -> None: ...


def _not_serving(*args: Any) -> None:
    raise RuntimeError("the server is not serving yet")


class OutputBudget:
    """Bytes queued for writing across all connections: one peer cannot take it all, and
    together they cannot grow the daemon past ``limit``."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0


class Conn:
    """One accepted connection: its stream, outbound queue, and the role the handler gave it.

    Writes go through ``outq``, drained by a writer task that exists only while there is
    something to write (spawned on demand in the server's nursery): an idle connection costs
    one task, not three, which is what lets 10,000 idle session clients fit in little memory.
    """

    __slots__ = (
        "id",
        "stream",
        "outq",
        "out_bytes",
        "queue_len",
        "max_out_bytes",
        "budget",
        "writing",
        "_drained",
        "closed",
        "_spawn",
        "_fd",
        "scope",
        "role",
        "label",
        "peer_pid",
        "last_seen",
        "closing_error",
        "in_request",
        "stash",
        "hung_up",
    )

    def __init__(
        self,
        stream: trio.SocketStream,
        queue_len: int,
        spawn: Callable[..., None],
        *,
        max_out_bytes: int = 8 * 1024 * 1024,
        budget: OutputBudget | None = None,
        peer_pid: int | None = None,
    ) -> None:
        self.id = next(_conn_ids)
        self.stream = stream
        self.outq: deque[bytes] = deque()
        self.out_bytes = 0
        self.queue_len = queue_len
        self.max_out_bytes = max_out_bytes
        self.budget = budget or OutputBudget(1 << 62)
        self.writing = False
        self._drained: trio.Event | None = None  # made only while somebody waits for space
        self.closed = False
        self._spawn = spawn
        self._fd = stream.socket.fileno()
        self.scope = trio.CancelScope()
        self.role = "client"
        self.label: str | None = None
        self.peer_pid = peer_pid
        self.last_seen = trio.current_time()
        self.closing_error: str | None = None
        self.in_request = False  # handling a message (an ask can wait minutes): not idle
        self.stash = b""  # bytes read while a long request watched for a hang-up
        self.hung_up = False

    def _has_room(self, size: int) -> bool:
        if not self.outq:
            return True  # one line always fits (it is bounded by the line limit)
        return (
            len(self.outq) < self.queue_len
            and self.out_bytes + size <= self.max_out_bytes
            and self.budget.used + size <= self.budget.limit
        )

    def send_nowait(self, line: bytes) -> bool:
        """Queue a line; False if this peer's queue is full (it is not reading) or closed."""
        if self.closed or not self._has_room(len(line)):
            return False
        self._append(line)
        return True

    async def send(self, line: bytes) -> None:
        """Queue a reply to this peer's own request; waits while its queue is full."""
        while not self.closed and not self._has_room(len(line)):
            await self._wait_drained()
        if not self.closed:
            self._append(line)

    def _append(self, line: bytes) -> None:
        self.outq.append(line)
        self.out_bytes += len(line)
        self.budget.used += len(line)
        self._kick()

    def _popleft(self) -> bytes:
        line = self.outq.popleft()
        self.out_bytes -= len(line)
        self.budget.used -= len(line)
        return line

    def _clear(self) -> None:
        self.budget.used -= self.out_bytes
        self.out_bytes = 0
        self.outq.clear()

    async def flush(self) -> None:
        """Wait until everything queued has been written (or the connection broke)."""
        while not self.closed and (self.outq or self.writing):
            await self._wait_drained()

    async def _wait_drained(self) -> None:
        if self._drained is None:
            self._drained = trio.Event()
        await self._drained.wait()

    def _signal_drained(self) -> None:
        if self._drained is not None:
            self._drained.set()
            self._drained = None

    def _kick(self) -> None:
        if self.writing:
            return
        if len(self.outq) == 1:
            # Nothing in flight: try the write right here (the socket is non-blocking). Most
            # replies fit the kernel buffer, and then no writer task is needed at all.
            line = self.outq[0]
            try:
                sent = os.write(self._fd, line)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._broken()
                return
            if sent == len(line):
                self._popleft()
                return
            self.outq[0] = line[sent:]
            self.out_bytes -= sent
            self.budget.used -= sent
        self.writing = True
        self._spawn(self._drain)

    async def _drain(self) -> None:
        try:
            while self.outq:
                # Coalesce what is queued into one write: far fewer syscalls under load.
                batch = [self._popleft()]
                size = len(batch[0])
                while self.outq and size < RECV_CHUNK:
                    batch.append(self._popleft())
                    size += len(batch[-1])
                self._signal_drained()
                await self.stream.send_all(b"".join(batch) if len(batch) > 1 else batch[0])
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError, OSError):
            self._broken()
        except Exception:
            log.exception("connection %d: writing failed", self.id)
            self._broken()
        finally:
            self.writing = False
            self._signal_drained()

    def _broken(self) -> None:
        self.closed = True
        self._clear()
        self.scope.cancel()

    def close(self, error: str | None = None) -> None:
        """Ask the connection task to finish (optionally with a final error line)."""
        self.closing_error = error
        self.scope.cancel()

    async def unless_hangup(
        self, fn: Callable[..., Awaitable[T]], *args: Any, max_stash: int
    ) -> T | None:
        """``await fn(*args)`` (a request that may wait long, like ``ask``) while watching the
        peer: if it hangs up, ``fn`` is cancelled, ``hung_up`` is set and None returned. Bytes
        the peer sends meanwhile (up to ``max_stash``) are kept for the reader, in order."""
        result: T | None = None
        error: Exception | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_hangup, nursery.cancel_scope, max_stash)
            try:
                result = await fn(*args)
            except Exception as exc:  # re-raised as itself, not inside an ExceptionGroup
                error = exc
            nursery.cancel_scope.cancel()
        if error is not None:
            raise error
        return result

    async def _watch_hangup(self, scope: trio.CancelScope, max_stash: int) -> None:
        while len(self.stash) < max_stash:
            try:
                data = await self.stream.receive_some(RECV_CHUNK)
            except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
                data = b""
            if not data:
                self.hung_up = True
                scope.cancel()
                return
            self.stash += data


def peer_credentials(sock: socket.socket) -> tuple[int | None, int | None]:
    """(pid, uid) of the process on the other end (Linux SO_PEERCRED), or Nones if unknown."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (OSError, AttributeError):
        return None, None
    pid, uid, _gid = struct.unpack("3i", creds)
    return pid, uid


def fd_headroom() -> int | None:
    """How many more files this process may open (soft RLIMIT_NOFILE minus open fds)."""
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return None
        return soft - len(os.listdir("/proc/self/fd"))
    except (OSError, ValueError, ImportError):
        return None


class Server:
    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.conns: dict[int, Conn] = {}
        self.refused = 0
        self.max_connections = config.max_connections
        self._per_peer: dict[int, int] = {}
        self._uid = os.getuid()
        self._budget = OutputBudget(config.max_output_bytes)
        self.peers = PeerPolicy(self._uid, config.allow_uids)  # who may connect (peers.py)
        self._spawn: Callable[..., None] = _not_serving
        self._listener: trio.SocketListener | None = None
        self._in_flight = 0  # requests being handled, across connections
        self._all_answered: trio.Event | None = None  # set when that reaches 0 (draining)

    # --- admission --------------------------------------------------------------------------

    def fit_to_fd_limit(self) -> None:
        """A cap above what the fd limit allows makes new clients hang instead of being
        refused: lower it to fit (keeping room for the database, logs and watchers)."""
        headroom = fd_headroom()
        if headroom is None:
            return
        fits = max(16, headroom - 64)
        if fits < self.max_connections:
            log.warning(
                "--max-connections %d is above what the open-files limit allows; using %d "
                "(raise it with: ulimit -n)",
                self.max_connections,
                fits,
            )
            self.max_connections = fits

    def long_lived_count(self) -> int:
        return sum(1 for c in self.conns.values() if c.role in LONG_LIVED)

    def may_become_long_lived(self, conn: Conn) -> str | None:
        """None if ``conn`` may turn into a session client or subscriber, else why not."""
        if conn.role in LONG_LIVED:
            return None
        limit = self.max_connections - self.config.reserved_short
        if self.long_lived_count() >= limit:
            return (
                f"too many long-lived connections ({limit}); the last "
                f"{self.config.reserved_short} slots are kept for hooks and one-shot requests; "
                "close some clients or restart the daemon with a higher --max-connections"
            )
        return None

    def _admission_error(self, pid: int | None, uid: int | None) -> str | None:
        if not self.peers.allowed(uid):
            assert uid is not None
            refusal = self.peers.refusal(uid)
            log.warning("refused a connection: %s", refusal)
            return refusal
        if len(self.conns) >= self.max_connections:
            return (
                f"too many connections ({self.max_connections} open); close some clients "
                "or restart the daemon with a higher --max-connections"
            )
        if pid is not None and self._per_peer.get(pid, 0) >= self.config.max_per_peer:
            return (
                f"too many connections from process {pid} ({self.config.max_per_peer}); close "
                "some, or restart the daemon with a higher --max-per-peer"
            )
        return None

    # --- serving ----------------------------------------------------------------------------

    async def serve(
        self,
        listener: trio.SocketListener,
        handler: Handler,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> NoReturn:
        """Accept connections forever on a bound listener; each gets its own task."""
        self._listener = listener
        async with trio.open_nursery() as conn_nursery:
            self._spawn = conn_nursery.start_soon
            task_status.started()
            while True:
                try:
                    stream = await listener.accept()
                except trio.ClosedResourceError:
                    await trio.sleep_forever()  # draining: the listener was closed on purpose
                except OSError as exc:
                    if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                        # Out of fds: back off a little instead of spinning.
                        log.error("accept failed (%s); too many open files, pausing 100 ms", exc)
                        await trio.sleep(0.1)
                        continue
                    raise
                conn_nursery.start_soon(self._run_connection, stream, handler)

    async def drain(self, grace_s: float) -> None:
        """Stop accepting, then wait (at most ``grace_s``) for requests in flight to be
        answered; the ones still running are then told the daemon is stopping."""
        if self._listener is not None:
            await self._listener.aclose()
        if self._in_flight:
            self._all_answered = trio.Event()
            with trio.move_on_after(grace_s):
                await self._all_answered.wait()
        for conn in list(self.conns.values()):
            if conn.in_request:
                conn.close(
                    "the daemon is shutting down; this request was not finished: check its "
                    "result once the daemon is back (ccc status), then send again if needed"
                )

    async def _run_connection(self, stream: trio.SocketStream, handler: Handler) -> None:
        pid, uid = peer_credentials(stream.socket)  # type: ignore[arg-type]
        error = self._admission_error(pid, uid)
        if error is not None:
            self.refused += 1
            await self._refuse(stream, error)
            return
        if (why := self.peers.why(uid)) is not None:
            log.info("%s (pid %s)", why, pid)
        conn = Conn(
            stream,
            self.config.outbound_queue,
            self._spawn,
            max_out_bytes=self.config.max_conn_output_bytes,
            budget=self._budget,
            peer_pid=pid,
        )
        self.conns[conn.id] = conn
        if pid is not None:
            self._per_peer[pid] = self._per_peer.get(pid, 0) + 1
        try:
            with conn.scope:
                await self._reader(conn, handler)
                # The peer is done sending (EOF, or an oversize line): flush what is queued
                # for it, bounded in time, then stop.
                with trio.move_on_after(SHUTDOWN_GRACE_S):
                    await conn.flush()
            if conn.closing_error and not conn.closed:
                # Only the writer task writes: the last line goes through the queue too.
                conn._append(protocol.encode_dict(protocol.response(error=conn.closing_error)))
                with trio.move_on_after(SHUTDOWN_GRACE_S):
                    await conn.flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
            pass
        except Exception:
            log.exception("connection %d failed", conn.id)
        finally:
            del self.conns[conn.id]
            if pid is not None:
                left = self._per_peer.get(pid, 1) - 1
                if left > 0:
                    self._per_peer[pid] = left
                else:
                    self._per_peer.pop(pid, None)
            conn.closed = True
            conn._clear()
            handler.on_disconnect(conn)
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)

    async def _reader(self, conn: Conn, handler: Handler) -> None:
        framer = protocol.LineFramer(self.config.max_line_bytes)
        stream = conn.stream
        while not conn.hung_up:
            if conn.stash:
                data, conn.stash = conn.stash, b""
            else:
                try:
                    data = await stream.receive_some(RECV_CHUNK)
                except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
                    return
                if not data:
                    return
            conn.last_seen = trio.current_time()
            try:
                lines = framer.feed(data)
            except protocol.LineTooLong as exc:
                # The rest of this line is unbounded garbage we cannot resync on: answer, close.
                await conn.send(protocol.encode_dict(protocol.response(error=str(exc))))
                return
            for line in lines:
                if conn.hung_up:
                    return  # nobody is there to answer
                conn.in_request = True
                self._in_flight += 1
                try:
                    reply = await self._handle_line(conn, line, handler)
                finally:
                    conn.in_request = False
                    conn.last_seen = trio.current_time()
                    self._in_flight -= 1
                    if not self._in_flight and self._all_answered is not None:
                        self._all_answered.set()
                if reply is not None:
                    await conn.send(reply)
                if len(lines) > 1:
                    # A pipelined burst (a heartbeat storm) must not hold the loop for its whole
                    # chunk: let other connections in between messages.
                    await trio.lowlevel.checkpoint()

    async def _handle_line(self, conn: Conn, line: bytes, handler: Handler) -> bytes | None:
        """The handler's reply to one line; a bug there costs that one message, not the
        connection: the peer still gets exactly one reply, in order, and can go on."""
        try:
            return await handler.handle_line(conn, line)
        except Exception:  # Cancelled is a BaseException: cancellation still propagates
            log.exception(
                "connection %d: internal error handling a %d-byte message", conn.id, len(line)
            )
            try:
                rid = protocol.request_id_of(protocol.decode_object(line))
            except (protocol.RemoteProtocolError, RecursionError):
                rid = None
            return protocol.encode_dict(
                protocol.response(
                    request_id=rid,
                    error="the daemon failed to handle this message (an internal error, details in "
                    "daemon.log); this connection still works: report the bug, then send again",
                )
            )

    async def _refuse(self, stream: trio.SocketStream, error: str) -> None:
        """Best-effort last line (an error) before closing, bounded in time."""
        line = protocol.encode_dict(protocol.response(error=error))
        try:
            with trio.move_on_after(SHUTDOWN_GRACE_S) as scope:
                scope.shield = True
                try:
                    await stream.send_all(line)
                except (
                    trio.BrokenResourceError,
                    trio.ClosedResourceError,
                    ConnectionError,
                    OSError,
                ):
                    pass
        finally:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)

    # --- read by the status query and the reaper ---------------------------------------------

    def stats(self) -> dict[str, int]:
        by_role: dict[str, int] = {}
        for conn in self.conns.values():
            by_role[conn.role] = by_role.get(conn.role, 0) + 1
        return {
            "connections": len(self.conns),
            "session_clients": by_role.get("session", 0),
            "subscribers": by_role.get("subscriber", 0),
            "refused": self.refused,
            "max_connections": self.max_connections,
            "output_bytes_queued": self._budget.used,
        }
