"""`ccc run` end to end: the pty host runs the stand-in TUI under a real pseudo-terminal that
the test drives as the user's terminal, with a fake daemon routing messages to it.

Plus unit tests of the pure parts (draft tracking, delivery bytes, the idle rules).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import termios
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from ccc_statusd.session.keys import (
    PASTE_END,
    PASTE_START,
    DeliveryRefused,
    InputTracker,
    command_bytes,
    paste_bytes,
)
from ccc_statusd.session.pty_host import EVAL_ERROR, PtyHost, _exit_code

from .helpers import wait_until
from .session_fakes import (
    STEP_TIMEOUT_S,
    FakeDaemon,
    Session,
    short_tmpdir,
    spawn_ccc_run,
    stop_process,
)

# --- pure parts ---------------------------------------------------------------------------


def test_paste_bytes_normalises_line_breaks_and_strips_markers() -> None:
    assert paste_bytes("a\r\nb\rc\nd") == PASTE_START + b"a\nb\nc\nd" + PASTE_END
    assert paste_bytes("x\x1b[201~y\x1b[200~") == PASTE_START + b"x[201~y[200~" + PASTE_END
    assert paste_bytes("héllo") == PASTE_START + "héllo".encode() + PASTE_END
    with pytest.raises(DeliveryRefused):
        paste_bytes(" \r\n ")


def test_command_bytes() -> None:
    assert command_bytes("clear") == b"/clear"
    assert command_bytes("/compact", "keep the\nAPI notes\x1b") == b"/compact keep the API notes"
    with pytest.raises(DeliveryRefused):
        command_bytes("rm -rf")
    with pytest.raises(DeliveryRefused):
        command_bytes("/")


def test_input_tracker_draft() -> None:
    t = InputTracker()
    t.feed(b"hel", 1.0)
    assert t.has_draft and t.last_typed == 1.0
    t.feed(b"\x7f\x7f\x7f", 2.0)
    assert not t.has_draft
    t.feed(b"abc\r", 3.0)
    assert not t.has_draft  # submitted
    t.feed(b"abc", 4.0)
    t.feed(b"\x15", 4.1)  # Ctrl-U
    assert not t.has_draft
    t.feed(b"abc\x03", 5.0)  # Ctrl-C
    assert not t.has_draft
    # arrow keys, focus and cursor-position reports are not text and not typing
    t.feed(b"\x1b[A\x1bOB\x1b[I\x1b[12;40R\x1b]11;rgb:0/0/0\x07", 9.0)
    assert not t.has_draft and t.last_typed == 5.0 and t.last_input == 9.0
    # a paste split across reads, with a marker split too, is a draft
    t.feed(b"\x1b[20", 10.0)
    t.feed(b"0~some pasted\r text\x1b[2", 10.0)
    t.feed(b"01~", 10.0)
    assert t.draft_chars == len(b"some pasted\r text")
    t.feed(b"\r", 11.0)
    assert not t.has_draft
    t.feed("é".encode(), 12.0)
    assert t.has_draft


READY_SCREEN = (Path(__file__).parent / "data" / "screens" / "2.1.331" / "ready.ansi").read_bytes()


def _draw(host: PtyHost, ansi: bytes) -> None:
    host.screen.feed(b"\x1b[H\x1b[2J" + ansi.rstrip(b"\n").replace(b"\n", b"\r\n"))


def test_not_idle_reasons() -> None:
    host = PtyHost(-1, -1, typing_grace_s=2.0, quiet_s=1.0, winsize=(50, 200))
    host.started_at = 0.0
    assert "screen is blank" in (host.not_idle_reason(0.5, "idle") or "")
    _draw(host, READY_SCREEN)
    host.screen.feed(b"\x1b[48;3H")  # the cursor in the box, as captured
    assert host.not_idle_reason(0.5) is not None  # just started, state unknown
    assert host.not_idle_reason(0.5, "idle") is None
    assert host.not_idle_reason(1.5) is None
    host.last_output = 10.0
    assert "terminal was active" in (host.not_idle_reason(10.5) or "")
    assert host.not_idle_reason(10.5, "idle") is None
    host.tracker.feed(b"x", 20.0)
    assert "draft" in (host.not_idle_reason(30.0, "idle") or "")
    host.tracker.feed(b"\r", 21.0)
    assert "typed" in (host.not_idle_reason(22.0, "idle") or "")
    assert host.not_idle_reason(23.5, "idle") is None
    host.last_delivery = 30.0
    assert "another message" in (host.not_idle_reason(30.5, "idle") or "")
    assert host.not_idle_reason(31.5, "idle") is None
    # the daemon's "idle" never skips the screen check
    picker = Path(__file__).parent / "data" / "screens"
    _draw(host, (picker / "2.1.331" / "model_picker.ansi").read_bytes())
    assert "/model picker is open" in (host.not_idle_reason(40.0, "idle") or "")
    assert not host.input_idle(40.0)


def test_exit_code() -> None:
    assert _exit_code(7 << 8) == 7
    assert _exit_code(signal.SIGKILL) == 128 + signal.SIGKILL


# --- end to end under a real pty ----------------------------------------------------------


@pytest.fixture
async def run_session(nursery: trio.Nursery) -> AsyncIterator[Callable[..., Any]]:
    """Start ``ccc run -- standin_tui.py`` on a fresh pty with a fake daemon; yields a factory."""
    cleanups: list[Callable[[], None]] = []
    procs: list[trio.Process] = []

    async def start(**options: Any) -> Session:
        d = Path(short_tmpdir())
        cleanups.append(lambda: shutil.rmtree(d, ignore_errors=True))
        daemon = FakeDaemon(d / "daemon.sock")
        await nursery.start(daemon.serve)
        session = await spawn_ccc_run(nursery, d, fake=daemon, **options)
        procs.append(session.proc)
        cleanups.append(session.term.close)
        with trio.fail_after(STEP_TIMEOUT_S):
            await daemon.wait_client(session.iid)
        await session.ready()
        return session

    yield start
    for proc in procs:
        await stop_process(proc)
    for cleanup in cleanups:
        cleanup()


async def route_once_free(
    s: Session, msg: dict[str, Any], waits: tuple[str, ...] = ("just_delivered",)
) -> dict[str, Any]:
    """Route ``msg`` again while the session client declines it for one of the reasons in
    ``waits`` (its own time windows, running in its process: a declined message is not typed),
    and return its first other answer."""

    async def answer() -> dict[str, Any] | None:
        reply = await s.route(msg)
        declined = reply.get("status") == "not_idle"
        return None if declined and (reply.get("data") or {}).get("reason") in waits else reply

    reply: dict[str, Any] = await wait_until(answer, limit_s=STEP_TIMEOUT_S, interval_s=0.05)
    return reply


async def test_prompts_and_commands_are_delivered_once(run_session: Any) -> None:
    s: Session = await run_session()
    ready = s.records("ready")[0]
    assert ready["size"] == [33, 101]  # the initial window size reached the child
    assert ready["env"]["CCC_INTERNAL_ID"] == s.iid
    assert ready["env"]["CCC_CACHE_DIR"] == str(s.record.parent)
    reg = s.daemon.received[0]
    assert reg["type"] == "register" and reg["data"]["kind"] == "pty"
    assert reg["data"]["child_pid"] == ready["pid"]
    assert reg["data"]["capabilities"] == ["prompt", "command"]

    reply = await s.route({"type": "prompt", "text": "hello world", "data": {"state": "idle"}})
    assert reply.get("error") is None, reply
    assert reply["status"] == "submitted"
    assert reply["data"] == {"delivered_via": "pty", "confirmed": True}
    await s.wait_record(lambda r: r["event"] == "stop" and r["prompt"] == "hello world")

    # multi-line (with CRLF and a bare CR) and a long text: one prompt each, intact
    text = "line one\nline two\r\nline three\rline four"
    long_text = "x" * 1500
    reply = await route_once_free(s, {"type": "prompt", "text": text, "data": {"state": "idle"}})
    assert reply.get("error") is None, reply
    await s.wait_record(lambda r: r["event"] == "stop" and r["prompt"].startswith("line one"))
    reply = await route_once_free(
        s, {"type": "prompt", "text": long_text, "data": {"state": "idle"}}
    )
    assert reply.get("error") is None, reply
    await s.wait_record(lambda r: r["event"] == "stop" and r["prompt"] == long_text)

    reply = await route_once_free(
        s, {"type": "command", "name": "/clear", "data": {"state": "idle"}}
    )
    assert reply.get("error") is None, reply
    await s.wait_record(lambda r: r["event"] == "cleared")

    reply = await s.route({"type": "eval", "code": "1+1"})
    assert reply["error"] == EVAL_ERROR

    submits = [r["prompt"] for r in s.records("submit")]
    assert submits == [
        "hello world",
        "line one\nline two\nline three\nline four",
        long_text,
    ]
    assert [r["name"] for r in s.records("command")] == ["clear"]
    await s.term.type(b"/exit\r")
    assert await s.wait_exit() == 0


async def test_back_to_back_deliveries_wait_for_the_turn(run_session: Any) -> None:
    s: Session = await run_session(delivery_guard=5.0)
    first = await s.route({"type": "prompt", "text": "one", "data": {"state": "idle"}})
    assert first.get("error") is None
    second = await s.route({"type": "prompt", "text": "two", "data": {"state": "idle"}})
    assert second["status"] == "not_idle"
    await s.wait_record(lambda r: r["event"] == "stop")
    assert [r["prompt"] for r in s.records("submit")] == ["one"]


async def test_draft_declines_without_merging(run_session: Any) -> None:
    s: Session = await run_session(typing_grace=0.5)
    mark = len(s.term.output)
    await s.term.type(b"my dra")
    await s.term.wait_output(b"my dra", mark)
    # once the typing grace is over, the draft alone declines
    reply = await route_once_free(
        s, {"type": "prompt", "text": "injected", "data": {"state": "idle"}}, waits=("typing",)
    )
    assert reply["status"] == "not_idle"
    assert "draft" in reply["error"] and reply["data"] == {"reason": "draft"}
    # the user finishes and submits their own prompt: nothing was merged into it
    await s.term.type(b"ft\r")
    # typed just now: still declined
    reply = await s.route({"type": "prompt", "text": "injected", "data": {"state": "idle"}})
    assert reply["status"] == "not_idle" and "typed" in reply["error"]
    await s.wait_record(lambda r: r["event"] == "stop" and r["prompt"] == "my draft")
    reply = await route_once_free(
        s, {"type": "prompt", "text": "injected", "data": {"state": "idle"}}, waits=("typing",)
    )
    assert reply.get("error") is None, reply
    await s.wait_record(lambda r: r["event"] == "stop" and r["prompt"] == "injected")
    assert [r["prompt"] for r in s.records("submit")] == ["my draft", "injected"]


async def test_cleared_draft_sends_an_early_heartbeat(run_session: Any) -> None:
    s: Session = await run_session(typing_grace=0.2)
    mark = len(s.term.output)
    await s.term.type(b"half a thought")
    await s.term.wait_output(b"half a thought", mark)  # the session client has seen the keys
    reply = await route_once_free(
        s, {"type": "prompt", "text": "queued", "data": {"state": "idle"}}, waits=("typing",)
    )
    assert reply["status"] == "not_idle" and reply["data"] == {"reason": "draft"}
    assert not [m for m in s.daemon.received if m["type"] == "heartbeat"]
    await s.term.type(b"\x15")  # Ctrl-U: the user drops the draft (no hook fires for that)
    with trio.fail_after(STEP_TIMEOUT_S):
        beat = await s.daemon.wait_for(lambda m: m["type"] == "heartbeat")
    # long before the 30 s interval, and it says the input is free again
    assert beat["data"]["input_idle"] is True and beat["data"]["draft"] is False
    assert not s.records("submit")


async def test_unknown_state_needs_a_quiet_terminal(run_session: Any) -> None:
    s: Session = await run_session(quiet=1.0, typing_grace=0.1)
    mark = len(s.term.output)
    await s.term.type(b"\r")  # the stand-in redraws its prompt: the terminal is active
    await s.term.wait_output("❯ ".encode(), mark)
    # past the typing grace, well within the quiet period
    reply = await route_once_free(s, {"type": "prompt", "text": "early"}, waits=("typing",))
    assert reply["status"] == "not_idle" and "terminal was active" in reply["error"]
    reply = await route_once_free(s, {"type": "prompt", "text": "later"}, waits=("not_quiet",))
    assert reply.get("error") is None, reply
    await s.wait_record(lambda r: r["event"] == "stop" and r["prompt"] == "later")
    assert [r["prompt"] for r in s.records("submit")] == ["later"]


async def test_permission_dialog_never_gets_typed_into(run_session: Any) -> None:
    """The daemon queues while its hooks say "waiting"; the client alone also refuses while the
    terminal is active. Here the user opens the dialog and a delivery arrives without state."""
    s: Session = await run_session(quiet=5.0)
    await s.term.type(b"PERM please\r")
    await s.wait_record(lambda r: r["event"] == "dialog_open")
    reply = await s.route({"type": "prompt", "text": "queued one"})
    assert reply["status"] == "not_idle"
    assert not s.records("dialog_input") and not s.records("approved") and not s.records("denied")
    await s.term.type(b"\r")  # the user approves
    await s.wait_record(lambda r: r["event"] == "approved")
    assert [r["prompt"] for r in s.records("submit")] == ["PERM please"]


async def test_terminal_modes_restored_and_exit_status_propagated(run_session: Any) -> None:
    s: Session = await run_session(exit_code=7)
    # while running, the user's terminal is raw
    assert not termios.tcgetattr(s.term.slave)[3] & termios.ICANON
    await s.term.type(b"/exit\r")
    assert await s.wait_exit() == 7
    assert not (s.record.parent / f"run-{s.iid}.session").exists()  # removed on exit
    attrs = termios.tcgetattr(s.term.slave)
    assert attrs[3] & termios.ICANON and attrs[3] & termios.ECHO


async def test_child_killed(run_session: Any) -> None:
    s: Session = await run_session()
    before_pid = s.records("ready")[0]["pid"]
    os.kill(before_pid, signal.SIGKILL)
    assert await s.wait_exit() == 128 + signal.SIGKILL
    assert termios.tcgetattr(s.term.slave)[3] & termios.ICANON


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
async def test_signals_are_forwarded_and_modes_restored(run_session: Any, signum: int) -> None:
    s: Session = await run_session()
    s.proc.send_signal(signum)
    assert await s.wait_exit() == 128 + signum
    assert termios.tcgetattr(s.term.slave)[3] & termios.ICANON


async def test_without_a_terminal() -> None:
    """stdin /dev/null and stdout a pipe (CI, scripts): output passes, status propagates."""
    cache = Path(short_tmpdir())
    try:
        proc = await trio.run_process(
            [
                sys.executable,
                "-m",
                "ccc_statusd.session.pty_host",
                "--cache-dir",
                str(cache),
                "--",
                "sh",
                "-c",
                'echo "out:$CCC_INTERNAL_ID"; exit 5',
            ],
            stdin=subprocess.DEVNULL,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        assert proc.returncode == 5
        assert re.match(rb"out:[0-9a-f-]{36}\r?\n", proc.stdout), proc.stdout
        assert proc.stderr == b""
        missing = await trio.run_process(
            [
                sys.executable,
                "-m",
                "ccc_statusd.session.pty_host",
                "--cache-dir",
                str(cache),
                "--",
                "no-such-command-xyz",
            ],
            stdin=subprocess.DEVNULL,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        assert missing.returncode == 127
        assert b"command not found" in missing.stderr
    finally:
        shutil.rmtree(cache, ignore_errors=True)


async def test_window_size_follows(run_session: Any) -> None:
    s: Session = await run_session()
    s.term.set_size(50, 160)
    # The test's pty is not the host's controlling terminal, so the kernel does not signal it.
    s.proc.send_signal(signal.SIGWINCH)
    row = await s.wait_record(lambda r: r["event"] == "resize")
    assert row["size"] == [50, 160]


# --- the screen check (issue 15), on the stand-in's screens drawn from real captures ---------


async def _declined_for(s: Session, text: str, words: str, screen: str) -> None:
    reply = await s.route({"type": "prompt", "text": text, "data": {"state": "idle"}})
    assert reply["status"] == "not_idle", reply
    assert words in reply["error"] and reply["data"] == {"reason": "screen", "screen": screen}


async def test_model_picker_is_never_typed_into(run_session: Any) -> None:
    s: Session = await run_session(typing_grace=0.1)
    await s.term.type(b"/model")
    await trio.sleep(0.2)
    # a bare /word in the box: the user's draft (the / command menu is open over it)
    reply = await s.route({"type": "prompt", "text": "not now", "data": {"state": "idle"}})
    assert reply["status"] == "not_idle" and reply["data"]["reason"] == "draft", reply
    await s.term.type(b"\r")
    await s.wait_record(lambda r: r["event"] == "picker_open")
    await trio.sleep(0.2)
    # the daemon says "idle" (no hook fires for a picker): the screen says no
    await _declined_for(s, "not into the picker", "/model picker is open", "picker")
    assert not s.records("picker_input") and not s.records("model_set")
    beats = len([m for m in s.daemon.received if m["type"] == "heartbeat"])
    await s.term.type(b"\x1b")  # the user closes the picker
    await s.wait_record(lambda r: r["event"] == "picker_closed")
    # the host says at once that it is free again (the daemon retries its outbox)
    with trio.fail_after(STEP_TIMEOUT_S):
        while len([m for m in s.daemon.received if m["type"] == "heartbeat"]) <= beats:
            await s.daemon.changed.wait()
    assert s.daemon.received[-1]["data"]["screen"] == "ready"
    reply = await s.route({"type": "prompt", "text": "after the picker", "data": {"state": "idle"}})
    assert reply["status"] == "submitted", reply
    await s.wait_record(lambda r: r["event"] == "stop" and r["prompt"] == "after the picker")
    assert not s.records("model_set")


async def test_status_panel_and_dialog_are_never_typed_into(run_session: Any) -> None:
    s: Session = await run_session(typing_grace=0.1)
    reply = await s.route({"type": "command", "name": "status", "data": {"state": "idle"}})
    assert reply["status"] == "submitted", reply  # the panel opened: the command ran
    await s.wait_record(lambda r: r["event"] == "panel_open")
    await trio.sleep(0.4)  # past the guard after our own delivery
    await _declined_for(s, "not into the panel", "settings panel", "panel")
    await s.term.type(b"\x1b")
    await s.wait_record(lambda r: r["event"] == "panel_closed")
    await trio.sleep(1.1)  # past the guard after our own delivery
    await s.term.type(b"PERM please\r")
    await s.wait_record(lambda r: r["event"] == "dialog_open")
    await trio.sleep(0.2)
    await _declined_for(s, "not into the dialog", "permission dialog", "dialog")
    assert not s.records("panel_input") and not s.records("dialog_input")
    assert not s.records("approved")


async def test_busy_turn_waits_and_unconfirmed_typing_says_typed(run_session: Any) -> None:
    s: Session = await run_session(typing_grace=0.1)
    await s.term.type(b"SLOW2 work\r")
    await s.wait_record(lambda r: r["event"] == "submit")
    await trio.sleep(0.3)
    await _declined_for(s, "while busy", "working on a turn", "busy")
    await s.wait_record(lambda r: r["event"] == "stop")


async def test_typed_but_not_confirmed(run_session: Any) -> None:
    """A screen that does not change after the Enter (keys lost): "typed", with what was seen."""
    s: Session = await run_session(typing_grace=0.1, confirm=0.5)
    # Freeze the stand-in (SIGSTOP): it reads nothing and draws nothing.
    pid = s.records("ready")[0]["pid"]
    await trio.sleep(0.3)
    os.kill(pid, signal.SIGSTOP)
    try:
        reply = await s.route(
            {"type": "prompt", "text": "into the void", "data": {"state": "idle"}}
        )
    finally:
        os.kill(pid, signal.SIGCONT)
    assert reply["status"] == "typed", reply
    assert reply["data"]["confirmed"] is False
    assert "did not change" in reply["data"]["seen"]
