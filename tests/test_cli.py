"""The `ccc` CLI against the real daemon: every command, every exit code, prefix resolution,
stdin, --json, the daemon-down paths, `schedule`, the clients, and fastcli ≡ typer app.

One daemon subprocess (``ccc-statusd --cache-dir D --no-watchers --allow-eval``) serves the
module; daemon-down tests use their own empty cache dirs. Session clients are scripted: a thread
that registers and answers every routed message (as tests/test_daemon_basics.py does on Trio).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from typer.testing import CliRunner

from ccc_statusd import cli, client
from ccc_statusd.aclient import AsyncClient
from ccc_statusd.cache import write_session_cache
from ccc_statusd.client import Client, DaemonError, DaemonNotRunning, DaemonTimeout
from ccc_statusd.paths import Paths
from ccc_statusd.store import Store

from .helpers import short_tmpdir, wait_until_sync

SENT = ("typed", "submitted")  # a prompt or command the session client typed

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CCC = str(BIN / "ccc")
PY = sys.executable
FAST = "import sys; from ccc_statusd.fastcli import main; rc = main(sys.argv[1:]); assert 'typer' not in sys.modules, 'fell through to typer'; sys.exit(rc)"

runner = CliRunner()


# --- fixtures -----------------------------------------------------------------------------


def _short_dir() -> Path:
    # AF_UNIX paths are limited to ~107 bytes: pytest's tmp_path is often too long.
    return short_tmpdir("ccc-cli-")


def _ping(sock: Path) -> bool:
    try:
        with Client(sock, timeout=2) as c:
            return bool(c.query("ping") == "pong")
    except client.ClientError:
        return False


def start_daemon(cache_dir: Path, *extra: str) -> subprocess.Popen[bytes]:
    exe = BIN / "ccc-statusd"
    cmd = [str(exe)] if exe.exists() else [PY, "-m", "ccc_statusd.daemon"]
    proc = subprocess.Popen(
        [*cmd, "--cache-dir", str(cache_dir), "--no-watchers", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(
                f"daemon exited early ({proc.returncode}); see {cache_dir}/daemon.log"
            )
        return _ping(cache_dir / "daemon.sock")

    try:
        wait_until_sync(up, limit_s=15, what="the daemon answers a ping")
    except AssertionError:
        proc.kill()
        proc.wait()
        raise
    return proc


def stop_daemon(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def live() -> Iterator[Paths]:
    """A daemon subprocess (eval allowed) for the whole module."""
    d = _short_dir()
    proc = start_daemon(d, "--allow-eval")
    try:
        yield Paths(d)
    finally:
        stop_daemon(proc)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def down() -> Iterator[Paths]:
    """A cache dir with no daemon."""
    d = _short_dir()
    try:
        yield Paths(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


class ScriptedSession:
    """A session client on a thread: registers, then answers every routed message.

    Prompt text ``please fail`` is answered with an error; eval answers ``result of <code>``.
    """

    def __init__(self, paths: Paths, session_id: str, **data: Any) -> None:
        self.session_id = session_id
        self.internal_id = f"iid-{uuid.uuid4().hex[:8]}"
        self.received: list[dict[str, Any]] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(paths.socket))
        self.reader = self.sock.makefile("rb")
        self._send(
            {
                "type": "register",
                "internal_id": self.internal_id,
                "session_id": session_id,
                "data": data,
            }
        )
        reply = json.loads(self.reader.readline())
        assert not reply.get("error"), reply
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _send(self, obj: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps(obj).encode() + b"\n")

    def _serve(self) -> None:
        try:
            for line in self.reader:
                msg = json.loads(line)
                if msg.get("type") == "response":
                    continue
                self.received.append(msg)
                reply: dict[str, Any] = {"type": "response", "request_id": msg.get("request_id")}
                if msg["type"] == "eval":
                    reply["data"] = f"result of {msg['code']}"
                elif msg.get("text") == "please fail":
                    reply["error"] = "the terminal refused the input"
                else:
                    reply["data"] = {"delivered_via": "scripted"}
                self._send(reply)
        except (OSError, ValueError):
            pass

    def wait_for(self, n: int, timeout: float = 10) -> list[dict[str, Any]]:
        """What arrived once ``n`` messages have; whatever arrived after ``timeout`` (the callers
        assert on it)."""
        try:
            wait_until_sync(lambda: len(self.received) >= n, limit_s=timeout)
        except AssertionError:
            pass
        return self.received

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(5)
        self.reader.close()
        self.sock.close()


@pytest.fixture
def session(live: Paths) -> Iterator[ScriptedSession]:
    s = ScriptedSession(live, f"{uuid.uuid4()}", cwd="/tmp/project")
    try:
        yield s
    finally:
        s.close()


def invoke(paths: Paths, *args: str, input: str | None = None) -> Any:
    """The typer app in-process (CliRunner), pointed at ``paths``."""
    return runner.invoke(
        cli.app,
        list(args),
        input=input,
        env={"CCC_CACHE_DIR": str(paths.cache_dir), "NO_COLOR": "1"},
    )


def run_ccc(
    paths: Paths, *args: str, input: str | None = None, argv0: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``.venv/bin/ccc`` (or ``argv0``) as a subprocess, pointed at ``paths``."""
    env = {**os.environ, "CCC_CACHE_DIR": str(paths.cache_dir), "NO_COLOR": "1"}
    return subprocess.run(
        [*(argv0 or [CCC]), *args], input=input, capture_output=True, text=True, env=env, timeout=30
    )


def spawn(paths: Paths, *args: str, argv0: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "CCC_CACHE_DIR": str(paths.cache_dir), "NO_COLOR": "1"}
    return subprocess.Popen(
        [*argv0, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


# --- send commands ------------------------------------------------------------------------


def test_prompt_delivered_by_prefix_prints_nothing(live: Paths, session: ScriptedSession) -> None:
    result = invoke(live, "prompt", session.session_id[:8], "hello")
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and result.stderr == ""
    msg = session.wait_for(1)[0]
    assert (
        msg["type"] == "prompt"
        and msg["text"] == "hello"
        and msg["session_id"] == session.session_id
    )


def test_prompt_reads_stdin_keeping_lines(live: Paths, session: ScriptedSession) -> None:
    result = invoke(live, "prompt", session.session_id, "-", input="first line\n\nthird line\n")
    assert result.exit_code == 0, result.output
    assert session.wait_for(1)[0]["text"] == "first line\n\nthird line"
    empty = invoke(live, "prompt", session.session_id, "-", input="\n")
    assert empty.exit_code == 2 and "empty" in empty.stderr


def test_prompt_text_that_looks_like_an_option(live: Paths, session: ScriptedSession) -> None:
    result = invoke(live, "prompt", session.session_id, "-v means verbose")
    assert result.exit_code == 0, result.output
    assert session.wait_for(1)[0]["text"] == "-v means verbose"


def test_prompt_from_name_puts_a_sender_header(live: Paths, session: ScriptedSession) -> None:
    result = invoke(live, "prompt", session.session_id, "-", "--from-name", "ci", input="go\n")
    assert result.exit_code == 0, result.output
    assert session.wait_for(1)[0]["text"] == "[from ci via ccc]\ngo"
    blank = invoke(live, "prompt", session.session_id, "x", "--from-name", " ")
    assert blank.exit_code == 2 and "--from-name is empty" in blank.stderr


def test_command_with_args_and_json(live: Paths, session: ScriptedSession) -> None:
    result = invoke(
        live, "command", session.session_id, "/compact", "keep", "it", "short", "--json"
    )
    assert result.exit_code == 0, result.output
    reply = json.loads(result.stdout)
    assert reply["status"] in SENT and reply["data"] == {"delivered_via": "scripted"}
    msg = session.wait_for(1)[0]
    assert msg["name"] == "compact" and msg["text"] == "keep it short"


def test_eval_prints_result(live: Paths, session: ScriptedSession) -> None:
    result = invoke(live, "eval", session.session_id, "1+1")
    assert result.exit_code == 0, result.output
    assert result.stdout == "result of 1+1\n"


def test_session_error_is_exit_1(live: Paths, session: ScriptedSession) -> None:
    result = invoke(live, "prompt", session.session_id, "please fail")
    assert result.exit_code == 1
    assert result.stderr.startswith("ccc: ") and "the terminal refused the input" in result.stderr
    assert result.stderr.count("\n") == 1


def test_prefix_unknown_ambiguous_too_short(live: Paths) -> None:
    a = ScriptedSession(live, "ambi-1111-aaaa")
    b = ScriptedSession(live, "ambi-2222-bbbb")
    try:
        amb = invoke(live, "prompt", "ambi-", "x")
        assert amb.exit_code == 1
        assert (
            "ambiguous" in amb.stderr
            and "ambi-1111-aaaa" in amb.stderr
            and "ambi-2222-bbbb" in amb.stderr
        )
        unknown = invoke(live, "prompt", "zzzz-nothing", "x")
        assert unknown.exit_code == 1 and "no session matches 'zzzz-nothing'" in unknown.stderr
        short = invoke(live, "prompt", "am", "x")
        assert short.exit_code == 1 and "at least 4 characters" in short.stderr
        ok = invoke(live, "prompt", "ambi-2", "x")
        assert ok.exit_code == 0 and b.wait_for(1)[0]["text"] == "x"
    finally:
        a.close()
        b.close()


def test_queued_when_busy(live: Paths, session: ScriptedSession) -> None:
    with Client(live.socket) as c:
        c.request(
            {
                "type": "hook",
                "internal_id": session.internal_id,
                "data": {
                    "session_id": session.session_id,
                    "hook_event_name": "UserPromptSubmit",
                    "prompt": "work",
                },
            }
        )
    result = invoke(live, "prompt", session.session_id, "later please")
    assert result.exit_code == 0, result.output
    assert "queued for session" in result.stderr and "busy" in result.stderr
    listed = json.loads(invoke(live, "schedule", "list", "--json").stdout)
    row = next(r for r in listed if r["session_id"] == session.session_id)
    assert row["message"] == "later please" and row["trigger"] == "idle"
    assert invoke(live, "schedule", "cancel", row["id"]).exit_code == 0


def test_usage_errors_are_exit_2(live: Paths) -> None:
    assert invoke(live, "prompt", "abcd").exit_code == 2
    assert invoke(live, "nonsense").exit_code == 2
    assert invoke(live, "sessions", "--bogus").exit_code == 2


# --- read commands ------------------------------------------------------------------------


def _statusline(sid: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "statusline",
        "data": {
            "session_id": sid,
            "model": {"id": "claude-opus-5-5", "display_name": "Opus 5.5"},
            "workspace": {"current_dir": "/tmp/project"},
            "cost": {"total_cost_usd": 0.0569},
            "context_window": {
                "used_percentage": 12,
                "remaining_percentage": 88,
                "context_window_size": 200000,
            },
            **extra,
        },
    }


def test_sessions_table_and_json(live: Paths, session: ScriptedSession) -> None:
    with Client(live.socket) as c:
        c.request(_statusline(session.session_id))
    result = invoke(live, "sessions", "--json")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    mine = next(r for r in records if r["session_id"] == session.session_id)
    assert mine["connected"] is True and mine["model"] == "Opus 5.5"
    assert records[0]["connected"] is True  # active first
    table = invoke(live, "sessions")
    assert table.exit_code == 0
    header, *lines = table.stdout.splitlines()
    assert header.split()[:7] == ["NAME", "SESSION", "STATE", "KIND", "WHERE", "QUEUED", "MODEL"]
    row = next(line for line in lines if session.session_id[:8] in line)
    assert "Opus 5.5" in row and "12%" in row and "$0.06" in row and "/tmp/project" in row
    assert "\x1b[" not in table.stdout  # not a TTY: no colour


def test_status_query_path(live: Paths, session: ScriptedSession) -> None:
    st = invoke(live, "status", "--json")
    assert st.exit_code == 0
    data = json.loads(st.stdout)
    assert data["running"] is True and data["version"] and data["session_clients"] >= 1
    human = invoke(live, "status")
    assert human.exit_code == 0 and "pid" in human.stdout and "socket:" in human.stdout
    q = invoke(live, "query", "ping")
    assert q.exit_code == 0 and json.loads(q.stdout) == "pong"
    q = invoke(live, "query", "active_sessions", "--json")
    assert any(s["session_id"] == session.session_id for s in json.loads(q.stdout))
    bad = invoke(live, "query", "no_such_query")
    assert bad.exit_code == 1 and "unknown query" in bad.stderr
    with Client(live.socket) as c:
        c.request(
            {
                "type": "hook",
                "internal_id": session.internal_id,
                "data": {
                    "session_id": session.session_id,
                    "hook_event_name": "Stop",
                    "transcript_path": "/tmp/t.jsonl",
                },
            }
        )
    p = invoke(live, "path", session.session_id[:6])
    assert p.exit_code == 0 and p.stdout == "/tmp/t.jsonl\n"
    pj = invoke(live, "path", session.session_id[:6], "--json")
    assert json.loads(pj.stdout) == {"session_id": session.session_id, "path": "/tmp/t.jsonl"}


# --- the daemon down ----------------------------------------------------------------------


def test_daemon_down_exit_3_with_start_hint(down: Paths) -> None:
    for args in (["prompt", "abcd", "hi"], ["status"], ["query", "ping"]):
        result = invoke(down, *args)
        assert result.exit_code == 3, (args, result.output)
        assert "daemon not running (no socket at" in result.stderr
        assert result.stderr.rstrip().endswith("start it with: ccc-statusd")
    # --socket elsewhere: the hint names the cache dir to start the daemon on.
    other = down.cache_dir / "sub"
    result = invoke(down, "--socket", str(other / "daemon.sock"), "prompt", "abcd", "hi")
    assert result.exit_code == 3 and f"ccc-statusd --cache-dir {other}" in result.stderr


def test_stale_socket_file_is_not_running(down: Paths) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(down.socket))  # bound, never listening: connect is refused
    try:
        result = invoke(down, "command", "abcd", "clear")
        assert result.exit_code == 3 and "nothing answers on" in result.stderr
    finally:
        s.close()


def _seed_db(paths: Paths, *rows: dict[str, Any]) -> None:
    store = Store(paths.db)
    try:
        store.upsert_sessions(rows)
    finally:
        store.close()


def test_degraded_sessions_and_path(down: Paths) -> None:
    _seed_db(
        down,
        {
            "session_id": "deg-aaaa-1111",
            "claude_config_dir": "/x",
            "transcript_path": "/x/a.jsonl",
            "model": "Sonnet",
            "state": "idle",
        },
        {"session_id": "deg-bbbb-2222", "claude_config_dir": "/x", "state": "busy"},
    )
    write_session_cache(
        down,
        "deg-cccc-3333",
        {"session_id": "deg-cccc-3333", "state": "idle", "cwd": "/tmp/c", "connected": True},
    )
    result = invoke(down, "sessions", "--json")
    assert result.exit_code == 0, result.output
    assert "daemon not running" in result.stderr and "last known state" in result.stderr
    records = {r["session_id"]: r for r in json.loads(result.stdout)}
    assert set(records) == {"deg-aaaa-1111", "deg-bbbb-2222", "deg-cccc-3333"}
    assert not any(r["connected"] for r in records.values())
    assert invoke(down, "sessions").exit_code == 0
    path = invoke(down, "path", "deg-a")
    assert path.exit_code == 0 and path.stdout == "/x/a.jsonl\n"
    amb = invoke(down, "path", "deg-")
    assert amb.exit_code == 1 and "ambiguous" in amb.stderr and "deg-bbbb-2222" in amb.stderr
    unknown = invoke(down, "path", "nope-nope")
    assert unknown.exit_code == 1 and "no session matches" in unknown.stderr
    missing = invoke(down, "path", "deg-cccc")
    assert missing.exit_code == 1 and "no transcript found" in missing.stderr
    st = invoke(down, "status", "--json")
    assert st.exit_code == 3 and json.loads(st.stdout)["running"] is False


# --- schedule -----------------------------------------------------------------------------


def test_parse_duration_and_at() -> None:
    from datetime import datetime, timedelta

    assert [cli.parse_duration(s) for s in ("90s", "10m", "2h", "1h30m", "1d")] == [
        90,
        600,
        7200,
        5400,
        86400,
    ]
    for bad in ("", "m", "1x", "-5m", "99999999999999999999d", "1.5h"):
        with pytest.raises(ValueError, match="is not a duration"):
            cli.parse_duration(bad)
    assert cli.parse_duration("10") == 10, "a bare number is seconds"
    now = datetime(2025, 6, 1, 15, 0).astimezone()
    assert cli.parse_at("14:30", now) == now.replace(hour=14, minute=30) + timedelta(days=1)
    assert cli.parse_at("16:05", now) == now.replace(hour=16, minute=5)
    assert cli.parse_at("2025-06-02T09:00", now) == datetime(2025, 6, 2, 9, 0).astimezone()
    with pytest.raises(ValueError, match="in the past"):
        cli.parse_at("2025-05-01T09:00", now)
    with pytest.raises(ValueError, match="neither"):
        cli.parse_at("tomorrow", now)
    assert cli.parse_resets_at(1_700_000_000) == 1_700_000_000
    assert cli.parse_resets_at(1_700_000_000_000) == 1_700_000_000
    assert cli.parse_resets_at("2023-11-14T22:13:20Z") == 1_700_000_000
    assert cli.parse_resets_at(None) is None


def test_schedule_add_list_cancel_with_daemon(live: Paths, session: ScriptedSession) -> None:
    before = time.time()
    added = invoke(
        live, "schedule", session.session_id[:8], "in ten\nsecond line", "--in", "10m", "--json"
    )
    assert added.exit_code == 0, added.output
    row = json.loads(added.stdout)
    assert (
        row["session_id"] == session.session_id and row["trigger"] == "at" and row["daemon_running"]
    )
    assert before + 600 - 2 <= row["send_at"] <= time.time() + 600
    human = invoke(live, "schedule", session.session_id, "at half past", "--at", "23:59")
    assert human.exit_code == 0 and human.stdout.startswith("scheduled ")
    listing = invoke(live, "schedule", "list")
    assert listing.exit_code == 0
    line = next(ln for ln in listing.stdout.splitlines() if ln.startswith(row["id"]))
    assert "in 9m" in line or "in 10m" in line
    assert "in ten …" in line
    assert invoke(live, "query", "status", "--json").exit_code == 0
    assert json.loads(invoke(live, "query", "status").stdout)["scheduled"] >= 2
    cancel = invoke(live, "schedule", "cancel", row["id"][:6])
    assert cancel.exit_code == 0 and cancel.stdout == f"cancelled {row['id']}\n"
    again = invoke(live, "schedule", "cancel", row["id"])
    assert again.exit_code == 1 and "no scheduled message matches" in again.stderr
    for r in json.loads(invoke(live, "schedule", "list", "--json").stdout):
        if r["session_id"] == session.session_id:
            invoke(live, "schedule", "cancel", r["id"])


def test_schedule_usage_errors(live: Paths, session: ScriptedSession) -> None:
    none = invoke(live, "schedule", session.session_id, "x")
    assert none.exit_code == 2 and "say when" in none.stderr
    both = invoke(live, "schedule", session.session_id, "x", "--in", "1m", "--at", "14:00")
    assert both.exit_code == 2 and "only one of --in and --at" in both.stderr
    bad = invoke(live, "schedule", session.session_id, "x", "--in", "soon")
    assert bad.exit_code == 2 and "is not a duration" in bad.stderr
    unknown = invoke(live, "schedule", "nope-nope-nope", "x", "--in", "1m")
    assert unknown.exit_code == 1 and "no session matches" in unknown.stderr


def test_schedule_after_limit_reset(live: Paths, session: ScriptedSession) -> None:
    missing = invoke(live, "schedule", session.session_id, "x", "--after-limit-reset")
    assert missing.exit_code == 1 and "no rate-limit reset time is known" in missing.stderr
    resets = int(time.time()) + 3600
    with Client(live.socket) as c:
        c.request(
            _statusline(
                session.session_id,
                rate_limits={"five_hour": {"used_percentage": 100, "resets_at": resets}},
            )
        )
    ok = invoke(live, "schedule", session.session_id, "go on", "--after-limit-reset", "--json")
    assert ok.exit_code == 0, ok.output
    row = json.loads(ok.stdout)
    assert row["send_at"] == resets + cli.RESET_MARGIN_S
    assert invoke(live, "schedule", "cancel", row["id"]).exit_code == 0


def test_schedule_cancel_ambiguous(down: Paths) -> None:
    store = Store(down.db)
    try:
        store.add_scheduled("s-1", "a", 1, id="abc111")
        store.add_scheduled("s-1", "b", 1, id="abc222")
    finally:
        store.close()
    amb = invoke(down, "schedule", "cancel", "abc")
    assert amb.exit_code == 1 and "ambiguous" in amb.stderr and "abc111, abc222" in amb.stderr
    ok = invoke(down, "schedule", "cancel", "abc2")
    assert ok.exit_code == 0 and ok.stdout == "cancelled abc222\n"
    listed = invoke(down, "schedule", "list")
    assert (
        "abc111" in listed.stdout and "abc222" not in listed.stdout and "overdue" in listed.stdout
    )


def test_schedule_cancel_too_late_and_list_states(down: Paths) -> None:
    store = Store(down.db)
    try:
        store.add_scheduled("s-1", "being typed", 1, id="fly111")
        store.claim_scheduled("fly111")
        store.add_scheduled(
            "s-1", "keep it", 1, id="cmd222", kind="command", command_name="compact"
        )
        store.add_scheduled("s-1", "x", 1, id="prk333")
        store.release_scheduled("prk333", "bad command name", 1, park=True)
    finally:
        store.close()
    late = invoke(down, "schedule", "cancel", "fly111")
    assert late.exit_code == 1 and "too late" in late.stderr and "being typed" in late.stderr
    listed = invoke(down, "schedule", "list").stdout
    assert "typing now" in listed and "/compact keep it" in listed and "parked" in listed


def test_schedule_with_daemon_down_then_picked_up(down: Paths) -> None:
    _seed_db(down, {"session_id": "later-0000-1111", "claude_config_dir": "/x"})
    result = run_ccc(down, "schedule", "later-00", "hello from the past", "--when-idle")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("scheduled ") and "next idle moment" in result.stdout
    assert "daemon is not running" in result.stderr
    proc = start_daemon(down.cache_dir)
    try:
        # The daemon's first pass finds the session unconnected and records an attempt. A
        # session registering *during* that pass is not noticed until the back-off ends (a
        # scheduler race reported to the lead), so register once the attempt is on record.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rows = json.loads(run_ccc(down, "schedule", "list", "--json").stdout)
            if rows and rows[0]["attempts"] >= 1:
                break
        assert rows[0]["last_error"] and "not running" in rows[0]["last_error"]
        time.sleep(0.2)
        s = ScriptedSession(down, "later-0000-1111")
        try:
            got = s.wait_for(1)
            assert got and got[0]["type"] == "prompt", down.log.read_text()
            assert got[0]["text"] == "hello from the past"
            wait_until_sync(
                lambda: json.loads(run_ccc(down, "schedule", "list", "--json").stdout) == [],
                limit_s=5,
                interval_s=0.05,
                what="the schedule is empty",
            )
        finally:
            s.close()
    finally:
        stop_daemon(proc)


# --- the real `ccc` executable, and fastcli ≡ typer app -----------------------------------


def test_ccc_executable_exit_codes(live: Paths, session: ScriptedSession, down: Paths) -> None:
    ok = run_ccc(live, "prompt", session.session_id[:8], "via the executable")
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", "")
    assert session.wait_for(1)[0]["text"] == "via the executable"
    piped = run_ccc(live, "prompt", session.session_id, "-", input="a\nb\n")
    assert piped.returncode == 0 and session.wait_for(2)[1]["text"] == "a\nb"
    err = run_ccc(live, "prompt", "zzzz-none", "x")
    assert err.returncode == 1 and err.stderr.startswith("ccc: no session matches")
    usage = run_ccc(live, "prompt", "abcd")
    assert usage.returncode == 2 and "Missing argument" in usage.stderr
    dead = run_ccc(down, "prompt", "abcd", "x")
    assert dead.returncode == 3 and "start it with: ccc-statusd" in dead.stderr
    sessions = run_ccc(live, "sessions", "--json")
    assert sessions.returncode == 0 and isinstance(json.loads(sessions.stdout), list)
    helped = run_ccc(live, "prompt", "--help")
    assert helped.returncode == 0 and "Usage: ccc prompt" in helped.stdout


def _normalise(stdout: str) -> str:
    try:
        obj = json.loads(stdout)
    except ValueError:
        return stdout
    if isinstance(obj, dict):
        obj.pop("request_id", None)  # carries the sender's pid
    return json.dumps(obj)


def test_fastcli_matches_typer_app(live: Paths, session: ScriptedSession, down: Paths) -> None:
    sid = session.session_id
    cases: list[tuple[Paths, list[str], str | None]] = [
        (live, ["prompt", sid[:8], "hello"], None),
        (live, ["prompt", sid, "-"], "two\nlines\n"),
        (live, ["prompt", sid, "-"], ""),
        (live, ["command", sid, "compact", "be", "brief"], None),
        (live, ["eval", sid, "40+2"], None),
        (live, ["eval", sid, "40+2", "--json"], None),
        (live, ["prompt", "zzzz-none", "x"], None),
        (live, ["--socket", str(live.socket), "prompt", sid, "--", "--json"], None),
        (down, ["prompt", sid, "x"], None),
        (live, ["hook"], json.dumps({"session_id": sid, "hook_event_name": "Stop"})),
        (live, ["statusline"], json.dumps(_statusline(sid)["data"])),
    ]
    # Started all at once (2 × 11 interpreters; typer's start-up dominates), then compared.
    procs = [
        (
            args,
            stdin,
            spawn(paths, *args, argv0=[PY, "-c", FAST]),
            spawn(paths, *args, argv0=[PY, "-m", "ccc_statusd.cli"]),
        )
        for paths, args, stdin in cases
    ]
    for args, stdin, fast_p, slow_p in procs:
        fast_out, fast_err = fast_p.communicate(stdin or "", timeout=30)
        slow_out, slow_err = slow_p.communicate(stdin or "", timeout=30)
        assert fast_p.returncode == slow_p.returncode, (args, fast_err, slow_err)
        assert fast_err == slow_err, args
        assert _normalise(fast_out) == _normalise(slow_out), args
    texts = [m.get("text") for m in session.wait_for(8)]
    assert texts.count("two\nlines") == 2 and texts.count("--json") == 2


def test_fastcli_falls_through_for_help_and_oddities(live: Paths) -> None:
    from ccc_statusd.fastcli import parse_fast

    assert parse_fast(["prompt", "abcd", "hi"]) == (None, "prompt", ["abcd", "hi"], False)
    assert parse_fast(["--socket", "/s", "eval", "abcd", "x", "--json"]) == (
        "/s",
        "eval",
        ["abcd", "x"],
        True,
    )
    assert parse_fast(["--socket=/s", "command", "abcd", "clear", "--", "-x"]) == (
        "/s",
        "command",
        ["abcd", "clear", "-x"],
        False,
    )
    assert parse_fast(["hook", "extra"]) == (None, "hook", ["extra"], False)
    for argv in (
        [],
        ["--help"],
        ["prompt", "--help"],
        ["prompt", "abcd", "hi", "-h"],
        ["prompt", "abcd"],
        ["prompt", "a", "b", "c"],
        ["prompt", "abcd", "-v"],
        ["sessions"],
        ["--socket"],
        ["--verbose", "prompt", "a", "b"],
        ["hook", "--help"],
        ["statusline", "-h"],
    ):
        assert parse_fast(argv) is None, argv


def test_default_socket_matches_paths() -> None:
    from ccc_statusd.paths import resolve_cache_dir

    home = os.environ.get("HOME", "/")
    for env in (
        {"CCC_CACHE_DIR": "/tmp/x"},
        {"CCC_CACHE_DIR": "~/y"},
        {"XDG_CACHE_HOME": "/tmp/xdg"},
        {"HOME": home},
        {"HOME": "/nonexistent-home"},
        {},
    ):
        assert client.default_cache_dir(env) == str(resolve_cache_dir(env)), env


# --- the clients --------------------------------------------------------------------------


def test_blocking_client_api(live: Paths, session: ScriptedSession) -> None:
    with Client(live.socket) as c:
        assert c.prompt(session.session_id[:8], "api")["status"] in SENT
        assert c.command(session.session_id, "model", ["opus"])["session_id"] == session.session_id
        assert c.eval(session.session_id, "2*2")["data"] == "result of 2*2"
        assert c.query("ping") == "pong"
        with pytest.raises(DaemonError, match="no session matches") as info:
            c.prompt("zzzz-none", "x")
        assert "error" in info.value.response
        assert c.query("ping") == "pong"  # the connection survives an error reply
    msgs = session.wait_for(2)
    assert msgs[1]["name"] == "model" and msgs[1]["text"] == "opus"


def test_blocking_client_not_running_and_timeout(down: Paths) -> None:
    with pytest.raises(DaemonNotRunning, match=r"no socket at .*; start it with: ccc-statusd"):
        Client(down.socket).query("ping")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(down.socket))
    server.listen()
    try:
        c = Client(down.socket, timeout=0.2)  # accepts (backlog), never answers
        with pytest.raises(DaemonTimeout, match="no answer from the daemon within 0.2 s"):
            c.query("ping")
        c.close()
    finally:
        server.close()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_async_client_on_both_backends(
    live: Paths, session: ScriptedSession, down: Paths, backend: str
) -> None:
    async def go() -> None:
        async with AsyncClient(live.socket) as c:
            assert await c.query("ping") == "pong"
            assert (await c.prompt(session.session_id[:8], f"async {backend}"))["status"] in SENT
            assert (await c.command(session.session_id, "clear"))["status"] in SENT
            assert (await c.eval(session.session_id, "x"))["data"] == "result of x"
            async with anyio.create_task_group() as tg:  # concurrent requests share the connection
                for _ in range(5):
                    tg.start_soon(c.query, "ping")
            with pytest.raises(DaemonError, match="no session matches"):
                await c.prompt("zzzz-none", "x")
        with pytest.raises(DaemonNotRunning, match="start it with: ccc-statusd"):
            async with AsyncClient(down.socket):
                pass

    anyio.run(go, backend=backend)
    assert session.wait_for(2)[0]["text"] == f"async {backend}"


# --- hostile input (issue 14) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--in", "2913000d"], "too far ahead"),
        (["--in", "99999999999999999999d"], "is not a duration"),
        (["--in", "367d"], "at most 366 days"),
        (["--at", "9999-12-31T23:59"], "too far ahead"),
        (["--at", "99999-01-01"], "neither a time of day"),
    ],
)
def test_schedule_out_of_range_is_a_usage_error_and_stores_nothing(
    down: Paths, args: list[str], words: str
) -> None:
    """``--in 2913000d`` stored the row and then died with a traceback (a retry made
    duplicates); ``--in 99999999999999999999d`` overflowed. Checked up front: exit 2."""
    _seed_db(down, {"session_id": "range-0000-1111", "claude_config_dir": "/x"})
    result = run_ccc(down, "schedule", "range-00", "hello", *args)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr, result.stderr
    rows = json.loads(run_ccc(down, "schedule", "list", "--json").stdout)
    assert rows == []


@pytest.mark.parametrize(
    ("timeout", "words"),
    [
        ("8d", "at most 7 days"),
        ("99999999999999999999d", "not a duration"),
        ("0s", "longer than 0"),
    ],
)
def test_ask_timeout_out_of_range_is_a_usage_error(down: Paths, timeout: str, words: str) -> None:
    result = run_ccc(down, "ask", "abcd", "hi", "--timeout", timeout)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr, result.stderr


EVIL = "\x1b]0;pwned\x07\x1b[2J\x1b[H\x9b31m\u202eevil"


def _no_escapes(text: str) -> None:
    for bad in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert bad not in text, repr(text)


def test_sessions_and_schedule_list_print_no_escapes_from_session_data(down: Paths) -> None:
    """A branch name with an OSC title sequence and a screen clear, a message text with CSI:
    printed raw by ``ccc sessions`` / ``ccc schedule list`` they retitled and cleared the
    terminal. Human output is cleaned; ``--json`` keeps the data as it is."""
    _seed_db(
        down,
        {
            "session_id": "esc-aaaa-1111",
            "claude_config_dir": "/x",
            "git_branch": "main" + EVIL,
            "cwd": "/tmp/" + EVIL,
            "model": EVIL,
        },
    )
    store = Store(down.db)
    try:
        store.add_scheduled("esc-aaaa-1111", "hello" + EVIL, int(time.time()) + 60, id="esc111")
    finally:
        store.close()
    for args in (["sessions"], ["schedule", "list"]):
        result = run_ccc(down, *args)
        assert result.returncode in (0, 3), result.stderr
        assert "evil" in result.stdout, result.stdout
        _no_escapes(result.stdout)
    raw = run_ccc(down, "sessions", "--json").stdout
    assert any(r.get("git_branch") == "main" + EVIL for r in json.loads(raw))


def test_format_event_cleans_session_data() -> None:
    for event in (
        {"event": "delivered", "session_id": "s" + EVIL, "text": EVIL, "time": 1},
        {"event": "hook", "hook": EVIL, "payload": {"tool_name": EVIL}, "time": 1},
        {"event": "state", "state": "failed", "error": EVIL, "time": 1},
    ):
        from ccc_statusd.eventfmt import EventFormatter

        line = EventFormatter().line(event, colour=False)
        assert line is not None
        _no_escapes(line)
        assert "evil" in line


def test_sessions_with_daemon_down_never_hang_on_planted_files(down: Paths) -> None:
    """Issue 14 item 7: a FIFO ``<sid>.json`` or ``scheduled.db`` hung ``ccc sessions`` with the
    daemon down; ``/dev/zero`` as ``<sid>.json`` exhausted memory."""
    down.ensure_dir()
    os.mkfifo(down.cache_dir / "fifo-0001.json")
    (down.cache_dir / "zero-0001.json").symlink_to("/dev/zero")
    os.mkfifo(down.db)
    result = run_ccc(down, "sessions")
    assert "Traceback" not in result.stderr, result.stderr
    assert "not a regular file" in result.stderr, result.stderr
    os.unlink(down.db)


def test_socket_is_accepted_after_the_subcommand_too() -> None:
    from ccc_statusd.fastcli import _socket_first

    assert _socket_first(["sessions", "--socket", "/s", "--json"]) == [
        "--socket",
        "/s",
        "sessions",
        "--json",
    ]
    assert _socket_first(["prompt", "--socket=/s", "ab12", "hi"]) == [
        "--socket=/s",
        "prompt",
        "ab12",
        "hi",
    ]
    # After `--` it is the prompt's text, and before the command it is already in place.
    assert _socket_first(["prompt", "ab12", "--", "--socket", "x"]) == [
        "prompt",
        "ab12",
        "--",
        "--socket",
        "x",
    ]
    assert _socket_first(["--socket", "/s", "status"]) == ["--socket", "/s", "status"]


def test_help_lines_end_where_a_sentence_ends() -> None:
    result = CliRunner().invoke(cli.app, ["--help"])
    listed = [ln for ln in result.stdout.splitlines() if ln.startswith("  ") and "..." in ln]
    assert not listed, listed
