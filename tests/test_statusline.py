"""`ccc statusline`: the pure renderer on the real Claude Code payloads, and the command itself
against no daemon, a hung daemon, a fake daemon that answers, garbage, and `--wrap`."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccc_statusd import statusline
from ccc_statusd.statusline import (
    fields,
    main,
    parse_args,
    read_git_branch,
    render,
    truncate,
    visible_width,
)

from .fixtures import VERSIONS, fixture_bytes, fixture_path

REPO = Path(__file__).resolve().parent.parent


def fixture(version: str, name: str) -> dict[str, Any]:
    return json.loads(fixture_path(name, version).read_text())


# --- render(): pure ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "model", "ctx", "cost", "short"),
    [
        ("v2.1.331", "Opus 5.5", "ctx 1%", "$0.06", "6656f299"),
        ("v2.1.112", "Sonnet 4.6", "ctx 13%", "$0.08", "51e5eb10"),
    ],
)
def test_render_fixture_after_a_turn(
    version: str, model: str, ctx: str, cost: str, short: str
) -> None:
    line = render(fixture(version, "statusline.json"), None, columns=None, color=False, fmt=None)
    assert line == f"{model} · {ctx} · {cost} · {short} · ccc off"


@pytest.mark.parametrize("version", VERSIONS)
def test_render_startup_payload_with_null_context(version: str) -> None:
    payload = fixture(version, "statusline-startup.json")
    assert payload["context_window"]["used_percentage"] is None
    line = render(payload, {}, columns=None, color=False, fmt=None)
    assert "ctx" not in line
    assert "$0.00" in line
    values = fields(payload, {})
    assert values["ctx_pct"] is None and values["ctx_tokens"] is None
    assert values["ctx_size"] in ("1M", "200k")


def test_render_daemon_info() -> None:
    payload = fixture("v2.1.331", "statusline.json")
    info = {
        "short_id": "6656f299",
        "state": "idle",
        "scheduled": 2,
        "others_busy": 1,
        "others_waiting": 3,
        "branch": "feature/x",
    }
    line = render(payload, info, columns=None, color=False, fmt=None)
    assert line == (
        "Opus 5.5 · ctx 1% · $0.06 · feature/x · 6656f299 · 2 scheduled · 1 busy · 3 waiting"
    )


def test_render_zero_counts_and_partial_info_stay_quiet() -> None:
    payload = fixture("v2.1.112", "statusline.json")
    line = render(payload, {"scheduled": 0, "others_busy": 0}, columns=None, color=False, fmt=None)
    assert line == "Sonnet 4.6 · ctx 13% · $0.08 · 51e5eb10"


def test_render_fallback_branch_only_when_daemon_has_none() -> None:
    payload = fixture("v2.1.112", "statusline.json")
    assert "local" in render(payload, None, branch="local")
    assert "remote" in render(payload, {"branch": "remote"}, branch="local")
    assert "local" in render(payload, {"branch": None}, branch="local")


def test_render_colour() -> None:
    payload = fixture("v2.1.331", "statusline.json")
    coloured = render(payload, {"others_waiting": 1}, columns=None, color=True, fmt=None)
    assert "\x1b[36mOpus 5.5\x1b[0m" in coloured
    assert "\x1b[33m1 waiting\x1b[0m" in coloured
    plain = render(payload, {"others_waiting": 1}, columns=None, color=False, fmt=None)
    assert "\x1b" not in plain
    assert statusline.strip_ansi(coloured) == plain


@pytest.mark.parametrize("color", [False, True])
@pytest.mark.parametrize("columns", [1, 10, 25, 40])
def test_render_fits_columns(columns: int, color: bool) -> None:
    payload = fixture("v2.1.331", "statusline.json")
    info = {"scheduled": 2, "others_busy": 1, "others_waiting": 3, "branch": "main"}
    full = render(payload, info, columns=None, color=color, fmt=None)
    line = render(payload, info, columns=columns, color=color, fmt=None)
    assert visible_width(line) <= columns < visible_width(full)
    assert statusline.strip_ansi(line).endswith("…")
    if color:
        assert line.endswith("\x1b[0m"), "a cut must not leave colour switched on"


def test_render_wide_characters_count_two_cells() -> None:
    line = render({"model": {"display_name": "模型模型模型"}}, {}, columns=7, color=False, fmt=None)
    assert visible_width(line) <= 7
    assert line == "模型模…"


def test_render_fits_when_wide_enough() -> None:
    payload = fixture("v2.1.331", "statusline.json")
    full = render(payload, {}, columns=None, color=True, fmt=None)
    assert render(payload, {}, columns=200, color=True, fmt=None) == full


def test_format_template() -> None:
    payload = fixture("v2.1.331", "statusline.json")
    info = {"short_id": "6656f299", "scheduled": 4, "others_busy": 1, "others_waiting": 0}
    fmt = "{model} {ctx_pct}% ${cost} {branch} {short_id} s={scheduled} b={busy} w={waiting} {ctx_tokens}/{ctx_size} {dir} {daemon}"
    line = render(payload, info, columns=None, color=False, fmt=fmt)
    assert line == "Opus 5.5 1% $0.06 - 6656f299 s=4 b=1 w=0 14k/1M project up"


def test_format_colour_fields_follow_color_flag() -> None:
    payload = fixture("v2.1.331", "statusline.json")
    fmt = "{bold}{model}{reset}"
    assert render(payload, None, color=False, fmt=fmt) == "Opus 5.5"
    assert render(payload, None, color=True, fmt=fmt) == "\x1b[1mOpus 5.5\x1b[0m"


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("{nope}", "unknown --format field {nope}"),
        ("{model", "bad --format template"),
        ("{0}", "bad --format template"),
        ("a\nb", "a b"),
    ],
)
def test_format_errors_become_the_line(fmt: str, expected: str) -> None:
    line = render({"model": {"id": "m"}}, None, color=False, fmt=fmt)
    assert expected in line
    assert "\n" not in line


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"model": 5, "cost": {"total_cost_usd": "x"}, "context_window": {"used_percentage": True}},
        {"model": {"display_name": None, "id": "claude-x"}, "cost": None, "context_window": []},
        {"model": {"display_name": "evil\x1b[2J\nname"}, "session_id": "\x07bell"},
        {"context_window": {"used_percentage": float("nan"), "context_window_size": 0}},
    ],
)
def test_render_odd_payloads_never_raise(payload: dict[str, Any]) -> None:
    for info in (None, {}, {"scheduled": "x", "others_busy": -1, "short_id": 5, "branch": 7}):
        line = render(payload, info, columns=80, color=True, fmt=None)
        assert "\n" not in line and "\x07" not in line and "\x1b[2J" not in line


def test_context_percent_computed_when_claude_code_omits_it() -> None:
    payload = {
        "context_window": {
            "context_window_size": 200000,
            "current_usage": {"input_tokens": 20000, "cache_read_input_tokens": 6000},
        }
    }
    values = fields(payload, None)
    assert values["ctx_pct"] == "13"
    assert values["ctx_tokens"] == "26k"


# --- git branch ---------------------------------------------------------------------------


def test_read_git_branch(short_dir: Path) -> None:
    repo = short_dir / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/feature/x\n")
    (repo / "a" / "b").mkdir(parents=True)
    assert read_git_branch(str(repo)) == "feature/x"
    assert read_git_branch(str(repo / "a" / "b")) == "feature/x"

    (repo / ".git" / "HEAD").write_text("0123456789abcdef0123456789abcdef01234567\n")
    assert read_git_branch(str(repo)) == "0123456"

    # A worktree: .git is a file pointing at the real git dir.
    wt = short_dir / "wt"
    wt.mkdir()
    gitdir = repo / ".git" / "worktrees" / "wt"
    gitdir.mkdir(parents=True)
    (gitdir / "HEAD").write_text("ref: refs/heads/other\n")
    (wt / ".git").write_text(f"gitdir: {gitdir}\n")
    assert read_git_branch(str(wt)) == "other"

    assert read_git_branch(str(short_dir / "missing" / "dir")) is None


# --- main(): the command ------------------------------------------------------------------


def _env(cache: Path, **extra: str) -> dict[str, str]:
    env = {"CCC_CACHE_DIR": str(cache), "HOME": str(cache), "PATH": os.environ.get("PATH", "")}
    env.update(extra)
    return env


def _run_main(data: bytes, env: dict[str, str], **kw: Any) -> str:
    out = io.StringIO()
    assert main(stdin=io.BytesIO(data), stdout=out, env=env, **kw) == 0
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1, text
    return text[:-1]


def test_main_without_daemon(short_dir: Path) -> None:
    data = fixture_bytes("statusline", "v2.1.112")
    line = _run_main(data, _env(short_dir, NO_COLOR="1"))
    assert line == "Sonnet 4.6 · ctx 13% · $0.08 · 51e5eb10 · ccc off"


def test_main_colour_unless_no_color(short_dir: Path) -> None:
    data = fixture_bytes("statusline", "v2.1.112")
    assert "\x1b[" in _run_main(data, _env(short_dir))
    assert "\x1b[" not in _run_main(data, _env(short_dir, NO_COLOR="1"))


def test_main_honours_columns(short_dir: Path) -> None:
    data = fixture_bytes("statusline", "v2.1.331")
    line = _run_main(data, _env(short_dir, COLUMNS="20"))
    assert visible_width(line) <= 20
    line = _run_main(data, _env(short_dir, COLUMNS="garbage", NO_COLOR="1"))
    assert line.endswith("ccc off")


def test_main_reads_branch_from_git_head(short_dir: Path) -> None:
    repo = short_dir / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/topic\n")
    payload = fixture("v2.1.112", "statusline.json")
    payload["workspace"]["current_dir"] = str(repo)
    line = _run_main(json.dumps(payload).encode(), _env(short_dir, NO_COLOR="1"))
    assert " · topic · " in line


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"[1,2]", b"\xff\xfe\x00", b"{" * 100000, b" " * (1024 * 1024 + 10)],
)
def test_main_garbage_stdin(short_dir: Path, data: bytes) -> None:
    assert _run_main(data, _env(short_dir)) == statusline.NO_PAYLOAD_LINE


class FakeDaemon:
    """A one-thread Unix socket server: records each request line, answers with ``reply``
    (None: accept and never answer — the hung daemon)."""

    def __init__(self, path: Path, reply: dict[str, Any] | None) -> None:
        self.path = path
        self.reply = reply
        self.requests: list[dict[str, Any]] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(16)
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            if self.reply is None:
                continue
            buf = b""
            while b"\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                buf += chunk
            self.requests.append(json.loads(buf.split(b"\n")[0]))
            conn.sendall(json.dumps(self.reply).encode() + b"\n")

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def daemon_factory(short_dir: Path) -> Iterator[Any]:
    made: list[FakeDaemon] = []

    def make(reply: dict[str, Any] | None) -> FakeDaemon:
        d = FakeDaemon(short_dir / "daemon.sock", reply)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


def test_main_with_answering_daemon(short_dir: Path, daemon_factory: Any) -> None:
    daemon = daemon_factory(
        {
            "type": "response",
            "data": {
                "short_id": "6656f299",
                "state": "idle",
                "scheduled": 2,
                "others_busy": 1,
                "others_waiting": 1,
                "branch": "main",
            },
        }
    )
    payload = fixture("v2.1.331", "statusline.json")
    env = _env(
        short_dir, NO_COLOR="1", CCC_INTERNAL_ID="abc-123", CLAUDE_PID="9891", TMUX_PANE="%3"
    )
    line = _run_main(json.dumps(payload).encode(), env)
    assert line == "Opus 5.5 · ctx 1% · $0.06 · main · 6656f299 · 2 scheduled · 1 busy · 1 waiting"
    (request,) = daemon.requests
    assert request["type"] == "statusline"
    assert request["data"] == payload
    assert request["internal_id"] == "abc-123"
    assert request["env"]["CLAUDE_PID"] == "9891" and request["env"]["TMUX_PANE"] == "%3"
    assert request["env"]["PPID"] == str(os.getppid())

    # The message is one the daemon's own protocol accepts.
    from ccc_statusd import protocol

    assert protocol.validate(request).type == "statusline"


def test_main_unsafe_internal_id_is_not_sent(short_dir: Path, daemon_factory: Any) -> None:
    daemon = daemon_factory({"type": "response", "data": {}})
    data = fixture_bytes("statusline", "v2.1.112")
    _run_main(data, _env(short_dir, CCC_INTERNAL_ID="../etc"))
    assert "internal_id" not in daemon.requests[0]


def test_main_daemon_error_reply_renders_payload(short_dir: Path, daemon_factory: Any) -> None:
    daemon_factory({"type": "response", "error": "statusline data needs ..."})
    data = fixture_bytes("statusline", "v2.1.112")
    line = _run_main(data, _env(short_dir, NO_COLOR="1"))
    assert line == "Sonnet 4.6 · ctx 13% · $0.08 · 51e5eb10"


def test_main_hung_daemon_still_prints_within_250ms(short_dir: Path, daemon_factory: Any) -> None:
    daemon_factory(None)  # accepts, never answers
    data = fixture_bytes("statusline", "v2.1.331")
    start = time.monotonic()
    line = _run_main(data, _env(short_dir, NO_COLOR="1"))
    elapsed = time.monotonic() - start
    # The spec's one timing promise: a hung daemon costs at most the ~150 ms deadline.
    assert elapsed < 0.25, f"took {elapsed:.3f} s"
    assert line.endswith("ccc off")


# --- --wrap ----------------------------------------------------------------------------


def test_wrap_runs_command_with_same_stdin(short_dir: Path, daemon_factory: Any) -> None:
    daemon = daemon_factory({"type": "response", "data": {"short_id": "x"}})
    data = fixture_bytes("statusline", "v2.1.331")
    seen = short_dir / "seen.json"
    out = io.BytesIO()
    cmd = f"cat > {seen}; printf 'their \\033[1mline\\033[0m\\n'"
    assert main(wrap=cmd, stdin=io.BytesIO(data), stdout=out, env=_env(short_dir)) == 0
    assert out.getvalue() == b"their \x1b[1mline\x1b[0m\n"
    assert seen.read_bytes() == data
    assert daemon.requests[0]["data"] == json.loads(data)


def test_wrap_failing_command_falls_back_to_our_line(short_dir: Path) -> None:
    data = fixture_bytes("statusline", "v2.1.112")
    line = _run_main(data, _env(short_dir, NO_COLOR="1"), wrap="exit 3")
    assert line.startswith("Sonnet 4.6 · ctx 13%")


def test_wrap_failing_command_with_output_keeps_its_output(short_dir: Path) -> None:
    out = io.BytesIO()
    main(wrap="echo partial; exit 1", stdin=io.BytesIO(b"{}"), stdout=out, env=_env(short_dir))
    assert out.getvalue() == b"partial\n"


def test_parse_args() -> None:
    assert parse_args([]) == (None, None)
    assert parse_args(["--format", "{model}", "--wrap", "x y"]) == ("{model}", "x y")
    assert parse_args(["--format={model}", "--wrap=cmd", "--unknown"]) == ("{model}", "cmd")
    assert parse_args(["--format"]) == (None, None)


# --- as a process, the way Claude Code runs it ---------------------------------------------


def _spawn(
    args: list[str], data: bytes, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[bytes], float]:
    env = {**env, "PYTHONPATH": str(REPO)}
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "ccc_statusd.statusline", *args],
        input=data,
        capture_output=True,
        env=env,
        cwd=str(REPO),
        timeout=30,
    )
    return proc, time.monotonic() - start


def test_process_daemon_down_and_garbage(short_dir: Path) -> None:
    data = fixture_bytes("statusline", "v2.1.331")
    proc, _ = _spawn([], data, _env(short_dir, NO_COLOR="1"))
    assert proc.returncode == 0 and proc.stderr == b""
    assert proc.stdout.decode() == "Opus 5.5 · ctx 1% · $0.06 · 6656f299 · ccc off\n"

    proc, _ = _spawn(["--format", "{"], b"\x00garbage", _env(short_dir))
    assert proc.returncode == 0 and proc.stderr == b""
    assert proc.stdout.count(b"\n") == 1


def test_process_hung_daemon_prints_promptly(short_dir: Path, daemon_factory: Any) -> None:
    daemon_factory(None)
    data = fixture_bytes("statusline", "v2.1.112")
    proc, elapsed = _spawn([], data, _env(short_dir, NO_COLOR="1"))
    assert proc.returncode == 0
    assert proc.stdout.decode().startswith("Sonnet 4.6")
    # Interpreter start-up is included here and varies with machine load, so this bound is
    # loose; the 250 ms promise itself is asserted in-process above.
    assert elapsed < 2.0


def test_process_wrap(short_dir: Path) -> None:
    data = fixture_bytes("statusline", "v2.1.112")
    proc, _ = _spawn(["--wrap", "wc -c"], data, _env(short_dir))
    assert proc.returncode == 0
    assert int(proc.stdout) == len(data)


def test_main_forwards_lone_surrogates_as_valid_json(short_dir: Path, daemon_factory: Any) -> None:
    daemon = daemon_factory({"type": "response", "data": {}})
    data = b'{"session_id": "abc", "model": {"display_name": "x\\ud800y"}}'
    _run_main(data, _env(short_dir))
    assert daemon.requests[0]["data"]["model"]["display_name"] == "x\ud800y"


# --- the string scanning that replaced `re` (issue 9: `re` costs ~5 ms of start-up) --------

_REF_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_REF_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# Characters that make escape sequences (and near misses) likely, plus wide and combining ones.
_TEXT = st.text(
    alphabet=st.sampled_from(list("\x1b[;0123456789mKAzé漢\u0301 ab\n\x7f\x00")), max_size=40
)


def _ref_truncate(text: str, columns: int) -> str:
    """truncate() as it was written with ``re`` (the reference for the str-method version)."""
    if columns <= 0 or visible_width(text) <= columns:
        return text
    out: list[str] = []
    used = pos = 0
    had_escape = False
    while pos < len(text):
        m = _REF_ANSI_RE.match(text, pos)
        if m:
            out.append(m.group())
            had_escape = True
            pos = m.end()
            continue
        w = statusline._cell_width(text[pos])
        if used + w > columns - 1:
            break
        out.append(text[pos])
        used += w
        pos += 1
    out.append("…")
    if had_escape:
        out.append("\x1b[0m")
    return "".join(out)


@given(_TEXT)
def test_strip_ansi_and_clean_match_the_regexes(text: str) -> None:
    assert statusline.strip_ansi(text) == _REF_ANSI_RE.sub("", text)
    assert statusline._clean(text, 1000) == _REF_CONTROL_RE.sub("", text)


@given(_TEXT, st.integers(min_value=-1, max_value=30))
def test_truncate_matches_the_regex_version(text: str, columns: int) -> None:
    assert truncate(text, columns) == _ref_truncate(text, columns)
