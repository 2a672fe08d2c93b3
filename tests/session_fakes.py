"""Test helpers for the session-client tests: a small fake daemon that speaks the wire protocol
on a real Unix socket (register/heartbeat/hook in, routed messages out), and a driver that runs
``ccc run -- standin_tui.py`` on a real pty the test holds as the user's terminal.

The real daemon lives in ccc_statusd/daemon.py; this fake lets the client side be tested on
its own, including a daemon that goes away and comes back.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import json
import os
import re
import socket as stdsocket
import struct
import sys
import termios
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
import trio.lowlevel

from ccc_statusd.protocol import LineFramer, encode_dict

from .helpers import short_tmpdir as _short_tmpdir
from .helpers import wait_until


class FakeConnection:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.internal_id: str | None = None
        self.lock = trio.Lock()
        self.waiting: dict[str, trio.MemorySendChannel[dict[str, Any]]] = {}

    async def send(self, obj: dict[str, Any]) -> None:
        async with self.lock:
            await self.stream.send_all(encode_dict(obj))


class FakeDaemon:
    """Accepts connections on ``path``; records every message; routes on request.

    ``received`` holds every message from every connection, in order. ``refuse_register``
    (a string) makes register answers carry that error. ``reply_session_id`` is put in the
    answers to register/heartbeat when set.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.received: list[dict[str, Any]] = []
        self.clients: dict[str, FakeConnection] = {}
        self.refuse_register: str | None = None
        self.reply_session_id: str | None = None
        self.changed = trio.Event()
        self._ids = itertools.count(1)
        self._scope: trio.CancelScope | None = None
        self.stopped = trio.Event()

    async def serve(
        self, *, task_status: trio.TaskStatus[FakeDaemon] = trio.TASK_STATUS_IGNORED
    ) -> None:
        sock = trio.socket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
        if self.path.exists():
            self.path.unlink()
        # Bind under a temporary name and rename into place once listening, so a client never
        # finds the path before it accepts (which would cost it a back-off round).
        tmp = self.path.with_name(self.path.name + ".tmp")
        if tmp.exists():
            tmp.unlink()
        await sock.bind(str(tmp))
        sock.listen(64)
        os.rename(tmp, self.path)
        inode = os.stat(self.path).st_ino
        listener = trio.SocketListener(sock)
        with trio.CancelScope() as self._scope:
            try:
                async with trio.open_nursery() as nursery:
                    task_status.started(self)
                    while True:
                        stream = await listener.accept()
                        nursery.start_soon(self._serve_conn, stream)
            finally:
                with trio.CancelScope(shield=True):
                    await listener.aclose()
                # Unlink only our own socket: a successor may already listen at this path.
                try:
                    if os.stat(self.path).st_ino == inode:
                        self.path.unlink()
                except FileNotFoundError:
                    pass
                self.clients.clear()
                self.stopped.set()

    async def stop(self) -> None:
        """Close the listener and every connection (like a daemon that exits)."""
        assert self._scope is not None
        self._scope.cancel()
        await self.stopped.wait()

    def _note(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def wait_for(self, pred: Any) -> dict[str, Any]:
        """Wait until a received message satisfies ``pred``; return the first that does."""
        while True:
            for msg in self.received:
                if pred(msg):
                    return msg
            await self.changed.wait()

    async def wait_client(self, internal_id: str) -> None:
        while internal_id not in self.clients:
            await self.changed.wait()

    async def _serve_conn(self, stream: trio.SocketStream) -> None:
        conn = FakeConnection(stream)
        framer = LineFramer()
        try:
            async with stream:
                while True:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        return
                    for line in framer.feed(chunk):
                        await self._on_message(conn, json.loads(line))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            if conn.internal_id and self.clients.get(conn.internal_id) is conn:
                del self.clients[conn.internal_id]
            for channel in conn.waiting.values():
                channel.close()
            self._note()

    async def _on_message(self, conn: FakeConnection, msg: dict[str, Any]) -> None:
        self.received.append(msg)
        kind = msg.get("type")
        if kind == "response":
            channel = conn.waiting.pop(msg.get("request_id"), None)
            if channel is not None:
                await channel.send(msg)
                channel.close()
            self._note()
            return
        reply: dict[str, Any] = {"type": "response"}
        if "request_id" in msg:
            reply["request_id"] = msg["request_id"]
        if kind == "register":
            if self.refuse_register:
                reply["error"] = self.refuse_register
            else:
                conn.internal_id = msg["internal_id"]
                self.clients[msg["internal_id"]] = conn
        if kind in ("register", "heartbeat") and self.reply_session_id and "error" not in reply:
            reply["session_id"] = self.reply_session_id
        self._note()
        try:
            await conn.send(reply)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def route(
        self,
        internal_id: str,
        msg: dict[str, Any],
        timeout_s: float = 10.0,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Send a routed message to a registered client and return its response."""
        conn = self.clients[internal_id]
        request_id = request_id or f"route-{next(self._ids)}"
        send, receive = trio.open_memory_channel[dict[str, Any]](1)
        conn.waiting[request_id] = send
        await conn.send({**msg, "request_id": request_id})
        with trio.fail_after(timeout_s):
            async with receive:
                return await receive.receive()


def short_tmpdir() -> str:
    """A temp dir with a short path, as a string (see tests/helpers.py)."""
    return str(_short_tmpdir())


def read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- driving `ccc run` under a real pty ---------------------------------------------------

STANDIN = Path(__file__).with_name("standin_tui.py")
REPO = Path(__file__).resolve().parent.parent
STEP_TIMEOUT_S = 10  # generous: real processes on a loaded 2-core CI box


class Terminal:
    """The user's terminal: the master side of a pty whose slave is the host's stdin/stdout."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        os.set_blocking(self.master, False)
        self.output = bytearray()
        self.changed = trio.Event()
        self.eof = False

    def set_size(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    async def pump(self) -> None:
        while True:
            await trio.lowlevel.wait_readable(self.master)
            try:
                data = os.read(self.master, 65536)
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno == errno.EIO:
                    self.eof = True
                    return
                raise
            self.output += data
            self.changed.set()
            self.changed = trio.Event()

    async def type(self, data: bytes) -> None:
        os.write(self.master, data)
        await trio.lowlevel.checkpoint()

    async def wait_output(self, pattern: bytes, start: int = 0) -> None:
        with trio.fail_after(STEP_TIMEOUT_S):
            while not re.search(pattern, bytes(self.output[start:])):
                await self.changed.wait()

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


class Session:
    """A running ``ccc run -- standin_tui.py``: its terminal, process, records, and daemon."""

    def __init__(
        self, term: Terminal, proc: trio.Process, daemon: FakeDaemon | None, record: Path, iid: str
    ) -> None:
        self.term = term
        self.proc = proc
        self.daemon = daemon
        self.record = record
        self.iid = iid

    def records(self, event: str | None = None) -> list[dict[str, Any]]:
        rows = read_records(self.record)
        return [r for r in rows if event is None or r["event"] == event]

    async def wait_record(self, pred: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((row for row in read_records(self.record) if pred(row)), None)

        row: dict[str, Any] = await wait_until(found, limit_s=STEP_TIMEOUT_S)
        return row

    async def ready(self) -> None:
        await self.wait_record(lambda r: r["event"] == "ready")
        await self.term.wait_output("❯ ".encode())

    def session_ids(self) -> list[str]:
        """The stand-in's session ids, oldest first (a new one after each /clear)."""
        ids: list[str] = []
        for row in self.records("hook"):
            if row["name"] == "SessionStart":
                ids.append(row["session_id"])
        return ids

    async def route(self, msg: dict[str, Any]) -> dict[str, Any]:
        assert self.daemon is not None
        return await self.daemon.route(self.iid, {"session_id": "whatever", **msg})

    async def wait_exit(self) -> int:
        with trio.fail_after(STEP_TIMEOUT_S):
            return await self.proc.wait()


_spawned = itertools.count(1)


async def spawn_ccc_run(
    nursery: trio.Nursery,
    cache_dir: Path,
    *,
    fake: FakeDaemon | None = None,
    exit_code: int = 0,
    typing_grace: float = 0.3,
    quiet: float = 0.2,
    delivery_guard: float = 0.3,
    heartbeat: float = 30.0,
    hook_cmd: str | None = None,
    confirm: float = 3.0,
) -> Session:
    """Start ``python -m ccc_statusd.session.pty_host -- standin_tui.py`` on a new pty."""
    term = Terminal()
    term.set_size(33, 101)
    record = cache_dir / f"record-{next(_spawned)}.jsonl"
    iid = f"iid-{os.getpid()}-{next(_spawned)}"
    cmd = [
        sys.executable,
        "-m",
        "ccc_statusd.session.pty_host",
        "--cache-dir",
        str(cache_dir),
        "--internal-id",
        iid,
        "--typing-grace",
        str(typing_grace),
        "--quiet",
        str(quiet),
        "--delivery-guard",
        str(delivery_guard),
        "--heartbeat",
        str(heartbeat),
        "--confirm",
        str(confirm),
        # The stand-in takes keys at once after a redraw (the real 2.1.112 may not: 0.5 s).
        "--screen-settle",
        "0.05",
        "--log",
        str(cache_dir / f"run-{iid}.log"),
        "--",
        sys.executable,
        str(STANDIN),
        "--record",
        str(record),
        "--exit-code",
        str(exit_code),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CCC_", "STANDIN_", "TMUX"))}
    if hook_cmd:
        env["CCC_HOOK_CMD"] = hook_cmd
    proc = await trio.lowlevel.open_process(
        cmd,
        stdin=term.slave,
        stdout=term.slave,
        stderr=term.slave,
        start_new_session=True,
        cwd=str(REPO),
        env=env,
    )
    nursery.start_soon(term.pump)
    return Session(term, proc, fake, record, iid)


async def stop_process(proc: trio.Process) -> None:
    if proc.returncode is None:
        proc.kill()
        with trio.move_on_after(5):
            await proc.wait()
