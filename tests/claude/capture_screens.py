"""Capture the screens of the real Claude Code that the screen classifier (ccc_statusd/screen.py)
is tested on: `python tests/claude/capture_screens.py [VERSION...]` writes
tests/data/screens/<version>/<name>.txt (plain `capture-pane -p`) and <name>.ansi (`-e`).

Stdlib only; uses the harness (offline, fake API, private tmux server). Each screen is captured
after the screen has stopped changing, so a capture is what a classifier would see at rest.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from tests.claude.fake_anthropic import FakeAnthropic  # noqa: E402
from tests.claude.harness import (  # noqa: E402
    PINNED_VERSIONS,
    TmuxSession,
    cleanup_claude_tmp,
    installed_claude_code,
    is_native,
    make_claude_home_obj,
    short_tmpdir,
    wait_ready,
)

OUT = HERE.parent / "data" / "screens"
SETTLE_S = 0.6


def settle(pane: TmuxSession, timeout_s: float = 8.0) -> str:
    """The screen once it has not changed for SETTLE_S."""
    last = pane.capture()
    since = time.monotonic()
    deadline = since + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = pane.capture()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= SETTLE_S:
            break
    return last


def save(pane: TmuxSession, version: str, name: str, *, wait: bool = True) -> None:
    if wait:
        settle(pane)
    d = OUT / version
    d.mkdir(parents=True, exist_ok=True)
    plain = pane._tmux("capture-pane", "-p", "-t", pane.target).stdout
    ansi = pane._tmux("capture-pane", "-p", "-e", "-t", pane.target).stdout
    cursor = pane._display("#{cursor_x},#{cursor_y}")
    (d / f"{name}.txt").write_text(plain)
    (d / f"{name}.ansi").write_text(ansi)
    (d / f"{name}.cursor").write_text(cursor + "\n")
    print(f"{version} {name}: {len(plain.splitlines())} lines, cursor {cursor}")


def run_version(version: str, only: set[str]) -> None:
    binary = installed_claude_code(version)
    if binary is None:
        print(f"{version} not installed; run tests/claude/install_claude.sh", file=sys.stderr)
        return
    manual = "manual" if is_native(version) else "default"
    with short_tmpdir() as tmp, FakeAnthropic(log_path=tmp / "api.jsonl") as api:
        home = make_claude_home_obj(tmp, tmp / "work", base_url=api.url)

        def session(*args: str) -> TmuxSession:
            pane = TmuxSession().start([str(binary), *args], env=home.env, cwd=home.cwd)
            wait_ready(pane)
            settle(pane)
            if not is_native(version):
                # Measured: 2.1.112 draws its input box ~1-2 s before it takes keys; keys typed
                # earlier are lost.
                time.sleep(3.0)
            return pane

        def scene(name: str, fn: Callable[[TmuxSession], None], *args: str) -> None:
            if only and name not in only:
                return
            pane = session(*args)
            try:
                fn(pane)
            finally:
                home.pids.update(pane.pids_seen)
                pane.kill()

        def ready(p: TmuxSession) -> None:
            save(p, version, "ready")

        def draft(p: TmuxSession) -> None:
            p.send_text("my draft text")
            save(p, version, "draft")
            p.send_text("\nsecond line")
            save(p, version, "draft_multiline")

        def slash(p: TmuxSession) -> None:
            p.send_text("/")
            save(p, version, "slash_menu")
            p.send_text("mod")
            save(p, version, "slash_menu_filtered")

        def model(p: TmuxSession) -> None:
            p.submit("/model")
            save(p, version, "model_picker")

        def status(p: TmuxSession) -> None:
            p.submit("/status")
            save(p, version, "status_panel")

        def config(p: TmuxSession) -> None:
            p.submit("/config")
            save(p, version, "config_panel")

        def helpp(p: TmuxSession) -> None:
            p.submit("/help")
            save(p, version, "help_panel")

        def permission(p: TmuxSession) -> None:
            p.submit(f"TOOL: touch {home.cwd}/made-by-tool")
            p.wait_for(r"Do you want to proceed\?", 30)
            save(p, version, "permission_dialog")

        def busy(p: TmuxSession) -> None:
            p.submit("SLOW8: take your time")
            time.sleep(2.0)
            save(p, version, "busy", wait=False)
            p.send_text("typed while busy")
            p.wait_for("typed while busy", 5)
            time.sleep(0.3)
            save(p, version, "busy_with_draft", wait=False)

        def answered(p: TmuxSession) -> None:
            p.submit("hello there")
            p.wait_for(r"ECHO: hello there", 30)
            save(p, version, "ready_after_turn")

        def shortcuts(p: TmuxSession) -> None:
            p.send_text("?")
            save(p, version, "shortcuts_help")

        scene("ready", ready)
        scene("draft", draft)
        scene("slash", slash)
        scene("model", model)
        scene("status", status)
        scene("config", config)
        scene("help", helpp)
        scene("permission", permission, "--permission-mode", manual)
        scene("busy", busy)
        scene("answered", answered)
        scene("shortcuts", shortcuts)
        cleanup_claude_tmp(home.cwd, home.pids)


def main(argv: list[str]) -> int:
    versions = [a for a in argv if a[0].isdigit()] or list(PINNED_VERSIONS)
    only = {a for a in argv if not a[0].isdigit()}
    for v in versions:
        run_version(v, only)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
