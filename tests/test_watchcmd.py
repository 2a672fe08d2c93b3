"""``ccc watch`` as a real process against a real subprocess daemon, across a restart."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from ccc_statusd.paths import Paths

from .test_daemon_process import start, stop

SID = "6656f299-72c7-4382-8647-f94b8f7faaf3"


def send(path: Path, msg: dict[str, Any]) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(path))
        s.sendall(json.dumps(msg).encode() + b"\n")
        return json.loads(s.makefile().readline())


def hook(path: Path, event: str, **payload: Any) -> None:
    data = {"session_id": SID, "hook_event_name": event, **payload}
    assert send(path, {"type": "hook", "data": data, "env": {}}).get("error") is None


class Lines:
    """A stream's lines, read on a thread, waited for with a deadline (never a fixed sleep)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.q: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.thread.start()

    def _pump(self, stream: IO[bytes]) -> None:
        with stream:
            for raw in stream:
                self.q.put(raw.decode("utf-8", "replace").rstrip("\n"))

    def wait_for(self, needle: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.q.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if needle in line:
                return line
        raise AssertionError(f"no line with {needle!r} within {timeout} s; saw {self.seen}")


def watch(paths: Paths, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "ccc_statusd.cli", "--socket", str(paths.socket), "watch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def wait_subscribed(paths: Paths, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conns = send(paths.socket, {"type": "query", "query": "active_connections"})["data"]
        if any(c["kind"] == "subscriber" for c in conns or []):
            return
        time.sleep(0.02)
    raise AssertionError("ccc watch did not subscribe")


def test_watch_survives_a_daemon_restart(paths: Paths) -> None:
    daemon = start(paths)
    proc = watch(paths)
    out, err = Lines(proc.stdout), Lines(proc.stderr)  # type: ignore[arg-type]
    try:
        wait_subscribed(paths)
        hook(paths.socket, "SessionStart", source="startup")
        out.wait_for("6656f299 is idle")
        hook(paths.socket, "UserPromptSubmit", prompt="hi")
        hook(paths.socket, "UserPromptSubmit", prompt="hi")  # the same fact twice
        out.wait_for("6656f299 is busy after UserPromptSubmit")
        stop(daemon)
        err.wait_for("lost the daemon")
        daemon = start(paths)
        err.wait_for("the daemon is back")
        hook(paths.socket, "Stop")
        line = out.wait_for("is idle after Stop")
        assert line.split()[1] == "6656f299"
        hook(paths.socket, "SessionEnd", reason="exit")
        hook(paths.socket, "SessionEnd", reason="exit")
        out.wait_for("ended after SessionEnd")
        hook(paths.socket, "Notification", notification_type="idle_prompt")
        out.wait_for("hook Notification idle_prompt")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        out.thread.join(5)
        err.thread.join(5)
        stop(daemon)
    # One line per fact: busy once, ended once, SessionEnd's hook line at most once.
    assert sum("is busy" in line for line in out.seen) == 1, out.seen
    assert sum("ended" in line for line in out.seen) == 1, out.seen
    assert sum("hook SessionEnd" in line for line in out.seen) <= 1, out.seen
    assert not any("{" in line for line in out.seen), out.seen
    assert proc.returncode == 0


def test_watch_waits_for_a_daemon_that_is_not_running_yet(paths: Paths) -> None:
    proc = watch(paths, "--json")
    err = Lines(proc.stderr)  # type: ignore[arg-type]
    out = Lines(proc.stdout)  # type: ignore[arg-type]
    daemon = None
    try:
        err.wait_for("waiting for it")
        daemon = start(paths)
        err.wait_for("the daemon is back")
        hook(paths.socket, "SessionStart", source="startup")
        event = json.loads(out.wait_for('"event": "state"'))
        assert event["session_id"] == SID and event["state"] == "idle"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        out.thread.join(5)
        err.thread.join(5)
        if daemon is not None:
            stop(daemon)


def test_watch_of_an_unknown_session_says_so(paths: Paths) -> None:
    daemon = start(paths)
    try:
        proc = watch(paths, "zzzz9999")
        _, err = proc.communicate(timeout=20)
    finally:
        stop(daemon)
    assert proc.returncode == 1
    assert b"zzzz9999" in err
