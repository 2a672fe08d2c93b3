"""``ccc top``'s CPU cost: idle with 100 sessions, and while 100 sessions change state.

Blocking, self-contained: a daemon of its own (``--no-watchers``), 100 stand-in sessions made
known by their SessionStart hooks, the real ``ccc top`` in a real pseudo-terminal (120×40,
its output drained), and ``ccc watch`` (stdout to /dev/null) as the same-run baseline: the
cheapest client that reads every event. CPU is utime+stime from ``/proc/<pid>/stat``.

Phases: both clients connected and settled; idle (nothing changes, so only ``ccc top``'s 1 s
duration timer runs); churn (hooks alternating UserPromptSubmit/Stop round-robin over the
sessions at ``rate`` hooks/s; each hook is a state event and a hook event).

``python -m ccc_statusd.bench.top`` runs it alone and prints the rows.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path
from typing import Any

from .coldstart import venv_bin
from .load import proc_sample

SESSIONS = 100
START_DEADLINE_S = 20.0


def _sid(i: int) -> str:
    return f"{i:08x}-0000-4000-8000-{i:012x}"


class Hooks:
    """One connection sending hook messages and reading their replies (pipelined in batches)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(str(path))
        self.reader = self.sock.makefile("rb")

    def send(self, batch: list[tuple[str, str]]) -> None:
        lines = b"".join(
            json.dumps(
                {"type": "hook", "data": {"session_id": sid, "hook_event_name": ev}, "env": {}}
            ).encode()
            + b"\n"
            for sid, ev in batch
        )
        self.sock.sendall(lines)
        for _ in batch:
            self.reader.readline()

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def _query(path: Path, name: str) -> Any:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(path))
        s.sendall(json.dumps({"type": "query", "query": name}).encode() + b"\n")
        return json.loads(s.makefile().readline()).get("data")


def _wait(cond: Any, what: str, deadline_s: float = START_DEADLINE_S) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if cond():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"bench: {what} did not happen within {deadline_s:g} s")


def _subscribers(path: Path) -> int:
    return sum(c["kind"] == "subscriber" for c in _query(path, "active_connections") or [])


def _start_top(sock: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        [str(venv_bin() / "ccc"), "--socket", str(sock), "top"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**env, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"},
        start_new_session=True,
    )
    os.close(slave)

    def drain() -> None:
        while True:
            try:
                if not os.read(master, 65536):
                    return
            except OSError:
                return

    threading.Thread(target=drain, daemon=True).start()
    return proc, master


def _cpu(pid: int) -> float:
    return proc_sample(pid).cpu_s


def run_top_bench(
    root: Path, *, idle_s: float = 5.0, churn_s: float = 5.0, rate: int = 200
) -> list[dict[str, Any]]:
    cache = root / "top"
    cache.mkdir(mode=0o700)
    sock = cache / "daemon.sock"
    env = {**os.environ, "CCC_CACHE_DIR": str(cache)}
    env.pop("NO_COLOR", None)
    daemon = subprocess.Popen(
        [str(venv_bin() / "ccc-statusd"), "--cache-dir", str(cache), "--no-watchers"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    top: subprocess.Popen[bytes] | None = None
    watch: subprocess.Popen[bytes] | None = None
    master = -1
    hooks: Hooks | None = None
    try:
        _wait(lambda: _query(sock, "ping") == "pong", "the daemon's start")
        hooks = Hooks(sock)
        sids = [_sid(i) for i in range(SESSIONS)]
        hooks.send([(sid, "SessionStart") for sid in sids])
        top, master = _start_top(sock, env)
        watch = subprocess.Popen(
            [str(venv_bin() / "ccc"), "--socket", str(sock), "watch"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        _wait(lambda: _subscribers(sock) >= 2, "ccc top and ccc watch subscribing")
        time.sleep(2.0)  # start-up work (the first full draw, imports) is not what we measure

        t_cpu, w_cpu, t0 = _cpu(top.pid), _cpu(watch.pid), time.monotonic()
        time.sleep(idle_s)
        wall = time.monotonic() - t0
        idle_top = (_cpu(top.pid) - t_cpu) / wall
        idle_watch = (_cpu(watch.pid) - w_cpu) / wall

        t_cpu, w_cpu, t0 = _cpu(top.pid), _cpu(watch.pid), time.monotonic()
        sent, step, busy = 0, max(rate // 20, 1), False
        while time.monotonic() - t0 < churn_s:
            event = "Stop" if busy else "UserPromptSubmit"
            batch = [(sids[(sent + i) % SESSIONS], event) for i in range(step)]
            hooks.send(batch)
            sent += step
            if sent % SESSIONS == 0:
                busy = not busy
            due = t0 + sent / rate
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
        time.sleep(1.0)  # let both clients drain what was sent
        wall = time.monotonic() - t0
        churn_top = (_cpu(top.pid) - t_cpu) / wall
        churn_watch = (_cpu(watch.pid) - w_cpu) / wall
        events = sent * 2  # each hook: a state event and a hook event
    finally:
        for proc in (top, watch):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if master >= 0:
            os.close(master)
        if hooks is not None:
            hooks.close()
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
    per_event_us = churn_top * wall / events * 1e6 if events else float("nan")
    return [
        {
            "figure": f"`ccc top` idle CPU, {SESSIONS} sessions, nothing changing ({idle_s:g} s)",
            "ours": f"{idle_top * 100:.2f}% of a CPU",
            "baseline": f"{idle_watch * 100:.2f}% (ccc watch)",
            "ratio": None,
            "target": "≤ 1% of a CPU",
            "result": "pass" if idle_top <= 0.01 else "FAIL",
        },
        {
            "figure": f"`ccc top` CPU while {SESSIONS} sessions change state ({rate} hooks/s)",
            "ours": f"{churn_top * 100:.1f}% of a CPU ({per_event_us:.0f} µs per event)",
            "baseline": f"{churn_watch * 100:.1f}% (ccc watch)",
            "ratio": churn_top / churn_watch if churn_watch > 0 else None,
            "target": "info",
            "result": "info",
        },
    ]


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="cccbt-", dir="/tmp"))
    try:
        rows = run_top_bench(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for row in rows:
        ratio = "—" if row["ratio"] is None else f"{row['ratio']:.2f}×"
        print(
            f"| {row['figure']} | {row['ours']} | {row['baseline']} | {ratio} | {row['result']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
