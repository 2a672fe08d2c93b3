"""``ccc --host``, ``HOST:SESSION`` and ``--all-hosts`` (remote.py) through a real OpenSSH server.

A throwaway ``sshd`` on the loopback (host key and user key made here, ``-o ListenAddress=
127.0.0.1``, run as root) stands in for a remote machine, and a second daemon with its own cache
dir for that machine's daemon; the hosts file points ``ccc`` at it (``cache_dir=``), the
ssh_config at the throwaway keys (``StrictHostKeyChecking yes`` against a generated
known_hosts). Without root or ``sshd`` those tests skip, saying why (``.ci/run`` installs it).
The pure parts (hosts file, argv, quoting, output cleaning) are tested first, without ssh.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ccc_statusd import remote
from ccc_statusd.bench.sshd import Sshd, free_port, why_not
from ccc_statusd.remote import Host, RemoteUsageError

from .fixtures import hook

BIN = Path(sys.executable).parent
CCC = str(BIN / "ccc")


# --- pure parts -----------------------------------------------------------------------------


def test_parse_hosts() -> None:
    text = """
    # comment
    devbox
    build  ssh=me@build.example.com  ccc=~/.local/bin/ccc  cache_dir=/srv/ccc   # trailing
    box ssh_config="/tmp/my cfg"
    """
    hosts = remote.parse_hosts(text, "hosts")
    assert hosts == [
        Host("devbox", "devbox"),
        Host("build", "me@build.example.com", "~/.local/bin/ccc", "/srv/ccc"),
        Host("box", "box", ssh_config="/tmp/my cfg"),
    ]


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("bad/name", "not a host name"),
        ("local", "not a host name"),
        ("a\na", "listed twice"),
        ("a port=22", "not one of"),
        ("a ssh=", "not one of"),
        ("a ssh=-oProxyCommand=x", "not a host name"),
        ("a 'unclosed", "quoting"),
    ],
)
def test_parse_hosts_refuses(line: str, says: str) -> None:
    with pytest.raises(ValueError) as exc:
        remote.parse_hosts(line, "hosts")
    assert says in str(exc.value) and ("hosts:" in str(exc.value) or "not a host" in str(exc.value))


def test_hosts_file_location(tmp_path: Path) -> None:
    assert remote.hosts_file({"CCC_HOSTS_FILE": "/x/h"}) == Path("/x/h")
    assert remote.hosts_file({"XDG_CONFIG_HOME": "/c"}) == Path("/c/ccc/hosts")
    assert remote.hosts_file({"HOME": "/home/me"}) == Path("/home/me/.config/ccc/hosts")
    assert remote.load_hosts({"CCC_HOSTS_FILE": str(tmp_path / "none")}) == []


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["sessions"], None),
        (["prompt", "abcd", "fix: the bug"], None),  # a colon in the text is not a host
        (["--host", "box", "sessions"], ("box", ["sessions"])),
        (["--host=box", "sessions", "--json"], ("box", ["sessions", "--json"])),
        (["prompt", "box:abcd", "hi"], ("box", ["prompt", "abcd", "hi"])),
        (["--host", "box", "prompt", "box:abcd", "hi"], ("box", ["prompt", "abcd", "hi"])),
        (
            ["ask", "--timeout", "5m", "box:abcd", "q"],
            ("box", ["ask", "--timeout", "5m", "abcd", "q"]),
        ),
        (
            ["command", "--json", "box:abcd", "compact"],
            ("box", ["command", "--json", "abcd", "compact"]),
        ),
        (
            ["schedule", "box:abcd", "t", "--in", "1m"],
            ("box", ["schedule", "abcd", "t", "--in", "1m"]),
        ),
        (["schedule", "add", "box:abcd", "t"], ("box", ["schedule", "add", "abcd", "t"])),
        (
            ["schedule", "list", "--session", "box:abcd"],
            ("box", ["schedule", "list", "--session", "abcd"]),
        ),
        (["prompt", "--", "box:abcd", "-x"], ("box", ["prompt", "--", "abcd", "-x"])),
        (["--help"], None),
    ],
)
def test_split_host(argv: list[str], expected: Any) -> None:
    assert remote.split_host(argv) == expected


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--host", "box"], "needs a command"),
        (["--host", "box", "hook"], "works on this machine only"),
        (["--host", "box", "run"], "works on this machine only"),
        (["--host", "a", "prompt", "b:abcd", "x"], "name two hosts"),
        (["prompt", ":abcd", "x"], "not HOST:SESSION"),
        (["--host", "-oProxyCommand=sh", "sessions"], "not a host name"),
        (["--socket", "/x", "--host", "box", "sessions"], "--socket names a local socket"),
        (["--host", "box", "sessions", "--all-hosts"], "either --host or --all-hosts"),
    ],
)
def test_split_host_refuses(argv: list[str], says: str) -> None:
    with pytest.raises(RemoteUsageError, match=says):
        remote.split_host(argv)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["prompt", "abcd", "secret"], (["prompt", "abcd", "-"], "secret")),
        (
            ["--json", "ask", "--timeout", "5m", "abcd", "q?"],
            (["--json", "ask", "--timeout", "5m", "abcd", "-"], "q?"),
        ),
        (["schedule", "abcd", "t", "--in", "1m"], (["schedule", "abcd", "-", "--in", "1m"], "t")),
        (["schedule", "add", "abcd", "t"], (["schedule", "add", "abcd", "-"], "t")),
        (["prompt", "abcd", "-"], (["prompt", "abcd", "-"], None)),
        (["prompt", "abcd", "--", "-x"], (["prompt", "abcd", "--", "-x"], None)),
        (["schedule", "list"], (["schedule", "list"], None)),
        (["command", "abcd", "compact", "now"], (["command", "abcd", "compact", "now"], None)),
        (["sessions"], (["sessions"], None)),
    ],
)
def test_text_goes_over_stdin(argv: list[str], expected: Any) -> None:
    assert remote.text_to_stdin(argv) == expected


def test_remote_command_quotes_every_argument() -> None:
    h = Host("b", "b", ccc="~/.local/bin/ccc", cache_dir="~/my cache")
    cmd = remote.remote_command(h, ["prompt", "abcd", "it's $(rm -rf ~); `x`"])
    assert cmd == (
        "~/.local/bin/ccc --socket ~/'my cache/daemon.sock' prompt abcd "
        "'it'\"'\"'s $(rm -rf ~); `x`'"
    )
    argv = remote.ssh_argv(Host("b", "me@b", ssh_config="/c"), ["sessions"], control="/ctl")
    assert argv[:3] == ["ssh", "-F", "/c"]
    assert argv[-3:] == ["--", "me@b", "ccc sessions"]  # the destination can never be an option
    assert "BatchMode=yes" in argv and "ClearAllForwardings=yes" in argv
    assert "ControlPath=/ctl/%C" in argv
    unshared = remote.ssh_argv(Host("b", "b"), ["sessions"], share=False)
    assert "ControlPath=none" in unshared and "ControlMaster=no" in unshared


def test_remote_output_is_cleaned() -> None:
    assert (
        remote.sanitize("ok\x1b]0;pwned\x07 \x1b[31mred\x9b\ttab\n") == "ok]0;pwned [31mred\ttab\n"
    )
    assert remote.clean_data({"cwd\x1b": ["a\x1bb", 1, None]}) == {"cwd": ["ab", 1, None]}
    assert remote.relabel("ccc: daemon not running\n", "box") == "ccc: box: daemon not running\n"
    assert remote.relabel("queued\n", "box") == "queued\n"
    h = Host("box", "box")
    assert (
        "cannot reach host box over ssh (ssh: connect to host: Connection refused); check it with: ssh box true"
        in str(remote.ssh_failure(h, "ssh: connect to host: Connection refused\n", 255))
    )
    assert "ccc=/path/to/ccc" in str(remote.ssh_failure(h, "", 127))
    assert remote.ssh_failure(h, "", 1) is None


def test_send_path_does_not_load_remote() -> None:
    """HOST:SESSION costs the send path one string test; remote.py loads only then."""
    code = (
        "import sys; from ccc_statusd import fastcli; fastcli.main(['prompt', 'abcd', 'hi']);"
        "print('ccc_statusd.remote' in sys.modules, 'subprocess' in sys.modules)"
    )
    env = {**os.environ, "CCC_CACHE_DIR": tempfile.mkdtemp(prefix="ccc-r-", dir="/tmp")}
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30
    )
    assert r.stdout.strip() == "False False", r.stderr


# --- a real sshd and a second daemon ---------------------------------------------------------


def _ping(sock: Path) -> bool:
    from ccc_statusd.client import Client, ClientError

    try:
        with Client(sock, timeout=2) as c:
            return bool(c.query("ping") == "pong")
    except ClientError:
        return False


def start_daemon(cache: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [str(BIN / "ccc-statusd"), "--cache-dir", str(cache), "--no-watchers"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not _ping(cache / "daemon.sock"):
        assert proc.poll() is None and time.monotonic() < deadline, "daemon did not start"
        time.sleep(0.02)
    return proc


def stop_daemon(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class PlayingSession:
    """A session client (thread) that plays Claude Code: each typed prompt is answered, then a
    UserPromptSubmit and a Stop hook report the turn, the reply being ``ECHO: <prompt>``."""

    def __init__(self, sock: Path, session_id: str) -> None:
        self.sock_path = str(sock)
        self.session_id = session_id
        self.iid = f"iid-{uuid.uuid4().hex[:8]}"
        self.received: list[dict[str, Any]] = []
        self.turns = 0
        self.conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.conn.connect(self.sock_path)
        self.reader = self.conn.makefile("rb")
        self._send(
            self.conn, {"type": "register", "internal_id": self.iid, "data": {"kind": "pty"}}
        )
        assert not json.loads(self.reader.readline()).get("error")
        self._hook(hook("SessionStart-startup", session_id, cwd="/tmp/remote-project"))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @staticmethod
    def _send(s: socket.socket, obj: dict[str, Any]) -> None:
        s.sendall(json.dumps(obj).encode() + b"\n")

    def _hook(self, payload: dict[str, Any]) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(self.sock_path)
            self._send(s, {"type": "hook", "data": payload, "env": {"CCC_INTERNAL_ID": self.iid}})
            s.makefile("rb").readline()

    def _serve(self) -> None:
        try:
            for line in self.reader:
                msg = json.loads(line)
                if msg.get("type") == "response":
                    continue
                self.received.append(msg)
                self._send(
                    self.conn, {"type": "response", "request_id": msg.get("request_id"), "data": {}}
                )
                if msg.get("type") in ("prompt", "command"):
                    text = msg.get("text", "") if msg["type"] == "prompt" else f"/{msg['name']}"
                    self._hook(hook("UserPromptSubmit", self.session_id, prompt=text))
                    self._hook(
                        hook("Stop", self.session_id, last_assistant_message=f"ECHO: {text}")
                    )
                    self.turns += 1
        except (OSError, ValueError):
            pass

    def wait_turns(self, n: int) -> None:
        """Wait until ``n`` turns have ended (the daemon has the Stop hook): idle again."""
        deadline = time.monotonic() + 20
        while self.turns < n:
            assert time.monotonic() < deadline, self.received
            time.sleep(0.01)

    def close(self) -> None:
        try:
            self.conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(5)
        self.reader.close()
        self.conn.close()


@dataclass
class World:
    d: Path
    local: Path  # the local cache dir (its daemon, the ssh control sockets)
    far: Path  # the "remote" daemon's cache dir
    sshd: Sshd
    session: PlayingSession
    env: dict[str, str]

    def ccc(
        self, *args: str, timeout: float = 60, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CCC, *args], capture_output=True, text=True, env=self.env, timeout=timeout, input=input
        )


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    why = why_not()
    if why:
        pytest.skip(why)
    d = Path(tempfile.mkdtemp(prefix="ccc-ssh-", dir="/tmp"))
    local, far = d / "l", d / "f"
    local.mkdir(mode=0o700)
    far.mkdir(mode=0o700)
    sshd = Sshd(d)
    procs = [start_daemon(local), start_daemon(far)]
    session = PlayingSession(far / "daemon.sock", str(uuid.uuid4()))
    (d / "hosts").write_text(
        f"box ssh=box ccc={CCC} cache_dir={far} ssh_config={d}/ssh_config\n"
        f"gone ssh=gone ccc={CCC} cache_dir={far} ssh_config={d}/gone_config\n"
    )
    # "gone": a port nothing listens on (a host that is down).
    (d / "gone_config").write_text(
        (d / "ssh_config").read_text().replace(f"Port {sshd.port}", f"Port {free_port()}")
    )
    env = {
        **os.environ,
        "CCC_CACHE_DIR": str(local),
        "CCC_HOSTS_FILE": str(d / "hosts"),
        "NO_COLOR": "1",
    }
    w = World(d, local, far, sshd, session, env)
    try:
        yield w
    finally:
        session.close()
        subprocess.run(
            [
                "ssh",
                "-F",
                f"{d}/ssh_config",
                "-o",
                f"ControlPath={local}-ssh/%C",
                "-O",
                "exit",
                "box",
            ],
            capture_output=True,
            timeout=10,
        )
        sshd.stop()
        for p in procs:
            stop_daemon(p)
        shutil.rmtree(d, ignore_errors=True)


def test_host_sessions_lists_the_remote_daemons(world: World) -> None:
    r = world.ccc("--host", "box", "sessions", "--json")
    assert r.returncode == 0, r.stderr
    ids = [rec["session_id"] for rec in json.loads(r.stdout)]
    assert ids == [world.session.session_id]
    local = world.ccc("sessions", "--json")
    assert world.session.session_id not in local.stdout  # the local daemon does not know it
    table = world.ccc("--host", "box", "sessions")
    assert table.returncode == 0 and world.session.session_id[:8] in table.stdout


def test_prompt_command_and_ask_reach_the_remote_session(world: World) -> None:
    sid = world.session.session_id
    turns = world.session.turns
    r = world.ccc("prompt", f"box:{sid[:8]}", "hello from afar; $(echo not run)")
    assert r.returncode == 0 and not r.stderr, r.stderr
    world.session.wait_turns(turns + 1)
    r = world.ccc("--host", "box", "command", sid[:8], "compact")
    assert r.returncode == 0 and not r.stderr, r.stderr
    world.session.wait_turns(turns + 2)
    r = world.ccc("--host", "box", "prompt", sid[:8], "-", input="line one\nline two\n")
    assert r.returncode == 0 and not r.stderr, r.stderr
    got = [(m["type"], m.get("text") or m.get("name")) for m in world.session.received]
    assert ("prompt", "hello from afar; $(echo not run)") in got
    assert ("command", "compact") in got
    assert ("prompt", "line one\nline two") in got
    world.session.wait_turns(turns + 3)
    r = world.ccc("ask", f"box:{sid[:8]}", "what is 2+2", "--timeout", "30s")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ECHO: what is 2+2"


def test_schedule_on_the_remote_host(world: World) -> None:
    sid = world.session.session_id
    r = world.ccc("schedule", f"box:{sid[:8]}", "later, remotely", "--in", "2h")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("scheduled ")
    listed = world.ccc("--host", "box", "schedule", "list", "--json")
    rows = json.loads(listed.stdout)
    assert [row["message"] for row in rows] == ["later, remotely"]
    assert json.loads(world.ccc("schedule", "list", "--json").stdout) == []  # not scheduled here
    r = world.ccc("--host", "box", "schedule", "cancel", rows[0]["id"])
    assert r.returncode == 0 and "cancelled" in r.stdout


def test_remote_errors_are_labelled_and_keep_their_exit_code(world: World) -> None:
    r = world.ccc("prompt", "box:zzzzzzzz", "hi")
    assert r.returncode == 1
    assert r.stderr.startswith("ccc: box: ") and "zzzzzzzz" in r.stderr
    r = world.ccc("--host", "box", "hook")
    assert r.returncode == 2 and "works on this machine only" in r.stderr


def test_unreachable_host_is_a_clear_bounded_error(world: World) -> None:
    r = world.ccc("--host", "gone", "sessions", timeout=30)
    assert r.returncode == 3
    assert r.stderr.startswith("ccc: cannot reach host gone over ssh (")
    assert "check it with: ssh gone true" in r.stderr


def test_missing_remote_ccc_says_how_to_configure_it(world: World) -> None:
    hosts = world.d / "hosts-missing"
    hosts.write_text(f"box ssh=box ccc=/nonexistent/ccc ssh_config={world.d}/ssh_config\n")
    r = subprocess.run(
        [CCC, "--host", "box", "sessions"],
        capture_output=True,
        text=True,
        env={**world.env, "CCC_HOSTS_FILE": str(hosts)},
        timeout=60,
    )
    assert r.returncode == 3 and "'/nonexistent/ccc' was not found on host box" in r.stderr


def test_all_hosts_merges_local_and_remote(world: World) -> None:
    local_session = PlayingSession(world.local / "daemon.sock", str(uuid.uuid4()))
    try:
        r = world.ccc("sessions", "--all-hosts", "--json", timeout=60)
        assert r.returncode == 0, r.stderr
        recs = json.loads(r.stdout)
        by_host = {(rec["host"], rec.get("session_id")) for rec in recs}
        assert ("local", local_session.session_id) in by_host
        assert ("box", world.session.session_id) in by_host
        gone = [rec for rec in recs if rec["host"] == "gone"]
        assert (
            gone
            and gone[0]["state"] == "unreachable"
            and "cannot reach host gone" in gone[0]["error"]
        )
        assert "ccc: gone: cannot reach host gone" in r.stderr
        table = world.ccc("sessions", "--all-hosts", timeout=60)
        lines = table.stdout.splitlines()
        assert lines[0].split()[:4] == ["HOST", "NAME", "SESSION", "STATE"]
        assert any(ln.startswith("local ") and local_session.session_id[:8] in ln for ln in lines)
        assert any(ln.startswith("box ") and world.session.session_id[:8] in ln for ln in lines)
        assert any(ln.startswith("gone ") and "unreachable" in ln for ln in lines)
    finally:
        local_session.close()


def test_stopped_sshd_gives_a_clear_error(world: World) -> None:
    d = world.d / "second"
    d.mkdir()
    for f in ("hostkey", "hostkey.pub", "userkey", "userkey.pub"):
        shutil.copy(world.d / f, d / f)
    sshd = Sshd(d)
    hosts = d / "hosts"
    hosts.write_text(f"two ssh=two ccc={CCC} cache_dir={world.far} ssh_config={d}/ssh_config\n")
    env = {**world.env, "CCC_HOSTS_FILE": str(hosts)}
    try:
        ok = subprocess.run(
            [CCC, "--host", "two", "status"], capture_output=True, text=True, env=env, timeout=60
        )
        assert ok.returncode == 0, ok.stderr
    finally:
        sshd.stop()
    r = subprocess.run(
        [CCC, "--host", "two", "sessions"], capture_output=True, text=True, env=env, timeout=30
    )
    assert r.returncode == 3, r
    assert (
        r.stderr.startswith("ccc: cannot reach host two over ssh (") and "ssh two true" in r.stderr
    )


def test_bench_rows(world: World) -> None:
    """``make bench``'s remote rows: every figure measured, none failed."""
    from ccc_statusd.bench.remote import measure

    root = Path(tempfile.mkdtemp(prefix="cccb-", dir="/tmp"))
    try:
        rows = measure(root, 1)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert len(rows) == 6
    for row in rows:
        assert row["ours"].endswith(" ms") and "failed" not in row["ours"], row
