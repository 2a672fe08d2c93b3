"""The load generator (Trio) and the ``/proc`` sampler the benchmark measures with.

It speaks the wire protocol by hand (plain ``json``, no pydantic) so the generator costs the
same whether it drives the daemon or the baseline relay. Every loop here is bounded twice: by a
count and by a deadline, and every single request by ``REQUEST_DEADLINE_S``; nothing waits
forever, so a hung target shows up as timeouts in the table instead of a hung benchmark.

Pieces:

* :class:`LineConn`: one connection, ``send`` / ``recv`` / ``request`` of JSON lines;
* :func:`session_client`: a fake session client (register, heartbeat, answer routed messages
  echoing ``request_id``, or never answer);
* :func:`run_senders`: M concurrent senders (persistent connections, or a new connection per
  request) → :class:`Stats` (p50/p90/p99/max latency, throughput, errors, timeouts);
* :func:`open_idle`, :func:`run_churn`, :func:`run_heartbeat_storm`, :func:`run_never_answer`;
* :func:`proc_sample`: CPU seconds, RSS and open fds of a pid from ``/proc``.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

REQUEST_DEADLINE_S = 15.0  # one request may take this long before it counts as a timeout
HEARTBEAT_INTERVAL_S = 1.0  # fake session clients heartbeat this often (real ones: 30 s)
RECV_CHUNK = 65536
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE_KIB = os.sysconf("SC_PAGESIZE") // 1024


# --- /proc ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcSample:
    cpu_s: float  # user + system CPU seconds so far
    rss_kib: int
    fds: int


def proc_sample(pid: int) -> ProcSample:
    """CPU time (``/proc/<pid>/stat``), RSS (``statm``) and open fds (``/proc/<pid>/fd``)."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    rest = stat[stat.rindex(")") + 2 :].split()
    cpu_s = (int(rest[11]) + int(rest[12])) / _CLK_TCK
    with open(f"/proc/{pid}/statm") as f:
        rss_kib = int(f.read().split()[1]) * _PAGE_KIB
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return ProcSample(cpu_s, rss_kib, fds)


# --- connections ---------------------------------------------------------------------------


class LineConn:
    """A newline-delimited JSON connection to the daemon (or a baseline)."""

    __slots__ = ("stream", "_buf", "_lines")

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self._buf = b""
        self._lines: list[bytes] = []

    @classmethod
    async def open(cls, path: str) -> LineConn:
        return cls(await trio.open_unix_socket(path))

    async def send(self, obj: dict[str, Any]) -> None:
        await self.stream.send_all(json.dumps(obj, separators=(",", ":")).encode() + b"\n")

    async def recv_raw(self) -> list[bytes]:
        """Every complete line available (at least one); EOFError when the peer closed."""
        while not self._lines:
            data = await self.stream.receive_some(RECV_CHUNK)
            if not data:
                raise EOFError("the peer closed the connection")
            *lines, self._buf = (self._buf + data).split(b"\n")
            self._lines.extend(line for line in lines if line)
        out, self._lines = self._lines, []
        return out

    async def recv(self) -> dict[str, Any]:
        while not self._lines:
            self._lines = await self.recv_raw()
        return json.loads(self._lines.pop(0))

    async def request(self, obj: dict[str, Any]) -> dict[str, Any]:
        await self.send(obj)
        return await self.recv()

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(self.stream)


# --- statistics ----------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (nan when empty)."""
    if not sorted_values:
        return float("nan")
    rank = math.ceil(q * len(sorted_values) / 100)  # q * n first: 0.99 * 100 is not 99
    return sorted_values[min(len(sorted_values), max(1, rank)) - 1]


@dataclass
class Stats:
    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    timeouts: int = 0
    elapsed_s: float = 0.0
    error_samples: list[str] = field(default_factory=list)

    def ok(self, latency_s: float) -> None:
        self.latencies_s.append(latency_s)

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what[:200])

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_s)
        ms = 1000.0
        return {
            "count": len(lat),
            "errors": self.errors,
            "timeouts": self.timeouts,
            "elapsed_s": round(self.elapsed_s, 3),
            "throughput_per_s": round(len(lat) / self.elapsed_s, 1) if self.elapsed_s else 0.0,
            "p50_ms": percentile(lat, 50) * ms,
            "p90_ms": percentile(lat, 90) * ms,
            "p99_ms": percentile(lat, 99) * ms,
            "max_ms": (lat[-1] * ms) if lat else float("nan"),
            "error_samples": self.error_samples,
        }


# --- fake session clients ------------------------------------------------------------------

ROUTED = frozenset(("prompt", "command", "eval"))


async def register(conn: LineConn, internal_id: str, session_id: str | None) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": "register", "internal_id": internal_id, "request_id": "reg"}
    if session_id is not None:
        msg["session_id"] = session_id
    return await conn.request(msg)


async def session_client(
    path: str,
    internal_id: str,
    session_id: str,
    *,
    answer: bool = True,
    heartbeat_s: float | None = HEARTBEAT_INTERVAL_S,
    task_status: trio.TaskStatus[LineConn] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Register, then heartbeat and answer every routed message (or read and never answer)
    until cancelled."""
    conn = await LineConn.open(path)
    try:
        reply = await register(conn, internal_id, session_id)
        if reply.get("error"):
            raise RuntimeError(f"register {internal_id} failed: {reply['error']}")
        task_status.started(conn)
        lock = trio.Lock()  # the heartbeat task and the answers share the stream
        async with trio.open_nursery() as nursery:
            if heartbeat_s:
                nursery.start_soon(_heartbeat, conn, internal_id, heartbeat_s, lock)
            while True:
                try:
                    lines = await conn.recv_raw()
                except (EOFError, trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                if not answer:
                    continue
                out = []
                for line in lines:
                    msg = json.loads(line)
                    if msg.get("type") in ROUTED:
                        out.append(
                            b'{"type":"response","request_id":%s,"data":{"ok":true}}\n'
                            % json.dumps(msg["request_id"]).encode()
                        )
                if out:
                    async with lock:
                        await conn.stream.send_all(b"".join(out))
    finally:
        await conn.aclose()


async def _heartbeat(conn: LineConn, internal_id: str, interval_s: float, lock: trio.Lock) -> None:
    line = json.dumps({"type": "heartbeat", "internal_id": internal_id}).encode() + b"\n"
    while True:
        await trio.sleep(interval_s)
        async with lock:
            await conn.stream.send_all(line)  # the reply is read (and ignored) by the main loop


async def start_sessions(
    nursery: trio.Nursery, path: str, ids: list[str], *, answer: bool = True, prefix: str = "iid"
) -> None:
    """Start one fake session client per session id (internal id ``<prefix>-<session id>``)."""
    for sid in ids:
        await nursery.start(partial_session(path, f"{prefix}-{sid}", sid, answer))


def partial_session(path: str, iid: str, sid: str, answer: bool) -> Callable[..., Any]:
    async def run(task_status: trio.TaskStatus[LineConn] = trio.TASK_STATUS_IGNORED) -> None:
        await session_client(path, iid, sid, answer=answer, task_status=task_status)

    return run


# --- senders -------------------------------------------------------------------------------


def _is_delivered(reply: dict[str, Any]) -> str | None:
    """None when the routed message was delivered, else what went wrong."""
    if reply.get("error"):
        return str(reply["error"])
    if reply.get("status") not in ("typed", "submitted", "delivered"):
        return f"status {reply.get('status')!r}, expected 'typed' or 'submitted'"
    return None


async def run_senders(
    path: str,
    targets: list[str],
    *,
    senders: int,
    duration_s: float,
    max_requests: int,
    new_connection: bool = False,
    pause_s: float = 0.0,
    ping: bool = False,
) -> Stats:
    """M senders sending prompts round-robin over ``targets``, each waiting for its reply,
    until ``duration_s`` passes or ``max_requests`` replies arrived in total. With ``ping``
    they send ``query ping`` instead (one hop, no routing)."""
    stats = Stats()
    counter = itertools.count()
    start = trio.current_time()
    deadline = start + duration_s

    async def sender(i: int) -> None:
        conn = None if new_connection else await LineConn.open(path)
        try:
            k = 0
            while trio.current_time() < deadline:
                n = next(counter)
                if n >= max_requests:
                    return
                sid = targets[(i + k) % len(targets)]
                k += 1
                msg: dict[str, Any] = (
                    {"type": "query", "query": "ping", "request_id": f"s{i}-{k}"}
                    if ping
                    else {
                        "type": "prompt",
                        "session_id": sid,
                        "text": "bench",
                        "request_id": f"s{i}-{k}",
                    }
                )
                t0 = trio.current_time()
                with trio.move_on_after(REQUEST_DEADLINE_S) as scope:
                    try:
                        if new_connection:
                            c = await LineConn.open(path)
                            try:
                                reply = await c.request(msg)
                            finally:
                                await c.aclose()
                        else:
                            assert conn is not None
                            reply = await conn.request(msg)
                    except (OSError, EOFError, trio.BrokenResourceError) as exc:
                        stats.error(f"{type(exc).__name__}: {exc}")
                        if not new_connection:
                            return
                        continue
                if scope.cancelled_caught:
                    stats.timeouts += 1
                    return  # this connection's reply order is now unknown
                problem = (
                    (None if reply.get("data") == "pong" else f"ping answered {reply}")
                    if ping
                    else _is_delivered(reply)
                )
                if problem is None and reply.get("request_id") != msg["request_id"]:
                    problem = (
                        f"reply for {reply.get('request_id')!r}, expected {msg['request_id']!r}"
                    )
                if problem:
                    stats.error(problem)
                else:
                    stats.ok(trio.current_time() - t0)
                if pause_s:
                    await trio.sleep(pause_s)
        finally:
            if conn is not None:
                await conn.aclose()

    async with trio.open_nursery() as nursery:
        for i in range(senders):
            nursery.start_soon(sender, i)
    stats.elapsed_s = trio.current_time() - start
    return stats


# --- idle connections ----------------------------------------------------------------------


async def open_idle(
    path: str, count: int, *, prefix: str, concurrency: int = 64, time_limit_s: float = 120.0
) -> tuple[list[LineConn], int]:
    """Open ``count`` session connections that register and then stay silent.

    Returns the open connections and how many registered without error. The connections are
    held without tasks, so the generator's own cost per idle connection is one socket.
    """
    conns: list[LineConn] = []
    registered = 0
    todo = iter(range(count))

    async def worker() -> None:
        nonlocal registered
        for i in todo:
            try:
                c = await LineConn.open(path)
            except OSError:
                return
            conns.append(c)
            reply = await register(c, f"{prefix}-iid-{i}", f"{prefix}-{i:05d}")
            if not reply.get("error"):
                registered += 1

    with trio.move_on_after(time_limit_s):
        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(worker)
    return conns, registered


async def close_all(conns: list[LineConn]) -> None:
    for c in conns:
        await c.aclose()


# --- churn ---------------------------------------------------------------------------------


async def run_churn(
    path: str, *, workers: int, duration_s: float, target: str, max_cycles: int
) -> Stats:
    """Workers that connect, work briefly and disconnect, over and over: a session client that
    reconnects (register + heartbeat), a sender with one prompt, a plain ping."""
    stats = Stats()
    start = trio.current_time()
    deadline = start + duration_s
    cycles = itertools.count()

    async def worker(w: int) -> None:
        k = 0
        while trio.current_time() < deadline and next(cycles) < max_cycles:
            k += 1
            t0 = trio.current_time()
            with trio.move_on_after(REQUEST_DEADLINE_S) as scope:
                try:
                    c = await LineConn.open(path)
                    try:
                        kind = k % 3
                        if kind == 0:
                            iid = f"churn-iid-{w}"
                            replies = [await register(c, iid, f"churn-{w:03d}")]
                            replies.append(
                                await c.request({"type": "heartbeat", "internal_id": iid})
                            )
                        elif kind == 1:
                            reply = await c.request(
                                {
                                    "type": "prompt",
                                    "session_id": target,
                                    "text": "churn",
                                    "request_id": "c",
                                }
                            )
                            replies = [reply]
                            if (p := _is_delivered(reply)) is not None:
                                stats.error(p)
                                continue
                        else:
                            replies = [await c.request({"type": "query", "query": "ping"})]
                    finally:
                        await c.aclose()
                except (OSError, EOFError, trio.BrokenResourceError) as exc:
                    stats.error(f"{type(exc).__name__}: {exc}")
                    continue
                bad = [r["error"] for r in replies if r.get("error")]
                if bad:
                    stats.error(bad[0])
                else:
                    stats.ok(trio.current_time() - t0)
            if scope.cancelled_caught:
                stats.timeouts += 1

    async with trio.open_nursery() as nursery:
        for w in range(workers):
            nursery.start_soon(worker, w)
    stats.elapsed_s = trio.current_time() - start
    return stats


# --- heartbeat storm -----------------------------------------------------------------------


async def run_heartbeat_storm(
    path: str, *, sessions: int, duration_s: float, probe_target: str, max_heartbeats: int
) -> tuple[Stats, Stats]:
    """``sessions`` session clients heartbeating back to back (each waits for its reply) while
    one sender probes prompt round trips. Returns (heartbeat stats, probe stats)."""
    hb = Stats()
    start = trio.current_time()
    deadline = start + duration_s
    counter = itertools.count()
    conns: list[LineConn] = []
    for s in range(sessions):
        c = await LineConn.open(path)
        conns.append(c)
        reply = await register(c, f"storm-iid-{s}", f"storm-{s:03d}")
        if reply.get("error"):
            hb.error(reply["error"])

    async def storm(s: int, c: LineConn) -> None:
        msg = {
            "type": "heartbeat",
            "internal_id": f"storm-iid-{s}",
            "data": {"cwd": f"/tmp/storm/{s}"},
        }
        while trio.current_time() < deadline and next(counter) < max_heartbeats:
            t0 = trio.current_time()
            with trio.move_on_after(REQUEST_DEADLINE_S) as scope:
                try:
                    reply = await c.request(msg)
                except (OSError, EOFError, trio.BrokenResourceError) as exc:
                    hb.error(f"{type(exc).__name__}: {exc}")
                    return
            if scope.cancelled_caught:
                hb.timeouts += 1
                return
            if reply.get("error"):
                hb.error(reply["error"])
            else:
                hb.ok(trio.current_time() - t0)

    probe: Stats | None = None

    async def prober() -> None:
        nonlocal probe
        await trio.sleep(min(0.2, duration_s / 10))  # let the storm build up first
        probe = await run_senders(
            path,
            [probe_target],
            senders=1,
            duration_s=deadline - trio.current_time(),
            max_requests=100_000,
            pause_s=0.002,
        )

    try:
        async with trio.open_nursery() as nursery:
            for s, c in enumerate(conns):
                nursery.start_soon(storm, s, c)
            nursery.start_soon(prober)
    finally:
        await close_all(conns)
    hb.elapsed_s = trio.current_time() - start
    assert probe is not None
    return hb, probe


# --- session clients that never answer -----------------------------------------------------


async def run_never_answer(
    path: str, *, sessions: int, senders_per_session: int, timeout_s: float
) -> tuple[Stats, int]:
    """Session clients that read but never answer; every sender must get the daemon's timeout
    error. Returns the senders' stats (latency = time to the error) and how many got it."""
    stats = Stats()
    got_timeout_error = 0
    start = trio.current_time()
    async with trio.open_nursery() as sessions_nursery:
        ids = [f"mute-{s:03d}" for s in range(sessions)]
        await start_sessions(sessions_nursery, path, ids, answer=False, prefix="mute")

        async def sender(sid: str, i: int) -> None:
            nonlocal got_timeout_error
            c = await LineConn.open(path)
            try:
                t0 = trio.current_time()
                with trio.move_on_after(timeout_s * 3 + 5):
                    reply = await c.request(
                        {"type": "prompt", "session_id": sid, "text": "x", "request_id": f"m{i}"}
                    )
                    stats.ok(trio.current_time() - t0)
                    if "did not answer" in str(reply.get("error", "")):
                        got_timeout_error += 1
                    else:
                        stats.error(f"expected the timeout error, got {reply}")
                    return
                stats.timeouts += 1
            finally:
                await c.aclose()

        async with trio.open_nursery() as nursery:
            for n, sid in enumerate(ids):
                for i in range(senders_per_session):
                    nursery.start_soon(sender, sid, n * senders_per_session + i)
        sessions_nursery.cancel_scope.cancel()
    stats.elapsed_s = trio.current_time() - start
    return stats, got_timeout_error


# --- a connection that accepts and never answers (a hung daemon) ---------------------------


async def hung_listener(
    path: str, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Accept connections on ``path`` and never read or answer, until cancelled."""
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    await sock.bind(path)
    sock.listen(128)
    listener = trio.SocketListener(sock)
    held: list[trio.SocketStream] = []
    try:
        task_status.started()
        while True:
            held.append(await listener.accept())
    finally:
        for s in held:
            await trio.aclose_forcefully(s)
        await trio.aclose_forcefully(listener)
