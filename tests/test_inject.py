"""The JS injection (ccc_statusd/inject/inject.cjs) under real `node`, loaded with
NODE_OPTIONS=--require into tests/node_standin.js (reads stdin the way Ink does), talking to a
small fake daemon that speaks the wire protocol: register, prompt and command delivery, eval
(value and error), the "user is typing" refusal, no activation in child processes, and
reconnection after the daemon restarts."""

from __future__ import annotations

import json
import os
import shutil
import socket as stdlib_socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from ccc_statusd.protocol import LineFramer

from .helpers import wait_until

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")

REPO = Path(__file__).resolve().parent.parent
INJECT = REPO / "ccc_statusd" / "inject" / "inject.cjs"
STANDIN = REPO / "tests" / "node_standin.js"
INTERNAL_ID = "inject-test-1"
WAIT_S = 10  # safety net only: every wait below ends as soon as its condition holds
POLL_S = 0.02


class FakeDaemon:
    """Accepts session clients on a Unix socket, answers their register/heartbeat, and routes
    messages to the most recent one (like the real daemon's routing, minus everything else)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.received: list[dict[str, Any]] = []
        self.client: trio.SocketStream | None = None
        self.replies: dict[str, dict[str, Any]] = {}
        self.changed = trio.Event()
        self.connections = 0
        self._seq = 0
        # One writer at a time per stream: heartbeat answers and routed requests both write.
        self._send_locks: dict[int, trio.Lock] = {}

    async def _send(self, stream: trio.SocketStream, obj: dict[str, Any]) -> None:
        async with self._send_locks.setdefault(id(stream), trio.Lock()):
            await stream.send_all(json.dumps(obj).encode() + b"\n")

    def _notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        sock = trio.socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
        await sock.bind(str(self.path))
        sock.listen(16)
        listener = trio.SocketListener(sock)
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                while True:
                    stream = await listener.accept()
                    nursery.start_soon(self._handle, stream)
        finally:
            self.path.unlink(
                missing_ok=True
            )  # first: aclose() checkpoints, and we may be cancelled
            await listener.aclose()

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        framer = LineFramer()
        async with stream:
            while True:
                try:
                    chunk = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    return
                if not chunk:
                    if self.client is stream:
                        self.client = None
                    return
                for line in framer.feed(chunk):
                    msg = json.loads(line)
                    self.received.append(msg)
                    if msg["type"] in ("register", "heartbeat"):
                        if msg["type"] == "register":
                            self.client = stream
                        reply = {"type": "response", "request_id": msg.get("request_id")}
                        await self._send(stream, reply)
                    elif msg["type"] == "response":
                        self.replies[msg["request_id"]] = msg
                    self._notify()

    async def wait_for(self, predicate: Any) -> Any:
        with trio.fail_after(WAIT_S):
            while not (result := predicate()):
                await self.changed.wait()
        return result

    def registers(self) -> list[dict[str, Any]]:
        return [m for m in self.received if m["type"] == "register"]

    async def request(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Route one message to the injection and wait for its response."""
        client = await self.wait_for(lambda: self.client)
        self._seq += 1
        rid = f"req-{self._seq}"
        await self._send(client, {**msg, "request_id": rid})
        return await self.wait_for(lambda: self.replies.get(rid))


class Standin:
    def __init__(self, proc: trio.Process, record: Path, debug: Path) -> None:
        self.proc = proc
        self.record = record
        self.debug = debug

    def chunks(self) -> list[str]:
        if not self.record.exists():
            return []
        lines = [json.loads(x) for x in self.record.read_text().splitlines() if x]
        return [x["text"] for x in lines if "text" in x]

    def ready(self) -> bool:
        return self.record.exists() and '"ready"' in self.record.read_text()

    async def wait_until(self, predicate: Any) -> None:
        # Polling: the record file is written by another process, there is no event to await.
        await wait_until(predicate, limit_s=WAIT_S, interval_s=POLL_S)

    async def wait_for_chunks(self, expected: list[str]) -> None:
        """Wait until the stand-in has recorded exactly ``expected`` (it records a tick after
        the push, so right after a reply the record may still be one chunk behind)."""
        try:
            await self.wait_until(lambda: self.chunks() == expected)
        except AssertionError:
            assert self.chunks() == expected  # the same, with the difference shown

    async def type(self, text: str) -> None:
        assert self.proc.stdin is not None
        await self.proc.stdin.send_all(text.encode())


@asynccontextmanager
async def open_standin(d: Path, script: Path = STANDIN, **extra_env: str) -> AsyncIterator[Standin]:
    record = d / "record.jsonl"
    debug = d / "inject.log"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(d),
        "NODE_OPTIONS": f"--require={INJECT}",
        "CCC_SOCKET": str(d / "daemon.sock"),
        "CCC_INTERNAL_ID": INTERNAL_ID,
        "CCC_INJECT_TARGET": "node_standin.js",
        "CCC_INJECT_DEBUG": str(debug),
        "CCC_INJECT_RECONNECT_MAX_MS": "400",
        **extra_env,
    }
    env = {k: v for k, v in env.items() if v}
    assert NODE is not None
    proc = await trio.lowlevel.open_process(
        [NODE, str(script), str(record)],
        stdin=subprocess.PIPE,
        env=env,
    )
    standin = Standin(proc, record, debug)
    try:
        await standin.wait_until(standin.ready)
        yield standin
    finally:
        assert proc.stdin is not None
        await proc.stdin.aclose()  # the stand-in exits when its stdin ends
        with trio.move_on_after(5):
            await proc.wait()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@asynccontextmanager
async def running_daemon(d: Path) -> AsyncIterator[tuple[FakeDaemon, trio.CancelScope]]:
    daemon = FakeDaemon(d / "daemon.sock")
    async with trio.open_nursery() as nursery:
        scope = trio.CancelScope()

        async def run(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await daemon.serve(task_status=task_status)

        await nursery.start(run)
        yield daemon, scope
        nursery.cancel_scope.cancel()


class FakeHost:
    """The `ccc run --inject` pty host's delivery socket: takes one forwarded JSON line per
    connection, records it, answers with ``answer``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.received: list[dict[str, Any]] = []
        self.answer: dict[str, Any] = {"status": "submitted", "data": {"delivered_via": "pty"}}

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        sock = trio.socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
        await sock.bind(str(self.path))
        sock.listen(4)
        listener = trio.SocketListener(sock)
        async with listener, trio.open_nursery() as nursery:
            task_status.started()
            while True:
                stream = await listener.accept()
                nursery.start_soon(self._one, stream)

    async def _one(self, stream: trio.SocketStream) -> None:
        async with stream:
            framer = LineFramer()
            while True:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                lines = framer.feed(chunk)
                if lines:
                    self.received.append(json.loads(lines[0]))
                    await stream.send_all(json.dumps(self.answer).encode() + b"\n")
                    return


async def test_registers_and_forwards_prompts_and_commands_to_the_host(short_dir: Path) -> None:
    """Prompts and commands go to the pty host (which checks the screen); its answer comes back
    as is; the injection itself never pushes them into stdin."""
    host = FakeHost(short_dir / "host.sock")
    async with trio.open_nursery() as nursery:
        await nursery.start(host.serve)
        async with (
            running_daemon(short_dir) as (daemon, _),
            open_standin(short_dir, CCC_HOST_SOCK=str(host.path)) as standin,
        ):
            (register,) = await daemon.wait_for(daemon.registers)
            assert register["internal_id"] == INTERNAL_ID
            assert register["data"]["kind"] == "inject"
            assert register["data"]["pid"] == standin.proc.pid
            assert register["data"]["capabilities"] == ["prompt", "command", "eval"]
            assert register["data"]["runtime"] == "node"

            reply = await daemon.request(
                {
                    "type": "prompt",
                    "session_id": "s1",
                    "text": "hello\nworld",
                    "data": {"state": "idle"},
                }
            )
            assert reply["status"] == "submitted" and "error" not in reply, reply
            assert reply["internal_id"] == INTERNAL_ID
            assert reply["data"] == {"delivered_via": "pty"}
            fwd = host.received[-1]
            assert (fwd["type"], fwd["text"], fwd["data"]) == (
                "prompt",
                "hello\nworld",
                {"state": "idle"},
            )
            assert fwd["request_id"] == reply["request_id"]

            host.answer = {
                "status": "not_idle",
                "error": "the /model picker is open",
                "data": {"reason": "screen"},
            }
            reply = await daemon.request(
                {"type": "command", "session_id": "s1", "name": "/compact", "text": "keep it short"}
            )
            assert reply["status"] == "not_idle" and reply["error"] == "the /model picker is open"
            fwd = host.received[-1]
            assert (fwd["type"], fwd["name"], fwd["text"]) == (
                "command",
                "/compact",
                "keep it short",
            )

            reply = await daemon.request({"type": "query", "query": "ping"})
            assert "cannot handle" in reply["error"]
            assert standin.chunks() == []  # nothing typed from inside
            # the host socket is not passed on to children
            ev = await daemon.request(
                {"type": "eval", "session_id": "s1", "code": "process.env.CCC_HOST_SOCK || null"}
            )
            assert ev["data"]["result"] is None
        nursery.cancel_scope.cancel()


async def test_without_a_host_nothing_is_typed(short_dir: Path) -> None:
    async with running_daemon(short_dir) as (daemon, _), open_standin(short_dir) as standin:
        await daemon.wait_for(daemon.registers)
        reply = await daemon.request({"type": "prompt", "session_id": "s1", "text": "hi"})
        assert "without its `ccc run --inject` host" in reply["error"], reply
        assert "nothing was typed" in reply["error"]
    async with (
        running_daemon(short_dir) as (daemon, _),
        open_standin(short_dir, CCC_HOST_SOCK=str(short_dir / "gone.sock")) as standin,
    ):
        await daemon.wait_for(daemon.registers)
        reply = await daemon.request({"type": "command", "session_id": "s1", "name": "clear"})
        assert "cannot reach the `ccc run` host" in reply["error"], reply
        assert standin.chunks() == []


async def test_eval_returns_values_and_errors(short_dir: Path) -> None:
    async with running_daemon(short_dir) as (daemon, _), open_standin(short_dir) as standin:

        async def ev(code: str) -> dict[str, Any]:
            return await daemon.request({"type": "eval", "session_id": "s1", "code": code})

        assert (await ev("1 + 2"))["data"] == {"result": 3}
        assert (await ev("process.pid"))["data"]["result"] == standin.proc.pid
        assert (await ev("({a: [1, 'x', null]})"))["data"]["result"] == {"a": [1, "x", None]}
        assert (await ev("let x = 2; x * 3"))["data"]["result"] == 6
        assert (await ev("require('os').platform()"))["data"][
            "result"
        ] == os.uname().sysname.lower()
        assert (await ev("Promise.resolve(41).then(v => v + 1)"))["data"]["result"] == 42
        assert (await ev("await new Promise(r => setTimeout(() => r('later'), 10))"))["data"][
            "result"
        ] == "later"
        assert (await ev("undefined"))["data"]["result"] == "undefined"
        assert (await ev("10n ** 20n"))["data"]["result"] == "100000000000000000000n"
        circular = (await ev("const o = {}; o.self = o; o"))["data"]["result"]
        assert isinstance(circular, str) and "Circular" in circular

        err = await ev("throw new TypeError('boom')")
        assert err["error"] == "eval failed: TypeError: boom" and "data" not in err
        err = await ev("Promise.reject(new Error('later boom'))")
        assert err["error"] == "eval failed: Error: later boom"
        err = await ev("this is not javascript")
        assert err["error"].startswith("eval failed: SyntaxError")
        err = await daemon.request({"type": "eval", "session_id": "s1"})
        assert "no code" in err["error"]
        # The host is still alive and its input untouched.
        assert (await ev("'still here'"))["data"]["result"] == "still here"
        assert standin.chunks() == []


async def test_not_active_outside_the_target_process(short_dir: Path) -> None:
    async with running_daemon(short_dir) as (daemon, _):
        # Without CCC_INJECT_TARGET the guard wants Claude's cli.js / Bun's /$bunfs/root/cli.
        async with open_standin(short_dir, CCC_INJECT_TARGET="") as standin:
            await standin.wait_until(lambda: standin.debug.exists())
            assert "inactive" in standin.debug.read_text()
        assert daemon.connections == 0


async def test_active_in_a_cli_js_process_by_default(short_dir: Path) -> None:
    # What `node …/@anthropic-ai/claude-code/cli.js` looks like to the guard.
    cli_js = short_dir / "pkg" / "cli.js"
    cli_js.parent.mkdir()
    shutil.copy(STANDIN, cli_js)
    async with (
        running_daemon(short_dir) as (daemon, _),
        open_standin(short_dir, script=cli_js, CCC_INJECT_TARGET=""),
    ):
        (register,) = await daemon.wait_for(daemon.registers)
        assert register["internal_id"] == INTERNAL_ID


@pytest.mark.parametrize("spaced", [False, True])
async def test_child_processes_do_not_inherit_the_injection(short_dir: Path, spaced: bool) -> None:
    inject = INJECT
    option = f"--require={inject}"
    if spaced:  # an install path with a space: NODE_OPTIONS needs the value quoted
        inject = short_dir / "with space" / "inject.cjs"
        inject.parent.mkdir()
        shutil.copy(INJECT, inject)
        option = f'--require="{inject}"'
    report = short_dir / "child.json"
    async with (
        running_daemon(short_dir) as (daemon, _),
        open_standin(
            short_dir,
            STANDIN_CHILD_REPORT=str(report),
            NODE_OPTIONS=f"--max-old-space-size=512 {option} --no-deprecation",
        ),
    ):
        await daemon.wait_for(daemon.registers)
        child_env = json.loads(report.read_text())["env"]
        assert "CCC_SOCKET" not in child_env
        assert "CCC_INJECT_TARGET" not in child_env
        assert child_env["NODE_OPTIONS"] == "--max-old-space-size=512 --no-deprecation"
        assert child_env["CCC_INTERNAL_ID"] == INTERNAL_ID, "hooks still need it"
        assert len(daemon.registers()) == 1


async def test_heartbeats(short_dir: Path) -> None:
    async with (
        running_daemon(short_dir) as (daemon, _),
        open_standin(short_dir, CCC_INJECT_HEARTBEAT_MS="50"),
    ):
        beats = await daemon.wait_for(
            lambda: [m for m in daemon.received if m["type"] == "heartbeat"][:2] or None
        )
        assert all(b["internal_id"] == INTERNAL_ID and b["data"]["kind"] == "inject" for b in beats)


async def test_reconnects_after_daemon_restart(short_dir: Path) -> None:
    async with open_standin(short_dir):
        # The daemon is not even running when the session starts: the client keeps trying.
        async with running_daemon(short_dir) as (daemon, scope):
            await daemon.wait_for(daemon.registers)
            scope.cancel()
        assert not (short_dir / "daemon.sock").exists()

        async with running_daemon(short_dir) as (daemon, _):
            (register,) = await daemon.wait_for(daemon.registers)
            assert register["internal_id"] == INTERNAL_ID
            reply = await daemon.request({"type": "eval", "session_id": "s1", "code": "'back'"})
            assert reply["status"] == "delivered" and reply["data"]["result"] == "back"
