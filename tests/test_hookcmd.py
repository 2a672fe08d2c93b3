"""`ccc hook`: silent, always exit 0, one fire-and-forget line to the daemon, stdlib only."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccc_statusd import hookcmd

from .fixtures import fixture_bytes
from .helpers import wait_until_sync
from .session_fakes import short_tmpdir

REPO = Path(__file__).resolve().parent.parent


class LineServer:
    """A plain Unix socket server that collects what each connection sent, never replying
    until the client has gone (so a client that waited for a reply would hang the test)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(8)
        self.received: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                chunks = []
                while True:
                    data = conn.recv(65536)
                    if not data:
                        break
                    chunks.append(data)
                self.received.append(b"".join(chunks))

    def wait(self, count: int = 1, timeout_s: float = 5.0) -> list[bytes]:
        """What arrived once ``count`` connections have sent; whatever arrived after
        ``timeout_s`` (the callers assert on it)."""
        try:
            wait_until_sync(lambda: len(self.received) >= count, limit_s=timeout_s)
        except AssertionError:
            pass
        return self.received

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def cache() -> Iterator[Path]:
    d = Path(short_tmpdir())
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def server(cache: Path) -> Iterator[LineServer]:
    s = LineServer(cache / "daemon.sock")
    yield s
    s.close()


def _run(stdin: bytes, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "ccc_statusd.hookcmd"],
        input=stdin,
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=20,
        check=False,
    )


def _env(cache: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CCC_", "TMUX", "CLAUDE_"))}
    env["CCC_CACHE_DIR"] = str(cache)
    env.update(extra)
    return env


def test_no_daemon_exits_0_silently(cache: Path) -> None:
    payload = fixture_bytes("hooks-UserPromptSubmit")
    proc = _run(payload, _env(cache))
    assert proc.returncode == 0
    assert proc.stdout == b"" and proc.stderr == b""


@pytest.mark.parametrize(
    "stdin", [b"", b"{not json", b"[1,2]", b"\xff\xfe", b'"str"', b"{" * 100000]
)
def test_bad_input_exits_0_silently(cache: Path, server: LineServer, stdin: bytes) -> None:
    proc = _run(stdin, _env(cache))
    assert proc.returncode == 0
    assert proc.stdout == b"" and proc.stderr == b""
    assert server.received == []


def test_sends_one_line_with_env(cache: Path, server: LineServer) -> None:
    payload = json.loads(fixture_bytes("hooks-SessionStart-startup"))
    env = _env(
        cache,
        CCC_INTERNAL_ID="iid-1234",
        CLAUDE_PID="4242",
        TMUX="/tmp/tmux-0/default,1,0",
        TMUX_PANE="%3",
        CLAUDE_CONFIG_DIR="/home/user/.claude",
        CLAUDE_PROJECT_DIR="/home/user/project",
    )
    proc = _run(json.dumps(payload).encode(), env)
    assert proc.returncode == 0 and proc.stdout == b"" and proc.stderr == b""
    (raw,) = server.wait(1)
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1
    msg = json.loads(raw)
    assert msg["type"] == "hook"
    assert msg["data"] == payload
    assert msg["internal_id"] == "iid-1234"
    e = msg["env"]
    assert e["CCC_INTERNAL_ID"] == "iid-1234"
    assert e["CLAUDE_PID"] == "4242"
    assert e["TMUX_PANE"] == "%3" and e["TMUX"].startswith("/tmp/tmux-0/")
    assert e["CLAUDE_CONFIG_DIR"] == "/home/user/.claude"
    assert e["CLAUDE_PROJECT_DIR"] == "/home/user/project"
    assert int(e["PPID"]) > 0
    assert "request_id" not in msg  # nobody waits for the reply


def test_only_present_env_and_unsafe_internal_id_dropped(cache: Path, server: LineServer) -> None:
    payload = {"session_id": "abc-1", "hook_event_name": "Stop"}
    hookcmd.main(io.BytesIO(json.dumps(payload).encode()), _env(cache, CCC_INTERNAL_ID="../../etc"))
    (raw,) = server.wait(1)
    msg = json.loads(raw)
    assert "internal_id" not in msg
    assert set(msg["env"]) <= {"CCC_INTERNAL_ID", "PPID", "PPID_PARENT"}
    assert "CLAUDE_PID" not in msg["env"] and "TMUX_PANE" not in msg["env"]


def test_big_payload_is_trimmed_under_the_line_limit(cache: Path, server: LineServer) -> None:
    payload = json.loads(fixture_bytes("hooks-PostToolUse-echo"))
    payload["tool_response"]["stdout"] = "y" * (3 * 1024 * 1024)
    hookcmd.main(io.BytesIO(json.dumps(payload).encode()), _env(cache))
    (raw,) = server.wait(1)
    assert len(raw) < 1024 * 1024
    msg = json.loads(raw)
    assert msg["data"]["hook_event_name"] == "PostToolUse"
    assert msg["data"]["session_id"] == payload["session_id"]
    assert "cut by ccc hook" in msg["data"]["tool_response"]["stdout"]


def test_payload_over_the_read_limit_is_salvaged(cache: Path, server: LineServer) -> None:
    payload: dict[str, Any] = {
        "session_id": "sess-1",
        "transcript_path": "/t/sess-1.jsonl",
        "hook_event_name": "PostToolUse",
        "tool_response": {"stdout": "z" * (5 * 1024 * 1024)},
    }
    hookcmd.main(io.BytesIO(json.dumps(payload).encode()), _env(cache))
    (raw,) = server.wait(1)
    msg = json.loads(raw)
    assert msg["data"] == {
        "session_id": "sess-1",
        "transcript_path": "/t/sess-1.jsonl",
        "hook_event_name": "PostToolUse",
        "ccc_truncated": True,
    }


def test_a_daemon_that_never_accepts_does_not_hang(cache: Path) -> None:
    # A listening socket nobody accepts on, with a full backlog: connect must give up fast.
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(cache / "daemon.sock"))
    sock.listen(0)
    fillers = []
    try:
        for _ in range(4):
            f = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            f.setblocking(False)
            try:
                f.connect(str(cache / "daemon.sock"))
            except BlockingIOError:
                pass
            fillers.append(f)
        proc = _run(b'{"session_id":"s","hook_event_name":"Stop"}', _env(cache))
        assert proc.returncode == 0 and proc.stdout == b""
    finally:
        for f in fillers:
            f.close()
        sock.close()


def test_stdlib_only() -> None:
    code = (
        "import sys, ccc_statusd.hookcmd; "
        "bad = [m for m in ('trio', 'pydantic', 'anyio', 'typer', 'rich', 'sqlite_utils') "
        "if m in sys.modules]; print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


def test_session_start_tells_ccc_run_its_session_id(cache: Path) -> None:
    """`ccc run` creates run-<iid>.session; each SessionStart writes the current id into it."""
    env = _env(cache, CCC_INTERNAL_ID="iid-77")
    path = hookcmd.session_file(cache, "iid-77")
    start = {"session_id": "sess-one", "hook_event_name": "SessionStart", "source": "startup"}
    # not under `ccc run` (no file): nothing is created
    hookcmd.main(io.BytesIO(json.dumps(start).encode()), env)
    assert not path.exists()
    path.write_bytes(b"")
    hookcmd.main(io.BytesIO(json.dumps(start).encode()), env)
    assert hookcmd.read_session_file(path) == "sess-one"
    # other events leave it alone; SessionStart after /clear replaces it
    stop = {"session_id": "sess-one", "hook_event_name": "Stop"}
    hookcmd.main(io.BytesIO(json.dumps(stop).encode()), env)
    assert hookcmd.read_session_file(path) == "sess-one"
    clear = {"session_id": "sess-two", "hook_event_name": "SessionStart", "source": "clear"}
    hookcmd.main(io.BytesIO(json.dumps(clear).encode()), env)
    assert path.read_text() == "sess-two"
    # an unsafe id is never written
    bad = {"session_id": "../../x", "hook_event_name": "SessionStart"}
    hookcmd.main(io.BytesIO(json.dumps(bad).encode()), env)
    assert path.read_text() == "sess-two"


_REF_SAFE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@given(
    st.text(alphabet=st.sampled_from(list("aZ09_.-/ \n\x00é٣")), max_size=130)
    | st.text(alphabet="ab.", min_size=126, max_size=130)
)
def test_is_safe_id_matches_protocol(value: str) -> None:
    """The str-method check (no ``re`` on the hook path) is protocol.SAFE_ID_RE's rule."""
    expected = bool(_REF_SAFE_ID_RE.fullmatch(value)) and ".." not in value
    assert hookcmd.is_safe_id(value) == expected
    assert hookcmd._safe_id(value) == (value if expected else None)
