"""End to end with the real Claude Code (issue 10): the real `ccc-statusd` as a subprocess,
`ccc run -- claude` inside tmux, driven by `ccc prompt` / `command` / `ask` / `schedule` / `watch`.

Owns the product-level checks against the pinned builds (2.1.331 native, 2.1.112 Node). The
outside world (install, fake API, throwaway config, tmux) comes from `harness.py` / `conftest.py`.

While the `ccc` CLI is not built yet (`ccc_statusd.fastcli`), the session client is started with
`python -m ccc_statusd.session.pty_host`, hooks and the statusLine call `python -m
ccc_statusd.hookcmd` / `ccc_statusd.statusline`, and prompts, commands and queries go over the
socket directly; the tests that can only be done through the CLI (`ask`, `schedule`, `watch`,
`eval`) skip with that reason. Once the CLI exists every test uses it.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..helpers import short_tmpdir
from .fake_anthropic import FakeAnthropic
from .harness import ClaudeBuild, ClaudeHome, TmuxSession, input_box, wait_ready, wait_until


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


VENV_BIN = Path(sys.executable).parent
CCC = VENV_BIN / "ccc"
# The fast send path (fastcli) hands everything else to the typer app (cli): both must exist.
HAVE_CLI = _has("ccc_statusd.fastcli") and _has("ccc_statusd.cli") and CCC.exists()
HAVE_DAEMON = _has("ccc_statusd.daemon")
HAVE_PTY_HOST = _has("ccc_statusd.session.pty_host")
HAVE_HOOK = _has("ccc_statusd.hookcmd") and _has("ccc_statusd.statusline")

pytestmark = pytest.mark.skipif(
    not (HAVE_DAEMON and HAVE_PTY_HOST and HAVE_HOOK),
    reason="needs ccc_statusd.daemon, ccc_statusd.session.pty_host, ccc_statusd.hookcmd and ccc_statusd.statusline",
)


def _cli_commands() -> set[str]:
    """Names of the commands the typer app has (commands land one by one)."""
    if not HAVE_CLI:
        return set()
    try:
        from ccc_statusd.cli import app
    except Exception:  # noqa: BLE001 - a half-built CLI just means "skip"
        return set()
    names = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    names |= {g.name or "" for g in app.registered_groups}
    return names


CLI_COMMANDS = _cli_commands()


def _pty_host_can_inject() -> bool:
    try:
        from ccc_statusd.session import pty_host
    except Exception:  # noqa: BLE001
        return False
    return "inject" in inspect.signature(pty_host.run_command).parameters


needs_inject = pytest.mark.skipif(
    not _pty_host_can_inject(),
    reason="`ccc run --inject` (the JS injection for eval) is not built yet",
)


def needs_cli(*commands: str) -> pytest.MarkDecorator:
    missing = [c for c in commands if c not in CLI_COMMANDS]
    return pytest.mark.skipif(
        bool(missing), reason=f"the `ccc` CLI has no {', '.join(missing)} command yet"
    )


DAEMON_START_TIMEOUT_S = 15.0
DAEMON_STOP_TIMEOUT_S = 10.0
SOCKET_TIMEOUT_S = 20.0
ATTACH_TIMEOUT_S = (
    40.0  # ccc run → registered + SessionStart associated; generous: CI boxes are loaded
)
TURN_TIMEOUT_S = 30.0  # a prompt delivered and answered (Node build: ~2 s; a loaded CI box: more)


# --------------------------------------------------------------------------- the daemon


@dataclass
class Daemon:
    """A running `ccc-statusd` subprocess on its own cache dir, with a tiny stdlib socket client."""

    cache_dir: Path
    proc: subprocess.Popen[bytes]

    @property
    def socket_path(self) -> Path:
        return self.cache_dir / "daemon.sock"

    def request(self, msg: dict[str, Any], timeout_s: float = SOCKET_TIMEOUT_S) -> dict[str, Any]:
        """Send one message, return the daemon's one response line."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout_s)
            s.connect(str(self.socket_path))
            s.sendall(json.dumps(msg).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        return json.loads(buf)

    def query(self, name: str, **fields: Any) -> Any:
        resp = self.request({"type": "query", "query": name, **fields})
        assert not resp.get("error"), f"query {name} failed: {resp['error']}"
        return resp.get("data")

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join((self.cache_dir / "daemon.log").read_text().splitlines()[-n:])
        except OSError:
            return "(no daemon.log)"


def _daemon_argv() -> list[str]:
    exe = VENV_BIN / "ccc-statusd"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "ccc_statusd.daemon"]


@pytest.fixture
def daemon_args() -> list[str]:
    """Extra `ccc-statusd` arguments; a test overrides it (e.g. `--allow-eval`) by parametrising."""
    return []


@pytest.fixture
def daemon(claude_home: ClaudeHome, daemon_args: list[str]) -> Iterator[Daemon]:
    cache_dir = short_tmpdir("ccce-")
    env = dict(claude_home.env, CCC_CACHE_DIR=str(cache_dir))
    argv = [*_daemon_argv(), "--cache-dir", str(cache_dir), "--config-dir", str(claude_home.config_dir),
            "--log-level", "DEBUG", *daemon_args]  # fmt: skip
    with open(cache_dir / "daemon.stderr", "wb") as err:
        proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err, cwd=claude_home.cwd
        )
    d = Daemon(cache_dir, proc)
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(
                    f"ccc-statusd exited with {proc.returncode}: {(cache_dir / 'daemon.stderr').read_text()}"
                )
            try:
                return (
                    d.request({"type": "query", "query": "ping"}, timeout_s=1).get("data") == "pong"
                )
            except OSError:
                return False

        wait_until(up, DAEMON_START_TIMEOUT_S, "ccc-statusd to answer ping")
        yield d
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(DAEMON_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = None
        shutil.rmtree(cache_dir, ignore_errors=True)
    assert rc == 0, f"ccc-statusd did not exit 0 on SIGTERM (got {rc})"


# --------------------------------------------------------------------------- the CLI (or the socket)


@dataclass
class Ccc:
    """Runs `.venv/bin/ccc` against the test daemon; falls back to the socket while it is missing."""

    daemon: Daemon
    env: dict[str, str]

    def run(self, *args: str, input: str | None = None, timeout_s: float = SOCKET_TIMEOUT_S,
            check: bool = True) -> subprocess.CompletedProcess[str]:  # fmt: skip
        proc = subprocess.run([str(CCC), *args], env=self.env, input=input, capture_output=True,
                              text=True, timeout=timeout_s)  # fmt: skip
        if check and proc.returncode != 0:
            raise AssertionError(
                f"`ccc {shlex.join(args)}` exited {proc.returncode}: {proc.stderr.strip()}"
            )
        return proc

    def sessions(self) -> list[dict[str, Any]]:
        if HAVE_CLI:
            return json.loads(self.run("sessions", "--json").stdout)
        return self.daemon.query("list_sessions")

    def prompt(self, sid: str, text: str) -> str:
        """Send a prompt; return the delivery status the daemon reported (`delivered`/`queued`)."""
        if HAVE_CLI:
            out = self.run("prompt", "--json", sid, text).stdout
            return (
                json.loads(out).get("status", "delivered")
                if out.strip().startswith("{")
                else "delivered"
            )
        resp = self.daemon.request({"type": "prompt", "session_id": sid, "text": text})
        assert not resp.get("error"), resp["error"]
        return resp.get("status") or (resp.get("data") or {}).get("status") or "delivered"

    def command(self, sid: str, name: str) -> None:
        if HAVE_CLI:
            self.run("command", sid, name)
            return
        resp = self.daemon.request({"type": "command", "session_id": sid, "name": name})
        assert not resp.get("error"), resp["error"]


def _hook_settings(claude_home: ClaudeHome, ccc: Ccc) -> None:
    """Wire hooks and the statusLine to this checkout: `ccc install` once it exists."""
    if HAVE_CLI:
        ccc.run("install", "--settings", str(claude_home.settings_path))
        return
    py = shlex.quote(sys.executable)
    cmd = f"{py} -m ccc_statusd.hookcmd"
    events = ("SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "PermissionRequest",
              "Stop", "StopFailure", "Notification", "PreCompact", "SessionEnd")  # fmt: skip
    hooks = {}
    for ev in events:
        group: dict[str, Any] = {"hooks": [{"type": "command", "command": cmd, "timeout": 10}]}
        if ev in ("PreToolUse", "PostToolUse", "PermissionRequest"):
            group["matcher"] = "*"
        hooks[ev] = [group]
    claude_home.write_settings({
        "hooks": hooks,
        "statusLine": {"type": "command", "command": f"{py} -m ccc_statusd.statusline", "padding": 0},
    })  # fmt: skip


@dataclass
class Session:
    """One `ccc run -- claude` in tmux, attached to the daemon."""

    pane: TmuxSession
    home: ClaudeHome
    internal_id: str
    ccc: Ccc

    def record(self) -> dict[str, Any] | None:
        for s in self.ccc.sessions():
            if s.get("internal_id") == self.internal_id:
                return s
        return None

    @property
    def session_id(self) -> str:
        rec = self.record()
        assert rec and rec.get("session_id"), f"session {self.internal_id} has no session id: {rec}"
        return str(rec["session_id"])

    def wait_state(self, state: str, timeout_s: float = TURN_TIMEOUT_S) -> dict[str, Any]:
        return wait_until(lambda: (r := self.record()) and r.get("state") == state and r,
                          timeout_s, f"session {self.internal_id} to be {state}")  # fmt: skip

    def transcript(self) -> str:
        rec = self.record() or {}
        path = rec.get("transcript_path")
        return Path(path).read_text() if path and Path(path).exists() else ""


@pytest.fixture
def start_session(
    claude_home: ClaudeHome, daemon: Daemon, tmux: Callable[[], TmuxSession]
) -> Callable[..., Session]:
    env = dict(claude_home.env, CCC_CACHE_DIR=str(daemon.cache_dir))
    ccc = Ccc(daemon, env)
    _hook_settings(claude_home, ccc)

    def start(build: ClaudeBuild, *claude_args: str, run_args: tuple[str, ...] = ()) -> Session:
        # `ccc run` picks its own internal id; the test's project dir (unique per test) finds it.
        if "run" in CLI_COMMANDS:
            prefix = [str(CCC), "run", *run_args, "--"]
        else:
            log = daemon.cache_dir / f"run-{os.urandom(4).hex()}.log"
            prefix = [
                sys.executable,
                "-m",
                "ccc_statusd.session.pty_host",
                "--log",
                str(log),
                *run_args,
                "--",
            ]
        pane = tmux().start([*prefix, str(build.bin), *claude_args], env=env, cwd=claude_home.cwd)
        claude_home.pids.update(pane.pids_seen)
        wait_ready(pane)
        cwd = str(claude_home.cwd)

        def attached() -> dict[str, Any] | None:
            for r in ccc.sessions():
                if r.get("cwd") == cwd and r.get("connected") and r.get("internal_id"):
                    if r.get("session_id") and r.get("state") == "idle":
                        return r
            return None

        rec = wait_until(
            attached,
            ATTACH_TIMEOUT_S,
            f"the `ccc run` session in {cwd} to attach with its session id; daemon log:\n{daemon.log_tail()}",
        )
        return Session(pane, claude_home, str(rec["internal_id"]), ccc)

    return start


def _turn_requests(api: FakeAnthropic, text: str) -> list[dict[str, Any]]:
    """Main-loop requests (with tools; the Node build also sends tool-less side requests) for `text`."""
    return [r for r in api.messages() if r["n_tools"] > 0 and r["last_user_text"] == text]


# --------------------------------------------------------------------------- native build


def test_session_is_listed_with_its_real_id_model_and_transcript(
    claude_native: ClaudeBuild, start_session: Callable[..., Session], fake_api: FakeAnthropic
) -> None:
    s = start_session(claude_native)
    s.pane.submit("first turn")
    s.pane.wait_for(r"ECHO: first turn", TURN_TIMEOUT_S)
    api_sid = fake_api.wait_for_message(lambda r: r["last_user_text"] == "first turn")[
        "session_header"
    ]
    rec = wait_until(lambda: (r := s.record()) and r.get("model") and r.get("transcript_path") and r,
                     TURN_TIMEOUT_S, "model and transcript path in `ccc sessions`")  # fmt: skip
    assert rec["session_id"] == api_sid
    assert rec["connected"] is True
    assert "opus" in rec["model"].lower() or rec["model"] == "claude-opus-5-5", rec["model"]
    assert rec["transcript_path"] == str(s.home.transcript_dir() / f"{api_sid}.jsonl")
    assert rec["cwd"] == str(s.home.cwd)


def test_prompt_is_typed_submitted_once_and_answered(
    claude_native: ClaudeBuild, start_session: Callable[..., Session], fake_api: FakeAnthropic
) -> None:
    s = start_session(claude_native)
    sid = s.session_id
    # An idle session: typed and confirmed ("submitted"), or "typed" when the confirmation
    # came after the answer; "queued" is also correct, only later (SPEC §7).
    assert s.ccc.prompt(sid[:8], "routed hello") in ("submitted", "typed", "queued")
    s.pane.wait_for(r"ECHO: routed hello", TURN_TIMEOUT_S)
    wait_until(
        lambda: "ECHO: routed hello" in s.transcript(), TURN_TIMEOUT_S, "the echo in the transcript"
    )
    s.wait_state("idle")
    time.sleep(1.0)  # a second submission (double Enter) would show up as another request by now
    assert len(_turn_requests(fake_api, "routed hello")) == 1
    assert (input_box(s.pane.capture()) or "").strip() == "❯", "text left in the input box"


def test_multiline_prompt_arrives_as_one_prompt(
    claude_native: ClaudeBuild, start_session: Callable[..., Session], fake_api: FakeAnthropic
) -> None:
    s = start_session(claude_native)
    text = "line one\nline two\nline three"
    s.ccc.prompt(s.session_id, text)
    fake_api.wait_for_message(lambda r: r["last_user_text"] == text, TURN_TIMEOUT_S)
    s.wait_state("idle")
    time.sleep(1.0)
    texts = [r["last_user_text"] for r in fake_api.messages() if r["n_tools"] > 0]
    assert texts == [text], texts


def test_clear_rotates_the_session_id_and_the_old_id_still_routes(
    claude_native: ClaudeBuild, start_session: Callable[..., Session], fake_api: FakeAnthropic
) -> None:
    s = start_session(claude_native)
    old = s.session_id
    s.ccc.command(old, "clear")
    rec = wait_until(lambda: (r := s.record()) and r.get("session_id") not in (None, old) and r,
                     TURN_TIMEOUT_S, "a new session id after /clear")  # fmt: skip
    new = rec["session_id"]
    assert old in rec.get("aliases", []), rec
    s.wait_state("idle")
    s.ccc.prompt(old, "via the old id")
    req = fake_api.wait_for_message(
        lambda r: r["last_user_text"] == "via the old id", TURN_TIMEOUT_S
    )
    assert req["session_header"] == new
    wait_until(
        lambda: "ECHO: via the old id" in s.transcript(),
        TURN_TIMEOUT_S,
        "the echo in the new transcript",
    )


def test_a_named_session_routes_by_name_and_a_kill_9_ends_it_as_crashed(
    claude_native: ClaudeBuild, start_session: Callable[..., Session], fake_api: FakeAnthropic
) -> None:
    """Issue 16: `ccc run --name api` → the name routes; `kill -9` of Claude → `ended
    (crashed)` within the liveness interval, and sending to it says how to resume it."""
    s = start_session(claude_native, run_args=("--name", "api"))
    rec = s.record()
    assert rec is not None and rec.get("name") == "api" and rec.get("kind") == "pty", rec
    sid = s.session_id
    s.ccc.prompt("api", "hello by name")
    s.pane.wait_for(r"ECHO: hello by name", TURN_TIMEOUT_S)
    s.wait_state("idle")
    pid = rec.get("pid")
    assert isinstance(pid, int) and pid > 1, rec
    os.kill(pid, signal.SIGKILL)

    def crashed() -> dict[str, Any] | None:
        rows = json.loads(s.ccc.run("sessions", "--all", "--json").stdout)
        row = next((r for r in rows if r.get("session_id") == sid), None)
        return row if row and row.get("state") == "ended" else None

    row = wait_until(crashed, 15.0, "the killed session to show as ended")
    assert row.get("end_reason") == "crashed", row
    assert sid not in {r.get("session_id") for r in s.ccc.sessions()}  # not in the live list
    out = s.ccc.run("prompt", sid, "are you there?", check=False)
    assert out.returncode == 1 and "crashed" in out.stderr and "--resume" in out.stderr, out.stderr


def _open_permission_dialog(s: Session) -> Path:
    marker = s.home.cwd / "approved-by-accident"
    s.pane.submit(f"TOOL: touch {marker}")
    s.pane.wait_for(r"Do you want to proceed\?", TURN_TIMEOUT_S)
    return marker


def test_prompt_is_queued_not_typed_into_a_permission_dialog(
    claude_native: ClaudeBuild, start_session: Callable[..., Session]
) -> None:
    s = start_session(claude_native, "--permission-mode", "manual")
    marker = _open_permission_dialog(s)
    assert s.ccc.prompt(s.session_id, "while the dialog is open") == "queued"
    time.sleep(1.5)  # a typed Enter would have approved the tool call by now
    assert not marker.exists(), "the routed prompt's Enter approved the tool call"
    s.pane.wait_for(r"Do you want to proceed\?", 1)  # the dialog is still there, untouched
    assert "while the dialog is open" not in s.pane.capture()


def _manual_mode(build: ClaudeBuild) -> tuple[str, str]:
    # 2.1.331 starts in "auto mode"; "manual" brings the dialogs back. 2.1.112 calls it "default".
    return ("--permission-mode", "manual" if build.native else "default")


def test_prompt_queued_behind_a_rejected_dialog_is_delivered(
    claude_build: ClaudeBuild, start_session: Callable[..., Session], fake_api: FakeAnthropic
) -> None:
    s = start_session(claude_build, *_manual_mode(claude_build))
    marker = _open_permission_dialog(s)
    s.wait_state("waiting", 10.0)  # PermissionRequest
    assert s.ccc.prompt(s.session_id, "after the dialog") == "queued"
    s.pane.send_keys("Escape")  # the human rejects the tool call; Claude Code is idle again
    # The interrupt line reaches the transcript ~0.2 s after the Escape; 10 s is plenty.
    fake_api.wait_for_message(lambda r: r["last_user_text"] == "after the dialog", 10.0)
    s.pane.wait_for(r"ECHO: after the dialog", TURN_TIMEOUT_S)
    assert not marker.exists()
    s.wait_state("idle")  # the delivered prompt's own Stop


def test_prompt_queued_behind_an_interrupted_tool_run_is_delivered(
    claude_native: ClaudeBuild, start_session: Callable[..., Session], fake_api: FakeAnthropic
) -> None:
    s = start_session(claude_native, *_manual_mode(claude_native))
    marker = s.home.cwd / "finished"
    # 2.1.331 refuses `sleep N; …` (it wants its Monitor tool), so block on something else.
    s.pane.submit(f"TOOL: timeout 30 tail -f /dev/null; touch {marker}")
    s.pane.wait_for(r"Do you want to proceed\?", TURN_TIMEOUT_S)
    time.sleep(0.8)  # an Enter sent while the dialog is still being drawn is lost
    s.pane.send_keys("Enter")  # approve: the tool runs; no hook fires until it ends
    wait_until(
        lambda: "Do you want to proceed" not in s.pane.capture(), 10.0, "the dialog to close"
    )
    time.sleep(1.0)
    assert (s.record() or {}).get("state") == "waiting"  # PermissionRequest; nothing fired since
    assert s.ccc.prompt(s.session_id, "after the interrupt") == "queued"
    s.pane.send_keys("Escape")  # interrupts the tool: no PostToolUse, no Stop, no statusLine
    fake_api.wait_for_message(lambda r: r["last_user_text"] == "after the interrupt", 10.0)
    assert not marker.exists()


def test_statusline_feeds_context_window(
    claude_native: ClaudeBuild, start_session: Callable[..., Session], daemon: Daemon
) -> None:
    s = start_session(claude_native)
    s.pane.submit("fill the context")
    s.pane.wait_for(r"ECHO: fill the context", TURN_TIMEOUT_S)
    sid = s.session_id

    def row() -> tuple[Any, ...] | None:
        with sqlite3.connect(daemon.cache_dir / "scheduled.db", timeout=5) as db:
            db.row_factory = sqlite3.Row
            r = db.execute("select * from context_window where session_id = ?", (sid,)).fetchone()
        db.close()
        return dict(r) if r else None

    got = wait_until(row, TURN_TIMEOUT_S, f"a context_window row for {sid}")
    assert any(isinstance(v, (int, float)) and v > 0 for k, v in got.items() if "token" in k), got


@needs_cli("ask")
def test_ask_prints_the_echo_reply(
    claude_native: ClaudeBuild, start_session: Callable[..., Session]
) -> None:
    s = start_session(claude_native)
    out = s.ccc.run("ask", s.session_id, "what is the answer", timeout_s=TURN_TIMEOUT_S + 10).stdout
    assert "ECHO: what is the answer" in out


@needs_cli("schedule")
def test_schedule_in_2s_is_delivered(
    claude_native: ClaudeBuild, start_session: Callable[..., Session], fake_api: FakeAnthropic
) -> None:
    s = start_session(claude_native)
    t0 = time.monotonic()
    s.ccc.run("schedule", s.session_id, "scheduled hello", "--in", "2s")
    fake_api.wait_for_message(lambda r: r["last_user_text"] == "scheduled hello", TURN_TIMEOUT_S)
    assert time.monotonic() - t0 >= 1.5, "delivered before it was due"
    s.pane.wait_for(r"ECHO: scheduled hello", TURN_TIMEOUT_S)


@needs_cli("watch")
def test_watch_json_shows_the_turn(
    claude_native: ClaudeBuild,
    start_session: Callable[..., Session],
    daemon: Daemon,
    claude_home: ClaudeHome,
) -> None:
    s = start_session(claude_native)
    env = dict(claude_home.env, CCC_CACHE_DIR=str(daemon.cache_dir))
    out_path = claude_home.root / "watch.jsonl"
    with open(out_path, "wb") as out:
        watch = subprocess.Popen([str(CCC), "watch", "--json"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        time.sleep(0.5)  # subscribed before the turn starts
        s.ccc.prompt(s.session_id, "watched turn")
        s.pane.wait_for(r"ECHO: watched turn", TURN_TIMEOUT_S)

        def seen() -> bool:
            text = out_path.read_text()
            return "watched turn" in text and "Stop" in text

        wait_until(seen, TURN_TIMEOUT_S, "the prompt and its Stop in `ccc watch --json`")
        for line in out_path.read_text().splitlines():
            json.loads(line)  # every line is JSON
    finally:
        watch.terminate()
        watch.wait(10)


# --------------------------------------------------------------------------- Node build


def test_node_build_session_is_listed_and_answers_a_routed_prompt(
    claude_node: ClaudeBuild, start_session: Callable[..., Session], fake_api: FakeAnthropic
) -> None:
    s = start_session(claude_node)
    rec = s.record()
    assert rec and rec["connected"] is True
    s.ccc.prompt(s.session_id, "hello old node")
    s.pane.wait_for(r"ECHO: hello old node", TURN_TIMEOUT_S)
    assert _turn_requests(fake_api, "hello old node")


def _eval(s: Session, code: str) -> Any:
    """`ccc eval --json SESSION CODE` → the value the injection sent back."""
    reply = json.loads(s.ccc.run("eval", "--json", s.session_id, code).stdout)
    assert reply.get("status") == "delivered", reply
    return reply["data"]["result"]


def _parent_cmdline(pid: int) -> str:
    ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return Path(f"/proc/{ppid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


@needs_cli("eval", "run")
@needs_inject
@pytest.mark.parametrize("daemon_args", [["--allow-eval"]])
def test_node_build_eval_returns_a_value_from_inside_claude(
    claude_node: ClaudeBuild, start_session: Callable[..., Session]
) -> None:
    # NODE_OPTIONS=--require loads the injection into cli.js (argv[1] is npm's .bin/claude symlink).
    s = start_session(claude_node, run_args=("--inject",))
    assert (s.record() or {}).get("kind") == "inject", s.record()
    code = "[process.pid, require('fs').realpathSync(process.argv[1]), process.versions.bun ? 'bun' : 'node']"
    pid, real_main, runtime = _eval(s, code)
    assert real_main.endswith("/@anthropic-ai/claude-code/cli.js") and runtime == "node"
    assert " run --inject " in _parent_cmdline(pid)  # the Claude Code process `ccc run` started
    with pytest.raises(AssertionError, match="ReferenceError"):
        _eval(s, "no_such_variable")
    s.ccc.prompt(s.session_id, "after eval")  # delivered by the injection's stdin.push
    s.pane.wait_for(r"ECHO: after eval", TURN_TIMEOUT_S)


@needs_cli("eval", "run")
@needs_inject
@pytest.mark.parametrize("daemon_args", [["--allow-eval"]])
def test_native_build_eval_through_bun_preload(
    claude_native: ClaudeBuild, start_session: Callable[..., Session]
) -> None:
    # BUN_OPTIONS=--preload is a Bun runtime feature the compiled binary happens to honour
    # (FACTS §5d, 2.1.331): if a build stops honouring it, `ccc run --inject` falls back to the
    # pty client (kind "pty") and this test says so.
    s = start_session(claude_native, run_args=("--inject",))
    kind = (s.record() or {}).get("kind")
    if kind != "inject":
        pytest.xfail(
            f"Claude Code {claude_native.version} did not load BUN_OPTIONS=--preload (kind {kind!r})"
        )
    pid, main, bun = _eval(s, "[process.pid, process.argv[1], process.versions.bun]")
    assert main == "/$bunfs/root/cli" and bun, (main, bun)
    assert " run --inject " in _parent_cmdline(pid)
    s.ccc.prompt(s.session_id, "native after eval")
    s.pane.wait_for(r"ECHO: native after eval", TURN_TIMEOUT_S)
