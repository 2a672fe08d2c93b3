"""Delivery into a tmux pane (adopted sessions), against a real tmux server on a private socket
running the stand-in TUI."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from ccc_statusd.session.keys import DeliveryRefused
from ccc_statusd.tmux_delivery import (
    PaneNotReady,
    TmuxDeliveryError,
    deliver_command_to_pane,
    deliver_to_pane,
    pane_alive,
    read_pane,
    socket_from_tmux_env,
)

from .helpers import wait_until
from .session_fakes import read_records, short_tmpdir

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

STANDIN = Path(__file__).with_name("standin_tui.py")
STEP_TIMEOUT_S = 10


class TmuxPane:
    def __init__(self, socket_name: str, pane: str, record: Path) -> None:
        self.socket_name = socket_name
        self.pane = pane
        self.record = record

    def records(self, event: str) -> list[dict[str, Any]]:
        return [r for r in read_records(self.record) if r["event"] == event]

    async def wait_record(self, event: str, count: int = 1) -> list[dict[str, Any]]:
        def enough() -> list[dict[str, Any]] | None:
            rows = self.records(event)
            return rows if len(rows) >= count else None

        rows: list[dict[str, Any]] = await wait_until(
            enough, limit_s=STEP_TIMEOUT_S, what=f"{count} {event!r} records"
        )
        return rows


@pytest.fixture
def tmux_pane() -> Iterator[TmuxPane]:
    d = Path(short_tmpdir())
    name = f"ccc-test-{uuid.uuid4().hex[:8]}"
    record = d / "record.jsonl"
    base = ["tmux", "-L", name, "-f", "/dev/null"]
    command = shlex.join([sys.executable, str(STANDIN), "--record", str(record)])
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE", "CCC_HOOK_CMD")}
    subprocess.run(
        [*base, "new-session", "-d", "-x", "120", "-y", "40", "-s", "t", command],
        check=True,
        env=env,
        timeout=10,
    )
    try:
        pane = subprocess.run(
            [*base, "display-message", "-p", "-t", "t", "#{pane_id}"],
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        yield TmuxPane(name, pane, record)
    finally:
        subprocess.run([*base, "kill-server"], capture_output=True, timeout=10, check=False)
        shutil.rmtree(d, ignore_errors=True)


async def test_paste_submits_once_multiline_intact(tmux_pane: TmuxPane) -> None:
    p = tmux_pane
    await p.wait_record("ready")
    assert await pane_alive(p.pane, socket_name=p.socket_name)
    result = await deliver_to_pane(p.pane, "hello from tmux", socket_name=p.socket_name)
    assert result == {"status": "submitted"}
    await p.wait_record("stop", 1)
    text = "first line\nsecond line\r\nthird line " + "z" * 300
    await deliver_to_pane(p.pane, text, socket_name=p.socket_name)
    await p.wait_record("stop", 2)
    prompts = [r["prompt"] for r in p.records("submit")]
    assert prompts == ["hello from tmux", "first line\nsecond line\nthird line " + "z" * 300]


async def test_command_and_errors(tmux_pane: TmuxPane) -> None:
    p = tmux_pane
    await p.wait_record("ready")
    result = await deliver_command_to_pane(p.pane, "/clear", socket_name=p.socket_name)
    assert result["status"] == "submitted"
    await p.wait_record("cleared")
    assert [r["name"] for r in p.records("command")] == ["clear"]
    with pytest.raises(DeliveryRefused):
        await deliver_to_pane(p.pane, " \n ", socket_name=p.socket_name)
    with pytest.raises(TmuxDeliveryError, match="tmux pane %999"):
        await deliver_to_pane("%999", "nobody there", socket_name=p.socket_name)
    assert not await pane_alive("%999", socket_name=p.socket_name)
    with pytest.raises(TmuxDeliveryError, match="was not found"):
        await deliver_to_pane(p.pane, "x", tmux="/nonexistent/tmux", socket_name=p.socket_name)
    # no buffer was left behind by the failed paste
    proc = await trio.run_process(
        ["tmux", "-L", p.socket_name, "list-buffers", "-F", "#{buffer_name}"],
        capture_stdout=True,
        check=False,
    )
    assert b"ccc-" not in proc.stdout
    assert not p.records("submit")


async def test_pane_dead_after_exit(tmux_pane: TmuxPane) -> None:
    p = tmux_pane
    await p.wait_record("ready")
    await trio.run_process(
        ["tmux", "-L", p.socket_name, "set-option", "-t", p.pane, "remain-on-exit", "on"]
    )
    await deliver_command_to_pane(p.pane, "exit", socket_name=p.socket_name)
    await p.wait_record("exit")

    async def pane_dead() -> bool:
        return not await pane_alive(p.pane, socket_name=p.socket_name)

    await wait_until(pane_dead, limit_s=STEP_TIMEOUT_S)


async def test_socket_path_from_tmux_env(tmux_pane: TmuxPane) -> None:
    """A pane id is found on its own server through the socket path in the hook's $TMUX."""
    p = tmux_pane
    await p.wait_record("ready")
    proc = await trio.run_process(
        ["tmux", "-L", p.socket_name, "display-message", "-p", "-t", p.pane, "#{socket_path}"],
        capture_stdout=True,
    )
    tmux_env = proc.stdout.decode().strip() + ",12345,0"
    socket_path = socket_from_tmux_env(tmux_env)
    assert socket_path is not None and socket_path.endswith(p.socket_name)
    await deliver_to_pane(p.pane, "by socket path", socket_name=socket_path)
    await p.wait_record("stop")
    assert [r["prompt"] for r in p.records("submit")] == ["by socket path"]
    assert socket_from_tmux_env(None) is None and socket_from_tmux_env("junk") is None


async def _tmux(p: TmuxPane, *args: str) -> None:
    await trio.run_process(["tmux", "-L", p.socket_name, *args], capture_stdout=True)


async def _wait_shown(p: TmuxPane, text: str) -> None:
    """Wait until the pane shows ``text`` (keys sent with send-keys arrive asynchronously)."""
    with trio.fail_after(STEP_TIMEOUT_S):
        while text not in (await read_pane(p.pane, socket_name=p.socket_name))[1]:  # noqa: ASYNC110 - a screen
            await trio.sleep(0.02)


async def _wait_refused(p: TmuxPane, words: str, kind: str) -> None:
    """The pane's screen refuses a delivery (polling: the stand-in redraws asynchronously)."""
    with trio.fail_after(STEP_TIMEOUT_S):
        while True:
            try:
                await deliver_to_pane(p.pane, "must wait", socket_name=p.socket_name)
            except PaneNotReady as exc:
                if words in exc.reason:
                    assert exc.kind == kind and "nothing was typed" in exc.reason
                    return
            else:
                raise AssertionError("a delivery was typed into a pane that was not ready")
            await trio.sleep(0.05)


async def test_draft_picker_panel_are_never_typed_into(tmux_pane: TmuxPane) -> None:
    p = tmux_pane
    await p.wait_record("ready")
    await _tmux(p, "send-keys", "-t", p.pane, "-l", "my draft")
    await _wait_shown(p, "❯ my draft")
    await _wait_refused(p, "holds a draft: 'my draft'", "draft")
    await _tmux(p, "send-keys", "-t", p.pane, "C-u")
    await _tmux(p, "send-keys", "-t", p.pane, "-l", "/mod")
    await _wait_shown(p, "/model ")
    await _wait_refused(p, "/ command menu is open", "menu")
    await _tmux(p, "send-keys", "-t", p.pane, "C-u")
    result = await deliver_command_to_pane(p.pane, "model", socket_name=p.socket_name)
    assert result["status"] == "submitted"  # the picker opened: the command ran
    await p.wait_record("picker_open")
    await _wait_refused(p, "/model picker is open", "picker")
    with pytest.raises(PaneNotReady):
        await deliver_command_to_pane(p.pane, "clear", socket_name=p.socket_name)
    assert not p.records("picker_input") and not p.records("model_set")
    await _tmux(p, "send-keys", "-t", p.pane, "Escape")
    await p.wait_record("picker_closed")
    with trio.fail_after(STEP_TIMEOUT_S):
        while True:
            try:
                result = await deliver_to_pane(
                    p.pane, "after the picker", socket_name=p.socket_name
                )
                break
            except PaneNotReady:
                await trio.sleep(0.05)
    assert result == {"status": "submitted"}
    await p.wait_record("stop")
    assert [r["prompt"] for r in p.records("submit")] == ["after the picker"]
    assert not p.records("model_set")


async def test_copy_mode_and_dialog(tmux_pane: TmuxPane) -> None:
    p = tmux_pane
    await p.wait_record("ready")
    await _tmux(p, "copy-mode", "-t", p.pane)
    await _wait_refused(p, "copy mode", "unknown")
    await _tmux(p, "send-keys", "-t", p.pane, "-X", "cancel")
    await deliver_to_pane(p.pane, "PERM ask", socket_name=p.socket_name)
    await p.wait_record("dialog_open")
    await _wait_refused(p, "permission dialog", "dialog")
    assert not p.records("dialog_input") and not p.records("approved")


FROZEN = (
    "import sys, time, tty; tty.setraw(0); "
    "sys.stdout.write(open(sys.argv[1]).read().rstrip('\\n').replace('\\n', '\\r\\n') "
    "+ '\\x1b[48;3H'); sys.stdout.flush(); time.sleep(60)"
)


async def test_unconfirmed_typing_says_typed() -> None:
    """A pane that looks like Claude Code's empty input box but ignores every key (a frozen
    program): the text is typed, the screen never shows it submitted, the answer is "typed"."""
    name = f"ccc-test-{uuid.uuid4().hex[:8]}"
    screen = Path(__file__).parent / "data" / "screens" / "2.1.331" / "ready.txt"
    base = ["tmux", "-L", name, "-f", "/dev/null"]
    command = shlex.join([sys.executable, "-c", FROZEN, str(screen)])
    await trio.run_process(
        [*base, "new-session", "-d", "-x", "200", "-y", "50", "-s", "t", command]
    )
    try:
        with trio.fail_after(STEP_TIMEOUT_S):
            while True:
                try:
                    result = await deliver_to_pane(
                        "t", "into the void", socket_name=name, confirm_s=0.5
                    )
                    break
                except PaneNotReady:
                    await trio.sleep(0.05)  # not drawn yet
        assert result["status"] == "typed" and "did not change" in result["seen"], result
    finally:
        await trio.run_process([*base, "kill-server"], check=False)
