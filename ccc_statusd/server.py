"""The Unix-socket listener and the connection tasks.

Theory of operation. ``Server.serve`` binds the socket and owns a child nursery with one task
per connection. A connection task owns its stream: it reads lines through a bounded
``LineFramer``, hands each decoded message to the hub, and writes the single reply. All writes
to a connection go through that connection's bounded outbound queue, drained by its writer
task, so a peer that never reads fills its own queue and gets cut off without stalling
anyone else. ``Server.conns`` (id → Conn) is the registry the reaper scans; each connection
removes itself in ``finally``, so the registry empties when the connections are gone.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import socket
import struct
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import trio

from . import protocol
from .config import SHUTDOWN_GRACE_S, DaemonConfig
from .peers import PeerPolicy

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger(__name__)

RECV_CHUNK = 65536
_conn_ids = itertools.count(1)


def _not_serving(*args: Any) -> None:
    raise RuntimeError("the server is not serving yet")


class PendingReply:
    """A request routed to a session client, waiting for its ``response``."""

    __slots__ = ("event", "result")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.result: dict[str, Any] | None = None


class Conn:
    """One accepted connection: its stream, outbound queue, and what it registered as.

    Writes go through ``outq``, drained by a writer task that exists only while there is
    something to write (spawned on demand in the server's nursery): an idle connection costs
    one task, not three, which is what lets 10,000 idle session clients fit in little memory.
    """

    __slots__ = (
        "id",
        "stream",
        "outq",
        "queue_len",
        "writing",
        "_drained",
        "closed",
        "_spawn",
        "_fd",
        "scope",
        "internal_id",
        "pending",
        "last_seen",
        "subscriber",
        "closing_error",
        "in_request",
    )

    def __init__(
        self, stream: trio.SocketStream, queue_len: int, spawn: Callable[..., None]
    ) -> None:
        self.id = next(_conn_ids)
        self.stream = stream
        self.outq: deque[bytes] = deque()
        self.queue_len = queue_len
        self.writing = False
        self._drained: trio.Event | None = None  # made only while somebody waits for space
        self.closed = False
        self._spawn = spawn
        self._fd = stream.socket.fileno()
        self.scope = trio.CancelScope()
        self.internal_id: str | None = None
        self.pending: dict[str, PendingReply] = {}
        self.last_seen = trio.current_time()
        self.subscriber = False
        self.closing_error: str | None = None
        self.in_request = False  # handling a message (an ask can wait minutes): not idle

    def send_nowait(self, line: bytes) -> bool:
        """Queue a line; False if this peer's queue is full (it is not reading) or closed."""
        if self.closed or len(self.outq) >= self.queue_len:
            return False
        self.outq.append(line)
        self._kick()
        return True

    async def send(self, line: bytes) -> None:
        """Queue a reply to this peer's own request; waits while its queue is full."""
        while not self.closed and len(self.outq) >= self.queue_len:
            await self._wait_drained()
        if not self.closed:
            self.outq.append(line)
            self._kick()

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
                self.outq.popleft()
                return
            self.outq[0] = line[sent:]
        self.writing = True
        self._spawn(self._drain)

    async def _drain(self) -> None:
        try:
            while self.outq:
                # Coalesce what is queued into one write: far fewer syscalls under load.
                batch = [self.outq.popleft()]
                size = len(batch[0])
                while self.outq and size < RECV_CHUNK:
                    batch.append(self.outq.popleft())
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
        self.outq.clear()
        self.scope.cancel()

    def close(self, error: str | None = None) -> None:
        """Ask the connection task to finish (optionally with a final error line)."""
        self.closing_error = error
        self.scope.cancel()

    def fail_pending(self) -> None:
        for pending in self.pending.values():
            pending.event.set()
        self.pending.clear()

    @property
    def kind(self) -> str:
        if self.internal_id:
            return "session"
        return "subscriber" if self.subscriber else "client"


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process on the other end (Linux SO_PEERCRED), or None if unknown."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (OSError, AttributeError):
        return None
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


class Server:
    def __init__(self, config: DaemonConfig, hub: Hub) -> None:
        self.config = config
        self.hub = hub
        self.conns: dict[int, Conn] = {}
        self.clients: dict[str, Conn] = {}  # the seed's `clients`: internal id → connection
        self.accepting = True
        self.refused = 0
        self._uid = os.getuid()
        self.peers = PeerPolicy(self._uid, config.allow_uids)  # who may connect (peers.py)
        self._spawn: Callable[..., None] = _not_serving

    async def serve(
        self,
        listener: trio.SocketListener,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> NoReturn:
        """Accept connections forever on a bound listener; each gets its own task."""
        async with trio.open_nursery() as conn_nursery:
            self._spawn = conn_nursery.start_soon
            task_status.started()
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                        # Out of fds: back off a little instead of spinning.
                        log.error("accept failed (%s); too many open files, pausing 100 ms", exc)
                        await trio.sleep(0.1)
                        continue
                    raise
                conn_nursery.start_soon(self._run_connection, stream)

    async def _run_connection(self, stream: trio.SocketStream) -> None:
        uid = peer_uid(stream.socket)  # type: ignore[arg-type]
        if not self.peers.allowed(uid):
            assert uid is not None
            refusal = self.peers.refusal(uid)
            log.warning("refused a connection: %s", refusal)
            await self._refuse(stream, refusal)
            return
        if (why := self.peers.why(uid)) is not None:
            log.info("%s", why)
        if len(self.conns) >= self.config.max_connections:
            self.refused += 1
            await self._refuse(
                stream,
                f"too many connections ({self.config.max_connections} open); close some clients "
                "or restart the daemon with a higher --max-connections",
            )
            return
        conn = Conn(stream, self.config.outbound_queue, self._spawn)
        self.conns[conn.id] = conn
        try:
            with conn.scope:
                await self._reader(conn)
                # The peer is done sending (EOF, or an oversize line): flush what is queued
                # for it, bounded in time, then stop.
                with trio.move_on_after(SHUTDOWN_GRACE_S):
                    await conn.flush()
            if conn.closing_error and not conn.closed:
                # Only the writer task writes: the last line goes through the queue too.
                conn.outq.append(protocol.encode_dict(protocol.response(error=conn.closing_error)))
                conn._kick()
                with trio.move_on_after(SHUTDOWN_GRACE_S):
                    await conn.flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
            pass
        except Exception:
            log.exception("connection %d failed", conn.id)
        finally:
            del self.conns[conn.id]
            conn.closed = True
            conn.outq.clear()
            conn.fail_pending()
            # A subscriber is otherwise only dropped by the next event that matches its filter,
            # which may never come: every closed subscriber would stay in memory.
            self.hub.events.unsubscribe(conn)
            self.hub.on_disconnect(conn)
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)

    async def _reader(self, conn: Conn) -> None:
        framer = protocol.LineFramer(self.config.max_line_bytes)
        stream = conn.stream
        while True:
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
                conn.in_request = True
                try:
                    reply = await self._handle_line(conn, line)
                finally:
                    conn.in_request = False
                    conn.last_seen = trio.current_time()
                if reply is not None:
                    await conn.send(reply)
                if len(lines) > 1:
                    # A pipelined burst (a heartbeat storm) must not hold the loop for its whole
                    # chunk: let other connections in between messages.
                    await trio.lowlevel.checkpoint()

    async def _handle_line(self, conn: Conn, line: bytes) -> bytes | None:
        """The hub's reply to one line; a bug in the hub costs that one message, not the
        connection: the peer still gets exactly one reply, in order, and can go on."""
        try:
            return await self.hub.handle_line(conn, line)
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

    async def _final_write(self, stream: trio.SocketStream, error: str) -> None:
        """Best-effort last line (an error) before closing, bounded in time."""
        line = protocol.encode_dict(protocol.response(error=error))
        with trio.move_on_after(SHUTDOWN_GRACE_S) as scope:
            scope.shield = True
            try:
                await stream.send_all(line)
            except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError, OSError):
                pass

    async def _refuse(self, stream: trio.SocketStream, error: str) -> None:
        try:
            await self._final_write(stream, error)
        finally:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)

    # --- used by the hub and the reaper ----------------------------------------------------

    def register_client(self, internal_id: str, conn: Conn) -> Conn | None:
        """Map ``internal_id`` to ``conn``; returns a previous connection (now replaced)."""
        old = self.clients.get(internal_id)
        self.clients[internal_id] = conn
        conn.internal_id = internal_id
        if old is not None and old is not conn:
            old.internal_id = None
            old.close(
                "this session client was replaced by a newer connection with the same internal_id"
            )
            return old
        return None

    def unregister_client(self, conn: Conn) -> bool:
        iid = conn.internal_id
        if iid is not None and self.clients.get(iid) is conn:
            del self.clients[iid]
            return True
        return False
