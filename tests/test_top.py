"""``ccc top`` headless (Textual's pilot) against a real subprocess daemon and stand-in sessions.

pytest runs trio_mode and Textual needs asyncio, so each test is a plain function that runs its
scenario with ``asyncio.run``; the daemon is a real ``ccc-statusd`` process (as in
test_daemon_process.py), the stand-in session is a real socket client that registers, sends
Claude Code's hook messages and answers the prompts routed to it.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from ccc_statusd.paths import Paths
from ccc_statusd.top.app import TopApp

from .test_daemon_process import start, stop

SID = "6656f299-72c7-4382-8647-f94b8f7faaf3"
OTHER = "0bf7fcec-6527-4470-9385-92271deedb9b"


class StandIn:
    """A session client (as ``ccc run`` would be) plus the hooks its Claude Code would send."""

    def __init__(self, socket: Path, iid: str, sid: str) -> None:
        self.socket, self.iid, self.sid = socket, iid, sid
        self.received: list[dict[str, Any]] = []
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[None] | None = None

    async def register(self) -> None:
        self.reader, self.writer = await asyncio.open_unix_connection(str(self.socket))
        await self._send({"type": "register", "internal_id": self.iid, "data": {"kind": "pty"}})
        reply = json.loads(await self.reader.readline())
        assert reply.get("error") is None, reply
        self.task = asyncio.create_task(self._answer())

    async def _send(self, msg: dict[str, Any]) -> None:
        assert self.writer is not None
        self.writer.write(json.dumps(msg).encode() + b"\n")
        await self.writer.drain()

    async def _answer(self) -> None:
        assert self.reader is not None
        while line := await self.reader.readline():
            msg = json.loads(line)
            if msg.get("type") in ("prompt", "command"):
                self.received.append(msg)
                await self._send({"type": "response", "request_id": msg["request_id"]})

    async def hook(self, event: str, **payload: Any) -> None:
        reader, writer = await asyncio.open_unix_connection(str(self.socket))
        data = {"session_id": self.sid, "hook_event_name": event, **payload}
        msg = {"type": "hook", "data": data, "env": {"CCC_INTERNAL_ID": self.iid}}
        writer.write(json.dumps(msg).encode() + b"\n")
        await writer.drain()
        reply = json.loads(await reader.readline())
        writer.close()
        await writer.wait_closed()
        assert reply.get("error") is None, reply

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass


async def until(cond: Callable[[], bool], what: str, limit_s: float = 10) -> None:
    deadline = time.monotonic() + limit_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def cell(app: TopApp, key: str, column: str) -> str:
    return app.cells.get((key, column), "")


def row_key(app: TopApp, sid: str) -> str:
    return app.board.fmt.canon.get(sid, sid)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


@pytest.fixture
def daemon_proc(paths: Paths):  # type: ignore[no-untyped-def]
    proc = start(paths)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            stop(proc)


def test_rows_appear_change_state_live_and_p_sends_a_prompt(paths: Paths, daemon_proc) -> None:
    async def scenario() -> None:
        session = StandIn(paths.socket, "iid-top", SID)
        await session.register()
        await session.hook("SessionStart", source="startup", model="claude-opus-5-5")
        app = TopApp(str(paths.socket), paths)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(lambda: SID in app.board.fmt.canon, "the session's row")
            key = row_key(app, SID)
            await until(lambda: cell(app, key, "state") == "idle", "idle")
            await session.hook("UserPromptSubmit", prompt="build it")
            await until(lambda: cell(app, key, "state") == "busy", "busy, live")
            await session.hook("Stop", last_assistant_message="done")
            await until(lambda: cell(app, key, "state") == "idle", "idle again")
            # a second session appears live, without a reconnect
            other = StandIn(paths.socket, "iid-other", OTHER)
            await other.register()
            await other.hook("SessionStart", source="startup")
            await until(lambda: OTHER in app.board.fmt.canon, "the second row")
            await until(lambda: len(app.shown) == 2, "two rows")
            # p: type a prompt into the selected session
            app.query_one("DataTable").move_cursor(row=app.shown.index(key))
            await pilot.press("p")
            for ch in "hello there":
                await pilot.press("space" if ch == " " else ch)
            await pilot.press("enter")
            await until(lambda: bool(session.received), "the prompt at the stand-in")
            assert session.received[0]["type"] == "prompt"
            assert session.received[0]["text"] == "hello there"
            await until(lambda: "delivered" in events_text(app), "the delivery in the events pane")
            if os.environ.get("CCC_TOP_SCREENSHOT"):
                app.save_screenshot(os.environ["CCC_TOP_SCREENSHOT"])
            await pilot.press("q")
        await session.close()
        await other.close()

    run(scenario)


def events_text(app: TopApp) -> str:
    from textual.widgets import RichLog

    return "\n".join(line.text for line in app.query_one(RichLog).lines)


def test_c_command_a_ask_x_cancel_and_filter(paths: Paths, daemon_proc) -> None:
    async def scenario() -> None:
        session = StandIn(paths.socket, "iid-top", SID)
        await session.register()
        await session.hook("SessionStart", source="startup")
        app = TopApp(str(paths.socket), paths)
        async with app.run_test(size=(120, 30)) as pilot:
            await until(lambda: SID in app.board.fmt.canon, "the row")
            key = row_key(app, SID)
            await until(lambda: cell(app, key, "state") == "idle", "idle")
            assert any(c[0] == "dir" for c in app.columns)  # wide screen: a DIR column
            await pilot.press("c", *"compact", "enter")
            await until(lambda: bool(session.received), "the command")
            assert session.received[-1]["type"] == "command"
            assert session.received[-1]["name"] == "compact"
            # a: the reply is shown in place
            await session.hook("UserPromptSubmit", prompt="x")
            await session.hook("Stop", last_assistant_message="x")
            n = len(session.received)
            await pilot.press("a", *"why", "enter")
            await until(lambda: len(session.received) > n, "the ask's prompt")
            await session.hook("UserPromptSubmit", prompt="why")
            await session.hook("Stop", last_assistant_message="because it works")
            reply = app.query_one("#reply")
            await until(lambda: "because it works" in str(reply.render()), "the reply in place")
            # x: cancel a queued message (queued because the session is busy)
            await session.hook("UserPromptSubmit", prompt="busy now")
            await until(lambda: cell(app, key, "state") == "busy", "busy")
            await pilot.press("p", *"later", "enter")
            await until(lambda: cell(app, key, "queued") == "1", "a queued count of 1")
            await pilot.press("x")
            await until(lambda: cell(app, key, "queued") == "", "the queued count cleared")
            assert not list_scheduled(paths)
            assert "cancelled" in events_text(app)
            # /: filter
            await pilot.press("slash", *"zzz", "enter")
            await until(lambda: not app.shown, "an empty table")
            await pilot.press("slash", "ctrl+u", "enter")  # ctrl+u clears the input
            await until(lambda: app.shown == [key], "the row back")
            await pilot.press("enter")  # jump: this stand-in has no tmux pane
            await until(lambda: "no tmux pane" in events_text(app), "jump's explanation")
            await pilot.press("q")
        await session.close()

    run(scenario)


def list_scheduled(paths: Paths) -> list[dict[str, Any]]:
    import socket

    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(paths.socket))
        s.sendall(b'{"type":"query","query":"list_scheduled"}\n')
        return json.loads(s.makefile().readline())["data"]


def test_top_keeps_running_across_a_daemon_restart(paths: Paths) -> None:
    proc = start(paths)

    async def scenario() -> None:
        nonlocal proc
        session = StandIn(paths.socket, "iid-top", SID)
        await session.register()
        await session.hook("SessionStart", source="startup")
        app = TopApp(str(paths.socket), paths, first_backoff_s=0.05, max_backoff_s=0.2)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(lambda: SID in app.board.fmt.canon, "the row")
            await asyncio.to_thread(stop, proc)
            await until(lambda: "reconnecting" in app.status_text, "reconnecting shown")
            await session.close()
            proc = await asyncio.to_thread(start, paths)
            await until(lambda: app.connected, "reconnected")
            session2 = StandIn(paths.socket, "iid-top2", OTHER)
            await session2.register()
            await session2.hook("SessionStart", source="startup")
            await until(lambda: OTHER in app.board.fmt.canon, "a row after the restart")
            assert app.status_text == ""
            await pilot.press("q")
            await session2.close()

    try:
        run(scenario)
    finally:
        stop(proc)


def _tmux(name: str, *args: str) -> str:
    import subprocess

    return subprocess.run(
        ["tmux", "-L", name, "-f", "/dev/null", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout


@pytest.mark.skipif(__import__("shutil").which("tmux") is None, reason="tmux is not installed")
def test_ccc_top_in_a_real_terminal(paths: Paths, daemon_proc) -> None:
    """The real `ccc top` in a tmux pane at 80×24: rows on screen, `p` reaches the session."""
    import sys

    name = f"ccctop{os.getpid()}"
    cmd = (
        f"env NO_COLOR=1 {sys.executable} -m ccc_statusd.cli --socket {paths.socket} top; sleep 60"
    )

    async def scenario() -> None:
        session = StandIn(paths.socket, "iid-tty", SID)
        await session.register()
        await session.hook("SessionStart", source="startup", model="claude-opus-5-5")
        _tmux(name, "new-session", "-d", "-s", "top", "-x", "80", "-y", "24", cmd)

        def screen() -> str:
            return _tmux(name, "capture-pane", "-p", "-t", "top:0")

        await until(lambda: "6656f299" in screen() and "idle" in screen(), "the row", 20)
        await session.hook("UserPromptSubmit", prompt="go")
        await until(lambda: "busy" in screen().split("NAME")[1].split("\n")[1], "busy", 10)
        await session.hook("Stop", last_assistant_message="ok")
        await until(lambda: "is idle after Stop" in screen(), "the event line", 10)
        _tmux(name, "send-keys", "-t", "top:0", "p")
        await until(lambda: "prompt for 6656f299" in screen(), "the prompt input", 10)
        _tmux(name, "send-keys", "-t", "top:0", "-l", "from tmux")
        _tmux(name, "send-keys", "-t", "top:0", "Enter")
        await until(lambda: bool(session.received), "the prompt at the stand-in", 10)
        assert session.received[0]["text"] == "from tmux"
        screen_text = screen()
        assert all(len(line) <= 80 for line in screen_text.splitlines())
        # enter: a session in another tmux window; top switches to its pane
        pane = _tmux(name, "new-window", "-d", "-P", "-F", "#{pane_id}", "sleep 60").strip()
        other = StandIn(paths.socket, "iid-tty2", OTHER)
        await other.register()
        reader, writer = await asyncio.open_unix_connection(str(paths.socket))
        data = {"session_id": OTHER, "hook_event_name": "SessionStart", "source": "startup"}
        env = {"CCC_INTERNAL_ID": "iid-tty2", "TMUX_PANE": pane}
        writer.write(json.dumps({"type": "hook", "data": data, "env": env}).encode() + b"\n")
        await writer.drain()
        await reader.readline()
        writer.close()
        await writer.wait_closed()
        await until(lambda: "0bf7fcec" in screen(), "the second row", 10)
        lines = screen().split("\n")
        row = next(i for i, line in enumerate(lines) if "NAME" in line)
        first = lines[row + 1]
        if "0bf7fcec" not in first:
            _tmux(name, "send-keys", "-t", "top:0", "Down")
        _tmux(name, "send-keys", "-t", "top:0", "Enter")

        def active_window() -> str:
            return _tmux(name, "display-message", "-p", "-t", pane, "#{window_active}").strip()

        await until(lambda: active_window() == "1", "the session's window to be selected", 10)
        _tmux(name, "select-window", "-t", "top:0")
        await other.close()
        _tmux(name, "send-keys", "-t", "top:0", "q")
        await until(lambda: "ccc top" not in screen(), "ccc top to quit", 10)
        await session.close()

    try:
        run(scenario)
    finally:
        try:
            _tmux(name, "kill-server")
        except Exception:
            pass


def test_no_color_and_the_80_column_layout(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.text import Text

    monkeypatch.setenv("NO_COLOR", "1")
    app = TopApp(str(paths.socket), paths)
    assert not app.colour
    cell_text = app._cell("state", "busy", 8)
    assert isinstance(cell_text, Text) and not cell_text.spans and not cell_text.style
    monkeypatch.delenv("NO_COLOR")
    coloured = TopApp(str(paths.socket), paths)._cell("state", "busy", 8)
    assert coloured.style or coloured.spans
