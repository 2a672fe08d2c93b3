"""A throwaway OpenSSH server on the loopback, for the remote-host tests and ``make bench``.

``Sshd(d)`` makes (or reuses) a host key and a user key in ``d``, writes an ``ssh_config`` whose
every host is this server (``StrictHostKeyChecking yes`` against a generated known_hosts), and
runs ``sshd -D -p <free port> -o ListenAddress=127.0.0.1 …`` with an empty config file (not the
system's). ``stop()`` ends it and every connection it serves, as a host going down would.
Needs root (sshd switches to the logged-in user) and Debian's ``openssh-server``;
:func:`why_not` says why it cannot run, for a skip or an ``n/a`` row.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SSHD = shutil.which("sshd", path="/usr/sbin:/usr/local/sbin:/sbin:" + os.environ.get("PATH", ""))


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def why_not() -> str | None:
    if os.geteuid() != 0:
        return "sshd needs root here (it switches to the logged-in user)"
    if not SSHD or not shutil.which("ssh") or not shutil.which("ssh-keygen"):
        return "OpenSSH (openssh-server) is not installed: apt-get install -y openssh-server"
    return None


class Sshd:
    """A throwaway sshd on 127.0.0.1:<port>, keys and config in ``d``."""

    def __init__(self, d: Path) -> None:
        self.d = d
        self.port = free_port()
        for key in ("hostkey", "userkey"):
            if not (d / key).exists():
                subprocess.run(
                    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True
                )
        shutil.copy(d / "userkey.pub", d / "authorized_keys")
        (d / "sshd_config").write_text("")  # not the system's: only what the command line says
        hostpub = (d / "hostkey.pub").read_text().split()[:2]
        (d / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {' '.join(hostpub)}\n")
        (d / "ssh_config").write_text(
            "Host *\n"
            "  HostName 127.0.0.1\n"
            f"  Port {self.port}\n"
            "  User root\n"
            f"  IdentityFile {d}/userkey\n"
            "  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {d}/known_hosts\n"
            "  StrictHostKeyChecking yes\n"
        )
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation dir
        assert SSHD is not None
        self._log = open(d / "sshd.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                SSHD,
                "-D",
                "-e",
                "-f",
                str(d / "sshd_config"),
                "-p",
                str(self.port),
                "-o",
                "ListenAddress=127.0.0.1",
                "-o",
                f"HostKey={d}/hostkey",
                "-o",
                f"AuthorizedKeysFile={d}/authorized_keys",
                "-o",
                "StrictModes=no",
                "-o",
                f"PidFile={d}/sshd.pid",
                "-o",
                "UsePAM=no",
                "-o",
                "PasswordAuthentication=no",
                "-o",
                "KbdInteractiveAuthentication=no",
                "-o",
                "PermitRootLogin=prohibit-password",
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert self.proc.poll() is None, (d / "sshd.log").read_text()
                assert time.monotonic() < deadline, "sshd did not start"
                time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server and every connection it serves (as a host going down would):
        the connections' processes are its descendants, found by pid and ended first."""
        pids = [*descendants(self.proc.pid), self.proc.pid]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        self.proc.wait(10)
        self._log.close()
        deadline = time.monotonic() + 5
        for pid in pids[:-1]:  # ours, by pid: a connection's process that ignored SIGTERM
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), deepest last."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out
