"""The ``ccc --host`` round trip next to the local one (issue 20), for ``make bench``.

Over a throwaway loopback sshd (:mod:`.sshd`) and a second daemon standing in for the remote
host, each figure is the median wall time of ``runs`` complete ``ccc`` invocations:

- local: ``ccc sessions --json`` / ``ccc prompt`` against the local daemon (the baseline);
- ``--host``, shared: the same through ``ssh`` with connection sharing (ControlMaster), the
  design ``ccc --host`` uses;
- ``--host``, not shared: a new SSH connection (handshake, key exchange, auth) every call;
- forwarded socket: the alternative design, a ``ssh -N -L local.sock:remote.sock`` kept up
  and the local ``ccc --socket local.sock`` talking through it (``prompt`` only: ``schedule``
  and the degraded reads cannot work that way, which is part of why exec was chosen).

The loopback has no network latency: a real link adds its round trip time to every remote row
(one RTT shared, several for a new connection). Rows are ``info`` (no targets). Without root or
sshd the rows say why (n/a).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from .sshd import Sshd, why_not

SESSION = "b3a7c0de-0000-4000-8000-00000000b20e"


def _bin() -> Path:
    return Path(sys.prefix) / "bin"


def _wait_ping(sock: Path, proc: subprocess.Popen[bytes] | None, limit_s: float = 20) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(1)
        try:
            s.connect(str(sock))
            s.sendall(b'{"type":"query","query":"ping"}\n')
            if b"pong" in s.recv(65536):
                return
        except OSError:
            pass
        finally:
            s.close()
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited early")
        time.sleep(0.02)
    raise RuntimeError(f"nothing answers on {sock}")


class _Responder:
    """A session client that answers every routed message (the transport is what we time)."""

    def __init__(self, sock: Path) -> None:
        self.conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.conn.connect(str(sock))
        self.reader = self.conn.makefile("rb")
        msg = {
            "type": "register",
            "internal_id": f"iid-bench-{uuid.uuid4().hex[:6]}",
            "session_id": SESSION,
            "data": {"kind": "pty"},
        }
        self.conn.sendall(json.dumps(msg).encode() + b"\n")
        self.reader.readline()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            for line in self.reader:
                msg = json.loads(line)
                if msg.get("type") != "response":
                    reply = {"type": "response", "request_id": msg.get("request_id"), "data": {}}
                    self.conn.sendall(json.dumps(reply).encode() + b"\n")
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        try:
            self.conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(5)
        self.reader.close()
        self.conn.close()


def _median_ms(cmd: list[str], env: dict[str, str], runs: int) -> tuple[float, int]:
    times: list[float] = []
    failures = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, env=env, capture_output=True, timeout=60)
        times.append(time.perf_counter() - t0)
        failures += r.returncode != 0
    return statistics.median(times) * 1000, failures


def measure(root: Path, runs: int) -> list[dict[str, Any]]:
    """The rows (``Row`` fields as dicts); never raises for a missing sshd."""
    why = why_not()
    figures = [
        "`ssh host true` alone, shared connection",
        "`ccc --host` sessions, shared connection",
        "`ccc --host` sessions, new connection each",
        "`ccc --host` prompt, shared connection",
        "`ccc --host` prompt, new connection each",
        "`ccc prompt` via a forwarded socket (ssh -L)",
    ]
    if why is not None:
        return [{"figure": f, "ours": f"n/a ({why})"} for f in figures]
    d = root / "ssh"
    d.mkdir(mode=0o700)
    local, far = d / "l", d / "f"
    local.mkdir(mode=0o700)
    far.mkdir(mode=0o700)
    sshd = Sshd(d)
    ccc = str(_bin() / "ccc")
    daemons = []
    for cache in (local, far):
        proc = subprocess.Popen(
            [str(_bin() / "ccc-statusd"), "--cache-dir", str(cache), "--no-watchers"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        daemons.append(proc)
        _wait_ping(cache / "daemon.sock", proc)
    responders = [_Responder(local / "daemon.sock"), _Responder(far / "daemon.sock")]
    (d / "hosts").write_text(
        f"box ssh=box ccc={ccc} cache_dir={far} ssh_config={d}/ssh_config\n"
        f"cold ssh=cold ccc={ccc} cache_dir={far} ssh_config={d}/ssh_config share=no\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CCC_", "CLAUDE", "TMUX"))}
    env.update(CCC_CACHE_DIR=str(local), CCC_HOSTS_FILE=str(d / "hosts"), NO_COLOR="1")
    fwd: subprocess.Popen[bytes] | None = None
    rows: list[dict[str, Any]] = []
    try:
        local_sessions, _ = _median_ms([ccc, "sessions", "--json"], env, runs)
        local_prompt, _ = _median_ms([ccc, "prompt", SESSION[:8], "bench"], env, runs)
        subprocess.run([ccc, "--host", "box", "status"], env=env, capture_output=True, timeout=60)
        # The hop alone (includes the remote login shell's start-up: its rc files count).
        hop = ["ssh", "-F", f"{d}/ssh_config", "-o", f"ControlPath={local}-ssh/%C", "box", "true"]
        ms, failed = _median_ms(hop, env, runs)
        rows.append(_row(figures[0], ms, failed, local_prompt, "prompt", runs))
        cases = [
            (figures[1], ["--host", "box", "sessions", "--json"], local_sessions, "sessions"),
            (figures[2], ["--host", "cold", "sessions", "--json"], local_sessions, "sessions"),
            (figures[3], ["prompt", f"box:{SESSION[:8]}", "bench"], local_prompt, "prompt"),
            (figures[4], ["prompt", f"cold:{SESSION[:8]}", "bench"], local_prompt, "prompt"),
        ]
        for figure, args, base, what in cases:
            ms, failed = _median_ms([ccc, *args], env, runs)
            rows.append(_row(figure, ms, failed, base, what, runs))
        # The alternative: one long-lived forward, then plain local calls through it.
        fwd_sock = d / "fwd.sock"
        fwd = subprocess.Popen(
            ["ssh", "-F", f"{d}/ssh_config", "-N", "-o", "ExitOnForwardFailure=yes"]
            + ["-L", f"{fwd_sock}:{far}/daemon.sock", "box"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while not fwd_sock.exists() and time.monotonic() < deadline and fwd.poll() is None:
            time.sleep(0.02)
        ms, failed = _median_ms(
            [ccc, "--socket", str(fwd_sock), "prompt", SESSION[:8], "bench"], env, runs
        )
        rows.append(_row(figures[5], ms, failed, local_prompt, "prompt", runs))
    finally:
        if fwd is not None:
            fwd.send_signal(signal.SIGTERM)
            fwd.wait(10)
        subprocess.run(
            ["ssh", "-F", f"{d}/ssh_config", "-o", f"ControlPath={local}-ssh/%C"]
            + ["-O", "exit", "box"],
            capture_output=True,
            timeout=10,
        )
        for r in responders:
            r.close()
        for p in daemons:
            p.send_signal(signal.SIGTERM)
            p.wait(10)
        sshd.stop()
        shutil.rmtree(d, ignore_errors=True)
    return rows


def _row(figure: str, ms: float, failed: int, base: float, what: str, runs: int) -> dict[str, Any]:
    fail = f", {failed} failed" if failed else ""
    return {
        "figure": f"{figure} (median of {runs})",
        "ours": f"{ms:.0f} ms{fail}",
        "baseline": f"{base:.0f} ms (local `ccc {what}`)",
        "ratio": ms / base if base else None,
    }


if __name__ == "__main__":
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="cccr-", dir="/tmp"))
    try:
        for row in measure(tmp, int(sys.argv[1]) if len(sys.argv) > 1 else 10):
            print(row)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
