"""What the screen check (issue 15) costs per delivery, next to a bare delivery's no-op.

Owns one bench phase, pure CPU, in this process: a pyte screen model (200x50, the size the
end-to-end tests use) shows Claude Code's input box; per "delivery" the check is one redraw fed
to the model plus one classification (what ``ccc run`` does before typing), measured against
what a bare delivery costs anyway (the paste, then Enter ``ENTER_DELAY_S`` later). Plus, when tmux is
installed, one ``capture-pane`` + classification of a real pane (what an adopted session costs)
against a bare ``tmux display-message`` round trip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from typing import Any

from ..screen import classify
from ..session.pty_host import ENTER_DELAY_S
from ..session.screen_model import ScreenModel

ROWS, COLS = 50, 200


def _box_screen(draft: str = "") -> bytes:
    """A full redraw of Claude Code 2.1.331's idle screen (transcript, box, footer)."""
    lines = [f"● ECHO: line {i}" for i in range(ROWS - 4)]
    lines += ["─" * COLS, "❯\xa0" + draft, "─" * COLS, "  ⏵⏵ auto mode on (shift+tab to cycle)"]
    cursor = f"\x1b[{ROWS - 2};{3 + len(draft)}H"
    return ("\x1b[H\x1b[2J" + "\r\n".join(lines) + cursor).encode()


def _per_op_us(fn: Any, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def pty_check_rows(n: int) -> list[dict[str, Any]]:
    model = ScreenModel(ROWS, COLS)
    redraw = _box_screen()
    model.feed(redraw)
    assert model.classify().ready, model.classify()

    def check() -> None:
        model.feed(b"\x1b[48;3H")  # the smallest change: the next check cannot use the cache
        if not model.classify().ready:
            raise AssertionError("the bench screen is not ready")

    check_us = _per_op_us(check, n)
    bare_us = ENTER_DELAY_S * 1e6
    t0 = time.process_time()
    for _ in range(20):
        model.feed(redraw)
    feed_s = (time.process_time() - t0) / 20
    mb_s = len(redraw) / feed_s / 1e6 if feed_s else float("nan")
    return [
        {
            "figure": "screen check per delivery, ccc run (pyte 200x50: classify after a feed)",
            "ours": f"{check_us:.0f} µs",
            "baseline": f"{bare_us / 1000:.0f} ms (bare delivery: the Enter delay)",
            "ratio": check_us / bare_us,
            "target": "< 5 ms",
            "result": "pass" if check_us < 5000 else "FAIL",
        },
        {
            "figure": "screen model feed (a full 200x50 redraw)",
            "ours": f"{feed_s * 1000:.1f} ms ({mb_s:.2f} MB/s)",
            "target": "info",
            "result": "info",
        },
    ]


def tmux_check_rows(n: int) -> list[dict[str, Any]]:
    """capture-pane + classify vs a bare tmux round trip, on a private tmux server."""
    if shutil.which("tmux") is None:
        return []
    name = f"cccb-{uuid.uuid4().hex[:8]}"
    base = ["tmux", "-L", name, "-f", "/dev/null"]
    screen = _box_screen().decode()
    show = f"import sys,time; sys.stdout.write({screen!r}); sys.stdout.flush(); time.sleep(600)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
    subprocess.run(
        [*base, "new-session", "-d", "-x", str(COLS), "-y", str(ROWS), sys.executable, "-c", show],
        check=True,
        env=env,
        timeout=10,
    )
    try:
        time.sleep(0.5)
        target = ["-t", "%0"]
        capture = [*base, "capture-pane", "-p", *target, ";", "display-message", "-p", *target,
                   "#{cursor_x},#{cursor_y},#{pane_in_mode}"]  # fmt: skip
        bare = [*base, "display-message", "-p", *target, "#{pane_id}"]

        def check() -> None:
            out = subprocess.run(capture, capture_output=True, text=True, env=env, check=True)
            lines = out.stdout.rstrip("\n").split("\n")
            x, y, _ = lines.pop().split(",")
            classify(lines, (int(x), int(y)))

        def plain() -> None:
            subprocess.run(bare, capture_output=True, env=env, check=True)

        check_us = _per_op_us(check, n)
        bare_us = _per_op_us(plain, n)
    finally:
        subprocess.run([*base, "kill-server"], capture_output=True, env=env, check=False)
    return [
        {
            "figure": "screen check per delivery, tmux pane (capture-pane + classify)",
            "ours": f"{check_us / 1000:.2f} ms",
            "baseline": f"{bare_us / 1000:.2f} ms (one bare tmux call)",
            "ratio": check_us / bare_us,
            "target": "info",
            "result": "info",
        }
    ]


def screen_rows(quick: bool) -> list[dict[str, Any]]:
    return pty_check_rows(200 if quick else 2000) + tmux_check_rows(10 if quick else 50)
