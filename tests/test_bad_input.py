"""SPEC §8 bad input against the live daemon, one test per kind, and hypothesis on the socket.

After each bad line the same connection still works (except after an oversize line, which is
answered and closed) and another connection still answers ``ping``; nothing the peer sends may
raise inside the daemon (an ERROR in its log is a failure).

Also home of the helpers the other attack files share: ``ThreadedDaemon`` (the real daemon on
its own thread, for sync tests that hypothesis drives), ``BlockingClient`` and ``fd_count``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccc_statusd import protocol
from ccc_statusd.config import DaemonConfig
from ccc_statusd.daemon import run_daemon
from ccc_statusd.hub import Hub
from ccc_statusd.paths import Paths

from .conftest import LineClient, answer_routed
from .helpers import short_tmpdir

SENT = ("typed", "submitted")  # a prompt or command the session client typed

SMALL_LINE_BYTES = 4096  # a small limit makes "over the limit" cheap to send
PING = {"type": "query", "query": "ping"}

# --- shared helpers -------------------------------------------------------------------------


class ErrorLog(logging.Handler):
    """Collects ERROR records of the daemon's loggers: an internal error is a bug."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]

    def __enter__(self) -> ErrorLog:
        logging.getLogger("ccc_statusd").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("ccc_statusd").removeHandler(self)


class ThreadedDaemon:
    """The real daemon (``run_daemon``) in its own ``trio.run`` on a thread.

    For sync tests (hypothesis, stateful models) that talk to it through blocking sockets.
    ``call(fn, *args)`` runs ``fn`` on the daemon's Trio thread (to read the hub's state
    without races). A crash of the daemon is kept in ``crash`` and raised by ``check_alive``.
    """

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.hub: Hub | None = None
        self.crash: BaseException | None = None
        self.errors = ErrorLog()
        self._token: trio.lowlevel.TrioToken | None = None
        self._cancel: trio.CancelScope | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="ccc-statusd-test", daemon=True)

    def _main(self) -> None:
        try:
            trio.run(self._run)
        except BaseException as exc:  # kept for the test thread to report
            self.crash = exc
        finally:
            self._ready.set()

    async def _run(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            self._cancel = nursery.cancel_scope
            self.hub = await nursery.start(run_daemon, self.config)
            self._ready.set()

    def __enter__(self) -> ThreadedDaemon:
        self.errors.__enter__()
        self._thread.start()
        if not self._ready.wait(10):
            raise AssertionError("the daemon did not start within 10 s")
        self.check_alive()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._thread.is_alive() and self._token is not None and self._cancel is not None:
                trio.from_thread.run_sync(self._cancel.cancel, trio_token=self._token)
            self._thread.join(10)
        finally:
            self.errors.__exit__()

    @property
    def socket_path(self) -> str:
        return str(self.config.paths.socket)

    def check_alive(self) -> None:
        if self.crash is not None or not self._thread.is_alive():
            raise AssertionError(f"the daemon died: {self.crash!r}") from self.crash

    def call(self, fn: Any, *args: Any) -> Any:
        """Run a sync function on the daemon's Trio thread and return its result."""
        self.check_alive()
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)

    def run(self, afn: Any, *args: Any) -> Any:
        """Run an async function in the daemon's Trio loop and return its result."""
        self.check_alive()
        return trio.from_thread.run(afn, *args, trio_token=self._token)

    def task_count(self) -> int:
        """How many Trio tasks the daemon's run has (connections show up here)."""

        def count() -> int:
            todo = [trio.lowlevel.current_root_task()]
            n = 0
            while todo:
                task = todo.pop()
                n += 1
                for nursery in task.child_nurseries:
                    todo.extend(nursery.child_tasks)
            return n

        return int(self.call(count))


class BlockingClient:
    """A plain blocking line client (no Trio), for sync tests."""

    def __init__(self, path: str, timeout_s: float = 5.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout_s)
        try:
            self.sock.connect(path)
        except BaseException:
            self.sock.close()
            raise
        self.framer = protocol.LineFramer(64 * 1024 * 1024)
        self.lines: deque[bytes] = deque()

    def send(self, obj: dict[str, Any] | bytes) -> None:
        self.sock.sendall(obj if isinstance(obj, bytes) else protocol.encode_dict(obj))

    def recv(self) -> dict[str, Any]:
        while not self.lines:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("the daemon closed the connection")
            self.lines.extend(self.framer.feed(data))
        return json.loads(self.lines.popleft())  # type: ignore[no-any-return]

    def request(self, obj: dict[str, Any] | bytes) -> dict[str, Any]:
        self.send(obj)
        return self.recv()

    def read_to_eof(self) -> list[dict[str, Any]]:
        """Every line until the daemon closes the connection."""
        out = []
        while True:
            try:
                out.append(self.recv())
            except EOFError:
                return out

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> BlockingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fd_count(pid: int | None = None) -> int:
    """Open file descriptors of a process (this one by default), from /proc."""
    return len(os.listdir(f"/proc/{pid or os.getpid()}/fd"))


def short_cache_dir() -> Path:

    return short_tmpdir("ccc-")


# --- fixtures for the in-process tests ------------------------------------------------------


@pytest.fixture
def config(paths: Paths) -> DaemonConfig:
    return DaemonConfig(
        paths=paths, enable_watchers=False, request_timeout_s=2.0, max_line_bytes=SMALL_LINE_BYTES
    )


@pytest.fixture
def internal_errors() -> Iterator[ErrorLog]:
    with ErrorLog() as errors:
        yield errors


async def still_works(c: LineClient, connect: Any, errors: ErrorLog) -> None:
    """The same connection and a fresh one both answer ping; the daemon logged no ERROR."""
    assert await c.request({**PING, "request_id": "after"}) == {
        "type": "response",
        "request_id": "after",
        "data": "pong",
    }
    other = await connect()
    assert (await other.request(PING))["data"] == "pong"
    assert errors.messages() == []


async def bad_line(c: LineClient, raw: bytes) -> str:
    reply = await c.request(raw)
    assert reply["type"] == "response"
    assert isinstance(reply.get("error"), str) and reply["error"], reply
    return str(reply["error"])


# --- one test per bad input -----------------------------------------------------------------


async def test_invalid_json(daemon: Hub, connect: Any, internal_errors: ErrorLog) -> None:
    c = await connect()
    for raw in (b"{", b'{"type":"query",}', b"not json at all", b"{'single':'quotes'}"):
        assert "not valid JSON" in await bad_line(c, raw + b"\n")
    assert "must be a JSON object" in await bad_line(c, b"[1,2,3]\n")
    await still_works(c, connect, internal_errors)


async def test_non_utf8(daemon: Hub, connect: Any, internal_errors: ErrorLog) -> None:
    c = await connect()
    assert "not valid UTF-8" in await bad_line(c, b'{"type":"query","query":"\xff\xfe"}\n')
    assert "not valid UTF-8" in await bad_line(c, b"\xc3\x28\n")
    await still_works(c, connect, internal_errors)


async def test_line_over_the_limit_is_answered_then_closed(
    daemon: Hub, connect: Any, internal_errors: ErrorLog
) -> None:
    c = await connect()
    # Exactly the limit is still a message (a padded ping), answered on a connection that stays.
    pad = SMALL_LINE_BYTES - len(b'{"type":"query","query":"ping","pad":""}')
    exact = b'{"type":"query","query":"ping","pad":"' + b"x" * pad + b'"}'
    assert len(exact) == SMALL_LINE_BYTES
    assert (await c.request(exact + b"\n"))["data"] == "pong"
    # One byte more: one error naming the limit, then the daemon closes the connection.
    over = b'{"type":"query","query":"ping","pad":"' + b"x" * (pad + 1) + b'"}\n'
    reply = await c.request(over + b'{"type":"query","query":"ping"}\n')
    assert f"{SMALL_LINE_BYTES}-byte limit" in reply["error"]
    with pytest.raises(EOFError):
        await c.recv()
    other = await connect()
    assert (await other.request(PING))["data"] == "pong"
    assert internal_errors.messages() == []


async def test_unterminated_flood_is_cut_off(
    daemon: Hub, connect: Any, internal_errors: ErrorLog
) -> None:
    """A peer streaming bytes without a newline is stopped at the limit, not buffered forever."""
    c = await connect()
    with pytest.raises((trio.BrokenResourceError, trio.ClosedResourceError, OSError)):
        for _ in range(200):  # 200 × 4 KiB ≫ the limit; the daemon closes long before
            await c.send(b"x" * SMALL_LINE_BYTES)
            await trio.lowlevel.checkpoint()
    other = await connect()
    assert (await other.request(PING))["data"] == "pong"
    assert daemon.server is not None and len(daemon.server.conns) == 1  # only `other` is left
    assert internal_errors.messages() == []


async def test_unknown_type(daemon: Hub, connect: Any, internal_errors: ErrorLog) -> None:
    c = await connect()
    err = await bad_line(c, b'{"type":"launch_missiles","request_id":"u1"}\n')
    assert "unknown message type 'launch_missiles'" in err
    reply = await c.request({"type": "query", "query": "no_such_query", "request_id": "q"})
    assert "unknown query" in reply["error"] and reply["request_id"] == "q"
    assert 'no "type"' in await bad_line(c, b'{"query":"ping"}\n')
    await still_works(c, connect, internal_errors)


MISSING = [
    ({"type": "register"}, "internal_id"),
    ({"type": "associate", "internal_id": "i1"}, "session_id"),
    ({"type": "heartbeat"}, "internal_id"),
    ({"type": "prompt", "session_id": "abcd1234"}, "text"),
    ({"type": "prompt", "text": "hi"}, "session_id"),
    ({"type": "command", "session_id": "abcd1234"}, "name"),
    ({"type": "eval", "session_id": "abcd1234"}, "code"),
    pytest.param(
        {"type": "query"},
        "query",
    ),
    ({"type": "hook"}, "data"),
    ({"type": "statusline"}, "data"),
]


def _missing_id(case: Any) -> str:
    msg, field = case.values if hasattr(case, "values") else case
    return f"{msg['type']}-{field}"


@pytest.mark.parametrize(("msg", "field"), MISSING, ids=[_missing_id(c) for c in MISSING])
async def test_missing_fields(
    daemon: Hub, connect: Any, internal_errors: ErrorLog, msg: dict[str, Any], field: str
) -> None:
    c = await connect()
    reply = await c.request({**msg, "request_id": "m1"})
    assert f'field "{field}" is required' in reply["error"]
    assert reply["request_id"] == "m1"  # even an error reply can be correlated
    await still_works(c, connect, internal_errors)


WRONG_TYPES = [
    {"type": "prompt", "session_id": "abcd1234", "text": 42},
    {"type": "prompt", "session_id": 12345678, "text": "hi"},
    {"type": "command", "session_id": "abcd1234", "name": ["clear"]},
    {"type": "query", "query": {"name": "ping"}},
    {"type": "register", "internal_id": "i1", "data": "not an object"},
    {"type": "hook", "data": [1, 2]},
    {"type": "statusline", "data": "x"},
    {"type": "query", "query": "ping", "timestamp": "yesterday"},
    {"type": "query", "query": "ping", "request_id": 7},
    {"type": "hook", "data": {"session_id": 5, "hook_event_name": "Stop"}},
    {
        "type": "hook",
        "data": {"session_id": "abcd1234", "hook_event_name": "Stop"},
        "env": {"A": 1},
    },
]


@pytest.mark.parametrize(
    "msg", WRONG_TYPES, ids=[f"{m['type']}-{i}" for i, m in enumerate(WRONG_TYPES)]
)
async def test_wrong_field_types(
    daemon: Hub, connect: Any, internal_errors: ErrorLog, msg: dict[str, Any]
) -> None:
    c = await connect()
    err = (await c.request(msg))["error"]
    assert "field" in err or "hook data needs" in err, err
    await still_works(c, connect, internal_errors)


UNSAFE_IDS = [
    "../x",
    "a/b",
    "a\x00b",
    "a" * 1000,
    "..",
    ".hidden",
    "/etc/passwd",
    "x/../../y",
    "a\nb",
    "",
]


def _unsafe_messages(bad: str) -> list[dict[str, Any]]:
    return [
        {"type": "register", "internal_id": bad},
        {"type": "register", "internal_id": "iid-safe", "session_id": bad},
        {"type": "associate", "internal_id": "iid-safe", "session_id": bad},
        {"type": "heartbeat", "internal_id": "iid-safe", "session_id": bad},
        {"type": "prompt", "session_id": bad, "text": "hi"},
        {"type": "command", "session_id": bad, "name": "clear"},
        {"type": "query", "query": "session_path", "session_id": bad},
        {"type": "hook", "data": {"session_id": bad, "hook_event_name": "SessionStart"}},
        {"type": "statusline", "data": {"session_id": bad}},
    ]


@pytest.mark.parametrize(
    "bad",
    UNSAFE_IDS,
    ids=[
        "dotdot-x",
        "slash",
        "nul",
        "1000",
        "dotdot",
        "hidden",
        "abs",
        "climb",
        "newline",
        "empty",
    ],
)
async def test_unsafe_session_id_never_becomes_a_path(
    daemon: Hub, connect: Any, internal_errors: ErrorLog, paths: Paths, bad: str
) -> None:
    outside = paths.cache_dir.parent
    before_outside = {p.name for p in outside.iterdir()}
    c = await connect()
    assert (
        await c.request({"type": "register", "internal_id": "iid-safe", "session_id": "safe-0001"})
    ).get("error") is None
    for msg in _unsafe_messages(bad):
        reply = await c.request(msg)
        assert reply.get("error"), (msg, reply)
    await daemon.flush_metadata()
    # Only plain files with plain names in the cache dir; nothing new next to it.
    for entry in paths.cache_dir.iterdir():
        assert entry.is_file() or entry.is_socket(), entry
        assert entry.parent == paths.cache_dir
        if entry.suffix == ".json":
            assert protocol.is_safe_id(entry.name[: -len(".json")]), entry
    assert not (outside / "x.json").exists()
    new_outside = {p.name for p in outside.iterdir()} - before_outside
    assert not any(name.endswith(".json") for name in new_outside), new_outside
    assert sorted(daemon.directory.known_ids()) == ["safe-0001"]
    await still_works(c, connect, internal_errors)


async def test_deep_nesting(
    daemon: Hub, connect: Any, internal_errors: ErrorLog, config: DaemonConfig
) -> None:
    config.max_line_bytes = 1024 * 1024  # room for really deep documents
    c = await connect()
    for opener, closer in ((b"[", b"]"), (b'{"a":', b"}")):
        deep = (
            b'{"type":"query","query":"ping","data":{"x":'
            + opener * 100_000
            + b"1"
            + closer * 100_000
            + b"}}\n"
        )
        assert "nested too deeply" in await bad_line(c, deep)
    # Deep but parseable, in a free-form field: just answered.
    ok = b'{"type":"query","query":"ping","data":{"x":' + b"[" * 500 + b"]" * 500 + b"}}\n"
    assert (await c.request(ok))["data"] == "pong"
    await still_works(c, connect, internal_errors)


async def test_deep_response_data_from_a_session_client(
    daemon: Hub, connect: Any, internal_errors: ErrorLog, config: DaemonConfig
) -> None:
    """A session client answering with a deeply nested ``data``: the sender still gets one reply."""
    config.max_line_bytes = 1024 * 1024
    session = await connect()
    await session.request(
        {"type": "register", "internal_id": "iid-deep", "session_id": "deep-0001"}
    )
    sender = await connect()
    deep = '{"a":' * 900 + "1" + "}" * 900
    async with trio.open_nursery() as n:

        async def answer() -> None:
            msg = await session.recv()
            await session.send(
                f'{{"type":"response","request_id":"{msg["request_id"]}","data":{deep}}}\n'.encode()
            )

        n.start_soon(answer)
        reply = await sender.request(
            {"type": "prompt", "session_id": "deep-0001", "text": "x", "request_id": "d"}
        )
    assert reply["type"] == "response" and reply["request_id"] == "d"
    await still_works(sender, connect, internal_errors)
    assert (await session.request(PING))["data"] == "pong"


async def test_huge_numbers(
    daemon: Hub, connect: Any, internal_errors: ErrorLog, config: DaemonConfig
) -> None:
    config.max_line_bytes = 1024 * 1024  # room for 5000-digit numbers
    c = await connect()
    for raw in (b"1e400", b"-1e400", b"NaN", b"Infinity", b"9" * 4000, b"1e-400"):
        line = b'{"type":"query","query":"ping","timestamp":' + raw + b"}\n"
        assert (await c.request(line))["data"] == "pong", raw
    assert "not valid JSON" in await bad_line(
        c, b'{"type":"query","query":"ping","timestamp":' + b"9" * 5000 + b"}\n"
    )
    # Numbers where ids belong are wrong types, not crashes.
    assert "field" in await bad_line(c, b'{"type":"prompt","session_id":1e400,"text":"x"}\n')
    await still_works(c, connect, internal_errors)


async def test_huge_numbers_in_statusline_are_handled(
    daemon: Hub, connect: Any, internal_errors: ErrorLog
) -> None:
    c = await connect()
    for ctx in (
        b'{"used_percentage":5,"context_window_size":1e30}',
        b'{"used_percentage":NaN,"context_window_size":200000}',
        b'{"used_percentage":5,"context_window_size":200000,"total_input_tokens":'
        + b"9" * 30
        + b"}",
    ):
        line = (
            b'{"type":"statusline","data":{"session_id":"big-0001","context_window":'
            + ctx
            + b"}}\n"
        )
        reply = await c.request(line)
        assert "internal error" not in reply.get("error", ""), reply
    await still_works(c, connect, internal_errors)


def test_huge_pid_does_not_kill_the_daemon_baseline() -> None:
    """The same flow with a sane pid: the daemon persists the session and stays up."""
    _register_with_pid_then_ping(4242)


def test_huge_pid_does_not_kill_the_daemon() -> None:
    _register_with_pid_then_ping(10**30)


def _register_with_pid_then_ping(pid: int) -> None:
    d = short_cache_dir()
    cfg = DaemonConfig(paths=Paths(d), enable_watchers=False)
    with ThreadedDaemon(cfg) as daemon:
        with BlockingClient(daemon.socket_path) as c:
            reply = c.request(
                {
                    "type": "register",
                    "internal_id": "iid-pid",
                    "session_id": "pid-0001",
                    "data": {"pid": pid},
                }
            )
            assert reply.get("error") is None
        for _ in range(100):  # the flusher runs right after the register; give it a moment
            if daemon.crash is not None or (d / "pid-0001.json").exists():
                break
            threading.Event().wait(0.01)
        daemon.check_alive()
        with BlockingClient(daemon.socket_path) as c:
            assert c.request(PING)["data"] == "pong"
        assert daemon.errors.messages() == []


async def test_empty_lines_get_no_reply(
    daemon: Hub, connect: Any, internal_errors: ErrorLog
) -> None:
    c = await connect()
    await c.send(b"\n\n   \n\t\n\r\n")
    assert await c.request({**PING, "request_id": "first"}) == {
        "type": "response",
        "request_id": "first",
        "data": "pong",
    }
    await still_works(c, connect, internal_errors)


async def test_crlf_line_endings(daemon: Hub, connect: Any, internal_errors: ErrorLog) -> None:
    c = await connect()
    await c.send(
        b'{"type":"query","query":"ping","request_id":"1"}\r\n{"type":"query","query":"ping","request_id":"2"}\r\n'
    )
    assert [(await c.recv())["request_id"] for _ in range(2)] == ["1", "2"]
    await still_works(c, connect, internal_errors)


async def test_response_nobody_asked_for(
    daemon: Hub, connect: Any, internal_errors: ErrorLog
) -> None:
    c = await connect()
    err = await bad_line(c, b'{"type":"response","request_id":"d999","data":{"ok":true}}\n')
    assert "unexpected response" in err and "d999" in err
    # Also from a registered session client, and a second answer to a request it already answered.
    await c.request({"type": "register", "internal_id": "iid-resp", "session_id": "resp-0001"})
    sender = await connect()
    async with trio.open_nursery() as n:
        routed: list[dict[str, Any]] = []

        async def serve() -> None:
            routed.append(await answer_routed(c))

        n.start_soon(serve)
        assert (await sender.request({"type": "prompt", "session_id": "resp-0001", "text": "x"}))[
            "status"
        ] in SENT
    err = await bad_line(
        c, protocol.encode_dict({"type": "response", "request_id": routed[0]["request_id"]})
    )
    assert "unexpected response" in err
    await still_works(c, connect, internal_errors)


async def test_a_bad_line_between_good_ones_keeps_order(
    daemon: Hub, connect: Any, internal_errors: ErrorLog
) -> None:
    c = await connect()
    await c.send(
        b'{"type":"query","query":"ping","request_id":"a"}\n\xff\n{"type":"query","query":"ping","request_id":"b"}\n'
    )
    first, second, third = (await c.recv(), await c.recv(), await c.recv())
    assert first["request_id"] == "a" and "UTF-8" in second["error"] and third["request_id"] == "b"
    await still_works(c, connect, internal_errors)


# --- hypothesis against the live daemon -----------------------------------------------------

FUZZ_LINE_BYTES = 2048


@pytest.fixture(scope="module")
def live() -> Iterator[ThreadedDaemon]:
    d = short_cache_dir()
    cfg = DaemonConfig(
        paths=Paths(d),
        enable_watchers=False,
        request_timeout_s=0.2,  # a fuzzed client that routes to itself must not stall the run
        max_line_bytes=FUZZ_LINE_BYTES,
        allow_eval=True,
    )
    try:
        with ThreadedDaemon(cfg) as daemon:
            yield daemon
            daemon.check_alive()
    finally:
        import shutil

        shutil.rmtree(d, ignore_errors=True)


def expected_replies(payload: bytes, limit: int) -> tuple[int, bool]:
    """How many replies a payload (with a newline appended) earns, and whether it is oversize."""
    framer = protocol.LineFramer(limit)
    try:
        return len(framer.feed(payload + b"\n")), False
    except protocol.LineTooLong:
        return 0, True


def send_and_count(daemon: ThreadedDaemon, payload: bytes) -> None:
    """Send ``payload`` then a sentinel ping; the replies before the sentinel must be exactly
    one per line, each a response (events and routed messages are not counted)."""
    want, oversize = expected_replies(payload, daemon.config.max_line_bytes)
    with BlockingClient(daemon.socket_path) as c:
        c.send(payload + b'\n{"type":"query","query":"ping","request_id":"sentinel"}\n')
        if oversize:
            lines = [m for m in c.read_to_eof() if m.get("type") == "response"]
            errors = [m for m in lines if "-byte limit" in (m.get("error") or "")]
            assert len(errors) == 1 and lines[-1] is errors[0], lines
        else:
            got = 0
            while True:
                msg = c.recv()
                if msg.get("type") != "response":
                    continue
                if msg.get("request_id") == "sentinel" and msg.get("data") == "pong":
                    break
                got += 1
            assert got == want, (payload[:200], got, want)
    with BlockingClient(daemon.socket_path) as other:
        assert other.request(PING)["data"] == "pong"


lines_of_bytes = st.lists(
    st.binary(max_size=120)
    | st.sampled_from([b"", b"\r", b"{", b"}", b"[]", b"null", b"\xff", b'{"type":"query"}'])
    | st.integers(min_value=FUZZ_LINE_BYTES - 2, max_value=FUZZ_LINE_BYTES + 2).map(
        lambda n: b"x" * n
    ),
    max_size=6,
).map(b"\n".join)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(payload=st.binary(max_size=400) | lines_of_bytes)
def test_arbitrary_bytes_never_crash_the_daemon(live: ThreadedDaemon, payload: bytes) -> None:
    send_and_count(live, payload)
    live.check_alive()


FIELD_NAMES = [
    "type",
    "internal_id",
    "session_id",
    "request_id",
    "timestamp",
    "claude_config_dir",
    "transcript_path",
    "text",
    "name",
    "query",
    "code",
    "data",
    "error",
    "status",
]
# Unbounded: numbers beyond SQLite's 64-bit INTEGER must be refused or ignored, never fatal.
FUZZ_INT = st.integers()
fuzz_scalars = (
    st.none()
    | st.booleans()
    | FUZZ_INT
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["abcd", "sess-0001", "iid-1", "../x", "ping", "status"])
)
fuzz_values = st.recursive(
    fuzz_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
fuzz_objects = st.fixed_dictionaries(
    {"type": st.sampled_from(protocol.MESSAGE_TYPES) | st.text(max_size=10)},
    optional={
        name: fuzz_values
        | (st.sampled_from(protocol.QUERY_NAMES) if name == "query" else fuzz_values)
        for name in FIELD_NAMES
        if name != "type"
    },
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(objs=st.lists(fuzz_objects, min_size=1, max_size=4))
def test_arbitrary_json_objects_get_exactly_one_reply_each(
    live: ThreadedDaemon, objs: list[dict[str, Any]]
) -> None:
    payload = b"".join(json.dumps(o, allow_nan=False).encode() + b"\n" for o in objs)
    send_and_count(live, payload.rstrip(b"\n"))
    live.check_alive()
    live.call(live.hub.registry.check_consistent)  # type: ignore[union-attr]
