"""`ccc statusline`: Claude Code's statusLine command. Owns the payload forwarding and the line.

Claude Code runs this command at start-up and ~0.3 s after every turn, feeding one JSON object
on stdin, and shows whatever we print (ANSI colours included) under the input box. A command
that fails leaves a blank line; a slow one is never killed, it just keeps the old line on screen.
So this module must start fast (stdlib only, nothing heavy at import — like the rest of the send
path, not even ``json``, ``re``, ``typing``, ``pathlib`` or ``socket``: see
:mod:`ccc_statusd.client`), never hang, never print a traceback, always print exactly one line
and exit 0.

Theory of operation:
1. read stdin, bounded (``MAX_STDIN_BYTES``); a TTY on stdin is not read (someone typed the
   command by hand);
2. with ``--wrap CMD``: start ``sh -c CMD`` at once, so it runs while we talk to the daemon;
3. send ``{"type":"statusline","data":<payload>,...}`` to the daemon and wait for its reply, all
   under one hard deadline (``REPLY_DEADLINE_S``) covering connect, send and receive;
4. print: with ``--wrap``, CMD's line and ccc's segment together (:func:`combine`:
   ``--wrap-position right`` (default) puts ccc's part after CMD's first line, ``left`` before
   it, ``none`` prints CMD's output alone; ``--separator`` between them, default ``" │ "``;
   ``--format`` shapes ccc's part, by default only what CMD cannot know: short id, queued,
   busy/waiting counts); else :func:`render` of the payload plus what the daemon knows (``data`` of its reply: ``short_id``, ``state``, ``scheduled``, ``others_busy``,
   ``others_waiting``, ``branch``; any key may be missing).

``--format`` template fields (``str.format`` syntax; a missing value renders as ``-``):

=============== ============================================================================
``model``       model display name (``Opus 5.5``), else the model id
``model_id``    model id (``claude-opus-5-5``)
``ctx_pct``     context window used, percent (``13``)
``ctx_tokens``  tokens in the context window (``26k``)
``ctx_size``    context window size (``200k``, ``1M``)
``cost``        session cost in USD, two decimals (``0.08``); write ``${cost}`` for ``$0.08``
``lines``       lines added/removed (``+12/-3``)
``branch``      git branch (from the daemon, else ``.git/HEAD`` of the workspace)
``dir``         last component of the workspace directory
``version``     Claude Code version
``session_id``  full session id;  ``short_id``: its first 8 characters (or the daemon's)
``state``       this session's state as the daemon sees it (``idle``, ``busy``, ``waiting``)
``scheduled``   prompts scheduled or queued for this session
``busy``        how many OTHER sessions are busy;  ``waiting``: how many wait for their user
``daemon``      ``up`` when the daemon answered in time, else ``down``
colours         ``{bold} {dim} {red} {green} {yellow} {blue} {magenta} {cyan} {reset}``:
                ANSI codes, empty when colour is off (``NO_COLOR``)
=============== ============================================================================

Example: ``ccc statusline --format '{cyan}{model}{reset} {ctx_pct}% ${cost} {branch} {short_id}'``.
"""

from __future__ import annotations

import _socket
import io
import os
import sys
import time

from ccc_statusd import fastjson
from ccc_statusd.client import default_socket_path
from ccc_statusd.hookcmd import identified_message
from ccc_statusd.peercheck import foreign_server
from ccc_statusd.safeio import read_bounded
from ccc_statusd.termsafe import clean

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import IO, Any

# Claude Code's payload is ~2 KiB; anything near this is not a statusLine payload. Same bound
# as the daemon's line limit, so whatever we read can also be forwarded.
MAX_STDIN_BYTES = 1024 * 1024

# The whole daemon round trip (connect + send + receive) must fit in this. The reply is one
# small line; a healthy daemon answers in well under 10 ms, so 150 ms only ever expires when
# the daemon is hung, and Claude Code then still gets its line about 0.2 s after calling us.
REPLY_DEADLINE_S = 0.1  # plus ~60-100 ms of start-up: under the 250 ms a hung daemon may cost

# The daemon's reply is a few hundred bytes; refuse to buffer more than this.
MAX_REPLY_BYTES = 64 * 1024

# Environment variables forwarded to the daemon: they tell it which process, pane or wrapper
# this session lives in (FACTS §3.1: Claude Code's own environment reaches the statusLine).
FORWARDED_ENV_KEYS = (
    "CCC_INTERNAL_ID",
    "CLAUDE_PID",
    "CLAUDE_CODE_SESSION_ID",
    "CLAUDE_CONFIG_DIR",
    "CLAUDE_PROJECT_DIR",
    "CLAUDE_CODE_MESSAGING_SOCKET",
    "TMUX",
    "TMUX_PANE",
    "TERM_PROGRAM",
    "COLUMNS",
)

# Upper bound on how many parent directories we climb looking for `.git`.
MAX_GIT_SEARCH_DEPTH = 64

SEPARATOR = " · "
# What a person running the command by hand (or Claude Code sending garbage) sees.
WRAP_SEPARATOR = " │ "
WRAP_POSITIONS = ("right", "left", "none")
NO_PAYLOAD_LINE = "ccc statusline: no statusLine JSON object on stdin"
MISSING = "-"

_COLOURS = {
    "bold": "\x1b[1m",
    "dim": "\x1b[2m",
    "red": "\x1b[31m",
    "green": "\x1b[32m",
    "yellow": "\x1b[33m",
    "blue": "\x1b[34m",
    "magenta": "\x1b[35m",
    "cyan": "\x1b[36m",
    "reset": "\x1b[0m",
}
# C0 controls and DEL, deleted by str.translate (``re`` would cost ~5 ms of start-up).
_CSI_PARAMS = frozenset("0123456789;")

FIELD_NAMES = (
    "model",
    "model_id",
    "ctx_pct",
    "ctx_tokens",
    "ctx_size",
    "cost",
    "lines",
    "branch",
    "dir",
    "version",
    "session_id",
    "short_id",
    "state",
    "scheduled",
    "busy",
    "waiting",
    "daemon",
)


# --- pure rendering -----------------------------------------------------------------------


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _number(value: Any) -> float | None:
    # bool is an int subclass; a JSON true is not a count.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return value


def _count(value: Any) -> int | None:
    n = _number(value)
    return None if n is None or n < 0 else int(n)


def _human_tokens(n: float) -> str:
    if n < 1000:
        return str(int(n))
    if n < 1_000_000:
        return f"{n / 1000:.0f}k"
    text = f"{n / 1_000_000:.1f}".removesuffix(".0")
    return f"{text}M"


def _clean(text: str, limit: int = 200) -> str:
    # Payload strings end up on the user's terminal: no escape sequences, no newlines.
    return clean(text)[:limit]


def _escape_end(text: str, pos: int) -> int:
    """The end of the SGR-style escape sequence (``ESC [ digits/; letter``) starting at ``pos``,
    or -1 when none starts there."""
    if not text.startswith("\x1b[", pos):
        return -1
    end = pos + 2
    while end < len(text) and text[end] in _CSI_PARAMS:
        end += 1
    if end < len(text) and text[end].isascii() and text[end].isalpha():
        return end + 1
    return -1


def strip_ansi(text: str) -> str:
    """``text`` without its ``ESC [ digits/; letter`` escape sequences."""
    if "\x1b" not in text:
        return text
    out: list[str] = []
    kept = 0  # text[kept:] is not yet copied to out
    esc = text.find("\x1b")
    while esc >= 0:
        end = _escape_end(text, esc)
        if end < 0:
            esc = text.find("\x1b", esc + 1)
            continue
        out.append(text[kept:esc])
        kept = end
        esc = text.find("\x1b", end)
    out.append(text[kept:])
    return "".join(out)


def _context_used(payload: dict[str, Any]) -> tuple[int | None, float | None, float | None]:
    """(used percent, tokens in the window, window size); None where unknown."""
    cw = payload.get("context_window")
    if not isinstance(cw, dict):
        return None, None, None
    size = _number(cw.get("context_window_size"))
    usage = cw.get("current_usage")
    tokens: float | None = None
    if isinstance(usage, dict):
        parts = [
            _number(usage.get(k))
            for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        ]
        known = [p for p in parts if p is not None]
        tokens = sum(known) if known else None
    pct_raw = _number(cw.get("used_percentage"))
    pct: int | None
    if pct_raw is not None:
        pct = round(pct_raw)
    elif tokens is not None and size:
        pct = round(100 * tokens / size)
    else:
        pct = None
    return pct, tokens, size if size else None


def fields(
    payload: dict[str, Any], info: dict[str, Any] | None, branch: str | None = None
) -> dict[str, str | None]:
    """Every template field as display text, None where unknown. ``info`` is the daemon's
    reply ``data`` (None: the daemon did not answer); ``branch`` is used when ``info`` has none."""
    payload = payload if isinstance(payload, dict) else {}
    data = info if isinstance(info, dict) else {}
    out: dict[str, str | None] = dict.fromkeys(FIELD_NAMES)

    model = payload.get("model")
    if isinstance(model, dict):
        mid = model.get("id")
        name = model.get("display_name")
        out["model_id"] = _clean(mid) if isinstance(mid, str) and mid else None
        out["model"] = _clean(name) if isinstance(name, str) and name else out["model_id"]
    elif isinstance(model, str) and model:
        out["model"] = out["model_id"] = _clean(model)

    pct, tokens, size = _context_used(payload)
    out["ctx_pct"] = None if pct is None else str(pct)
    out["ctx_tokens"] = None if tokens is None else _human_tokens(tokens)
    out["ctx_size"] = None if size is None else _human_tokens(size)

    cost = _number(_get(payload, "cost", "total_cost_usd"))
    out["cost"] = None if cost is None else f"{cost:.2f}"
    added = _count(_get(payload, "cost", "total_lines_added"))
    removed = _count(_get(payload, "cost", "total_lines_removed"))
    if added is not None or removed is not None:
        out["lines"] = f"+{added or 0}/-{removed or 0}"

    daemon_branch = data.get("branch")
    if isinstance(daemon_branch, str) and daemon_branch:
        out["branch"] = _clean(daemon_branch, 80)
    elif branch:
        out["branch"] = _clean(branch, 80)
    workdir = _get(payload, "workspace", "current_dir") or payload.get("cwd")
    if isinstance(workdir, str) and workdir:
        out["dir"] = _clean(os.path.basename(workdir.rstrip("/")) or "/", 80)
    version = payload.get("version")
    if isinstance(version, str) and version:
        out["version"] = _clean(version, 40)

    sid = payload.get("session_id")
    if isinstance(sid, str) and sid:
        clean_sid = _clean(sid, 128)
        out["session_id"] = clean_sid
        out["short_id"] = clean_sid[:8]
    short = data.get("short_id")
    if isinstance(short, str) and short:
        out["short_id"] = _clean(short, 40)
    state = data.get("state")
    if isinstance(state, str) and state:
        out["state"] = _clean(state, 20)
    for key, name in (
        ("scheduled", "scheduled"),
        ("others_busy", "busy"),
        ("others_waiting", "waiting"),
    ):
        n = _count(data.get(key))
        out[name] = None if n is None else str(n)
    out["daemon"] = "up" if info is not None else "down"
    return out


def _cell_width(ch: str) -> int:
    if ch < "\u0300":  # everything below the combining marks is one cell
        return 1
    import unicodedata  # only for non-Latin text; keeps the common path import-free

    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def visible_width(text: str) -> int:
    """Terminal cells ``text`` occupies, ignoring ANSI escape sequences."""
    return sum(_cell_width(ch) for ch in strip_ansi(text))


def truncate(text: str, columns: int) -> str:
    """Cut ``text`` to ``columns`` cells (``…`` marks the cut), keeping escape sequences whole
    and resetting attributes after a cut so colour never leaks past the line."""
    if columns <= 0 or visible_width(text) <= columns:
        return text
    out: list[str] = []
    used = 0
    pos = 0
    had_escape = False
    while pos < len(text):
        end = _escape_end(text, pos)
        if end >= 0:
            out.append(text[pos:end])
            had_escape = True
            pos = end
            continue
        w = _cell_width(text[pos])
        if used + w > columns - 1:
            break
        out.append(text[pos])
        used += w
        pos += 1
    out.append("…")
    if had_escape:
        out.append(_COLOURS["reset"])
    return "".join(out)


class _Template(dict[str, str]):
    def __missing__(self, key: str) -> str:
        raise KeyError(key)


def _render_template(fmt: str, values: dict[str, str | None], color: bool) -> str:
    mapping = _Template({k: (MISSING if v is None else v) for k, v in values.items()})
    for name, code in _COLOURS.items():
        mapping[name] = code if color else ""
    try:
        text = fmt.format_map(mapping)
    except KeyError as exc:
        return (
            f"ccc statusline: unknown --format field {{{exc.args[0]}}}; "
            f"use {', '.join('{' + f + '}' for f in FIELD_NAMES)}"
        )
    except (ValueError, IndexError, AttributeError, TypeError) as exc:
        return f"ccc statusline: bad --format template ({exc}); write fields as {{model}}"
    return " ".join(text.splitlines())


def _paint(text: str, colour: str, color: bool) -> str:
    return f"{_COLOURS[colour]}{text}{_COLOURS['reset']}" if color else text


def _default_line(v: dict[str, str | None], color: bool) -> str:
    parts: list[str] = []
    if v["model"]:
        parts.append(_paint(v["model"], "cyan", color))
    if v["ctx_pct"] is not None:
        pct = int(v["ctx_pct"])
        colour = "green" if pct < 50 else "yellow" if pct < 80 else "red"
        parts.append(_paint(f"ctx {pct}%", colour, color))
    if v["cost"] is not None:
        parts.append(f"${v['cost']}")
    if v["branch"]:
        parts.append(_paint(v["branch"], "magenta", color))
    parts += _daemon_parts(v, color, "scheduled")
    return SEPARATOR.join(parts) or "ccc"


def _wrap_segment(v: dict[str, str | None], color: bool) -> str:
    """ccc's part next to a wrapped statusLine: what only the daemon knows."""
    return SEPARATOR.join(_daemon_parts(v, color, "queued")) or "ccc"


def _daemon_parts(v: dict[str, str | None], color: bool, scheduled_word: str) -> list[str]:
    """Short id, waiting messages, other sessions busy/waiting, daemon down."""
    parts: list[str] = []
    if v["short_id"]:
        parts.append(_paint(v["short_id"], "dim", color))
    if v["scheduled"] not in (None, "0"):
        parts.append(_paint(f"{v['scheduled']} {scheduled_word}", "blue", color))
    if v["busy"] not in (None, "0"):
        parts.append(f"{v['busy']} busy")
    if v["waiting"] not in (None, "0"):
        # Another session needs its user: the one thing on this line worth shouting about.
        parts.append(_paint(f"{v['waiting']} waiting", "yellow", color))
    if v["daemon"] == "down":
        parts.append(_paint("ccc off", "dim", color))
    return parts


def combine(
    theirs: str, ours: str, position: str = "right", separator: str = WRAP_SEPARATOR
) -> str:
    """The wrapped command's output with ccc's segment on its first line. Pure."""
    lines = theirs.rstrip("\n").split("\n")
    if position == "none" or not ours:
        return "\n".join(lines)
    if not lines[0].strip():
        lines[0] = ours
    elif position == "left":
        lines[0] = ours + separator + lines[0]
    else:
        lines[0] = lines[0] + separator + ours
    return "\n".join(lines)


def render(
    payload: dict[str, Any],
    info: dict[str, Any] | None,
    *,
    columns: int | None = None,
    color: bool = False,
    fmt: str | None = None,
    branch: str | None = None,
    segment: bool = False,
) -> str:
    """The status line for a statusLine ``payload`` and the daemon's reply ``data`` (``info``;
    None when the daemon did not answer). Pure: no I/O. ``segment``: the short default made to
    sit next to a wrapped statusLine (``fmt`` still wins).

    Default layout: ``Opus 5.5 · ctx 13% · $0.08 · main · 51e5eb10 · 2 scheduled · 1 busy ·
    1 waiting`` (segments with nothing to say are left out). ``fmt`` is a template of
    :data:`FIELD_NAMES`; ``columns`` truncates to that many terminal cells; ``branch`` is
    the fallback git branch when ``info`` has none.
    """
    values = fields(payload, info, branch)
    if fmt is not None:
        line = _render_template(fmt, values, color)
    elif segment:
        line = _wrap_segment(values, color)
    else:
        line = _default_line(values, color)
    if columns is not None and columns > 0:
        line = truncate(line, columns)
    return line


# --- I/O ----------------------------------------------------------------------------------


def read_git_branch(start: str) -> str | None:
    """The branch checked out in the repository containing ``start``, from ``.git/HEAD``
    (7-char sha when detached); None when not in a repository. Never runs git.

    Every read goes through :mod:`ccc_statusd.safeio`: a FIFO or device named ``HEAD`` (or
    ``.git``) is not opened for a blocking read, so the status line always prints.
    """
    try:
        path = os.path.abspath(start)
        for _ in range(MAX_GIT_SEARCH_DEPTH):
            dotgit = os.path.join(path, ".git")
            head: str | None = None
            if os.path.isdir(dotgit):
                head = os.path.join(dotgit, "HEAD")
            elif os.path.isfile(dotgit):
                # A worktree or submodule: ".git" is a file saying where the real dir is.
                first = read_bounded(dotgit, 4096, truncate=True)
                first_text = first.decode("utf-8", "replace").strip()
                if first_text.startswith("gitdir:"):
                    gitdir = os.path.join(path, first_text[len("gitdir:") :].strip())
                    head = os.path.join(gitdir, "HEAD")
            if head is not None:
                raw = read_bounded(head, 4096, truncate=True)
                text = raw.decode("utf-8", "replace").strip()
                if text.startswith("ref:"):
                    ref = text[4:].strip()
                    return _clean(ref.removeprefix("refs/heads/"), 80) or None
                return _clean(text[:7], 7) or None
            parent = os.path.dirname(path)
            if parent == path:
                return None
            path = parent
    except (OSError, ValueError):
        return None
    return None


def build_message(payload: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """The ``statusline`` message for the daemon (SPEC §4)."""
    return identified_message("statusline", payload, env, FORWARDED_ENV_KEYS)


def exchange(
    sock_path: str | os.PathLike[str], line: bytes, deadline_s: float
) -> dict[str, Any] | None:
    """Send one line to the daemon and return its parsed reply, or None if it is not running,
    hung, or answered garbage. Connect, send and receive share one hard deadline."""
    end = time.monotonic() + deadline_s
    sock: _socket.socket | None = None
    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.settimeout(deadline_s)
        sock.connect(os.fspath(sock_path))
        if foreign_server(sock, os.fspath(sock_path)) is not None:
            return None  # another user's socket: the payload never goes there
        remaining = end - time.monotonic()
        if remaining <= 0:
            return None
        # Since Python 3.5 the timeout bounds sendall as a whole, not each chunk.
        sock.settimeout(remaining)
        sock.sendall(line)
        buf = bytearray()
        while b"\n" not in buf:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return None
            sock.settimeout(remaining)
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
            if len(buf) > MAX_REPLY_BYTES:
                return None
        reply = fastjson.loads(bytes(buf).split(b"\n", 1)[0])
        return reply if isinstance(reply, dict) else None
    except (OSError, ValueError, RecursionError):
        return None
    finally:
        if sock is not None:
            sock.close()


def _read_stdin(stdin: IO[bytes] | None) -> bytes:
    if stdin is None:
        return b""
    try:
        if stdin.isatty():
            return b""
        return stdin.read(MAX_STDIN_BYTES + 1) or b""
    except (OSError, ValueError):
        return b""


def _parse_payload(raw: bytes) -> dict[str, Any] | None:
    if not raw or len(raw) > MAX_STDIN_BYTES:
        return None
    try:
        obj = fastjson.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def _columns(env: Mapping[str, str]) -> int | None:
    try:
        n = int(env.get("COLUMNS", ""))
    except ValueError:
        return None
    return n if n > 0 else None


def _write(stdout: Any, data: bytes) -> None:
    try:
        if isinstance(stdout, io.TextIOBase):
            buffer = getattr(stdout, "buffer", None)
            if buffer is not None:
                # Bytes, so a C locale's ASCII stdout cannot turn "·" into an exception.
                stdout.flush()
                buffer.write(data)
                buffer.flush()
                return
            stdout.write(data.decode("utf-8", "replace"))
        else:
            stdout.write(data)
        stdout.flush()
    except (OSError, ValueError):
        pass  # Claude Code went away (broken pipe): nobody is left to read the line


def main(
    fmt: str | None = None,
    wrap: str | None = None,
    *,
    stdin: IO[bytes] | None = None,
    stdout: Any = None,
    env: Mapping[str, str] | None = None,
    deadline_s: float = REPLY_DEADLINE_S,
    wrap_position: str = "right",
    separator: str = WRAP_SEPARATOR,
) -> int:
    """Run ``ccc statusline [--format FMT] [--wrap CMD [--wrap-position P] [--separator S]]``;
    always returns 0.

    ``stdin`` is a binary stream (default ``sys.stdin.buffer``), ``stdout`` a text stream with
    ``.buffer`` or a binary stream (default ``sys.stdout``), ``env`` the environment
    (default ``os.environ``).
    """
    if stdin is None:
        stdin = getattr(sys.stdin, "buffer", None)
    stdout = sys.stdout if stdout is None else stdout
    env = os.environ if env is None else env
    payload: dict[str, Any] | None = None
    info: dict[str, Any] | None = None
    try:
        raw = _read_stdin(stdin)
        payload = _parse_payload(raw)
        proc = _start_wrapped(wrap, env) if wrap else None
        if payload is not None:
            info = _ask_daemon(payload, env, deadline_s)
        if wrap:
            out = _finish_wrapped(proc, raw)
            if out is not None:
                if wrap_position == "none" or payload is None:
                    _write(stdout, out)
                    return 0
                ours = _line(payload, info, env, fmt, segment=True, columns=False)
                theirs = out.decode("utf-8", "replace")
                text = combine(theirs, ours, wrap_position, separator)
                first, nl, rest = text.partition("\n")
                cols = _columns(env)
                if cols:
                    first = truncate(first, cols)
                _write(stdout, (first + nl + rest).encode("utf-8", "replace") + b"\n")
                return 0
        line = _line(payload, info, env, fmt)
    except Exception:  # a status line must never become a traceback
        try:
            line = _line(payload, info, env, fmt)
        except Exception:
            line = "ccc"
    _write(stdout, line.encode("utf-8", "replace") + b"\n")
    return 0


def _line(
    payload: dict[str, Any] | None,
    info: dict[str, Any] | None,
    env: Mapping[str, str],
    fmt: str | None,
    *,
    segment: bool = False,
    columns: bool = True,
) -> str:
    if payload is None and fmt is None:
        return NO_PAYLOAD_LINE
    payload = payload or {}
    branch = None
    if not (isinstance(info, dict) and info.get("branch")):
        # Only when the daemon did not tell us: a couple of small file reads, no git process.
        workdir = _get(payload, "workspace", "current_dir") or payload.get("cwd")
        if isinstance(workdir, str) and workdir:
            branch = read_git_branch(workdir)
    return render(
        payload,
        info,
        columns=_columns(env) if columns else None,
        color=not env.get("NO_COLOR"),
        fmt=fmt,
        branch=branch,
        segment=segment,
    )


def _ask_daemon(
    payload: dict[str, Any], env: Mapping[str, str], deadline_s: float
) -> dict[str, Any] | None:
    try:
        # ASCII escapes: a lone surrogate from the payload stays valid JSON and valid UTF-8.
        line = fastjson.dumps(build_message(payload, env))
    except (TypeError, ValueError, RecursionError):
        return None
    sock_path = default_socket_path(dict(env))
    reply = exchange(sock_path, line.encode("ascii") + b"\n", deadline_s)
    if reply is None or reply.get("type") != "response":
        return None
    data = reply.get("data")
    return data if isinstance(data, dict) else {}


def _start_wrapped(cmd: str, env: Mapping[str, str]) -> Any:
    import subprocess  # only --wrap pays for it

    try:
        return subprocess.Popen(
            ["/bin/sh", "-c", cmd],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=dict(env),
        )
    except OSError:
        return None


def _finish_wrapped(proc: Any, raw: bytes) -> bytes | None:
    """CMD's stdout, or None when it could not run or failed without output (then our own
    line is printed instead of the blank line Claude Code would show)."""
    if proc is None:
        return None
    try:
        out, _ = proc.communicate(raw)
    except (OSError, ValueError):
        return None
    if proc.returncode != 0 and not out.strip():
        return None
    return out


def parse_args(argv: list[str]) -> tuple[str | None, str | None]:
    """``[--format FMT] [--wrap CMD]`` (also ``--format=FMT``) → (fmt, wrap); unknown
    arguments are ignored, since a statusLine must print whatever it was given."""
    fmt: str | None = None
    wrap: str | None = None
    it = iter(argv)
    for arg in it:
        for name in ("--format", "--wrap"):
            if arg == name:
                value = next(it, None)
            elif arg.startswith(name + "="):
                value = arg[len(name) + 1 :]
            else:
                continue
            if name == "--format":
                fmt = value
            else:
                wrap = value
    return fmt, wrap


def parse_layout(argv: list[str]) -> tuple[str, str]:
    """``--wrap-position right|left|none`` and ``--separator S`` → (position, separator);
    anything unknown falls back to the default (a statusLine prints whatever it is given)."""
    position, separator = "right", WRAP_SEPARATOR
    it = iter(argv)
    for arg in it:
        for name in ("--wrap-position", "--separator"):
            if arg == name:
                value = next(it, None)
            elif arg.startswith(name + "="):
                value = arg[len(name) + 1 :]
            else:
                continue
            if value is None:
                continue
            if name == "--separator":
                separator = value
            elif value in WRAP_POSITIONS:
                position = value
    return position, separator


def cli(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m ccc_statusd.statusline`` and the fast CLI."""
    try:
        args = sys.argv[1:] if argv is None else argv
        fmt, wrap = parse_args(args)
        position, separator = parse_layout(args)
        return main(fmt, wrap, wrap_position=position, separator=separator)
    except BaseException:  # even Ctrl-C: no traceback on Claude Code's screen
        return 0


if __name__ == "__main__":
    sys.exit(cli())
