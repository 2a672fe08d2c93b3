"""`ccc hook`: forward one Claude Code hook event to the daemon, fire-and-forget.

Claude Code runs this (as ``sh -c``, whose parent is the Claude process) on every hook event,
and a slow ``UserPromptSubmit`` hook delays the user's request by exactly its run time
(measured), so this module is standard-library only (no trio, pydantic, typer, rich — and, like
the rest of the send path, no ``json``, ``re``, ``typing``, ``pathlib`` or ``socket``: see
:mod:`ccc_statusd.client`), never waits for the daemon's reply, prints nothing on stdout
(Claude Code feeds hook stdout back into the conversation for some events) and always exits 0,
with or without a daemon.
"""

from __future__ import annotations

import _socket
import os
import sys

from . import fastjson
from .client import SOCKET_NAME, default_cache_dir
from .peercheck import foreign_server
from .safeio import read_bounded

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Any, BinaryIO

# Hook payloads are small; a PostToolUse carrying a big tool output is the exception. We read
# at most this much (Claude Code closes our stdin after writing, so we need not drain it).
READ_LIMIT_BYTES = 4 * 1024 * 1024
# The daemon refuses lines over 1 MiB (protocol.MAX_LINE_BYTES); stay clearly under it.
MAX_SEND_BYTES = 1024 * 1024 - 4096
# Strings longer than this are cut when the payload is too big to send whole.
TRIM_STRING_CHARS = 16 * 1024
CONNECT_TIMEOUT_S = 0.1  # a local daemon accepts in microseconds; a wedged one is not waited on
SEND_TIMEOUT_S = 0.25  # bounded time to hand the line to the kernel

# protocol.SAFE_ID_RE (``^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$``) as string tests: protocol pulls
# in pydantic, and ``re`` costs ~5 ms of start-up.
SAFE_ID_MAX_CHARS = 128
_SAFE_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_ENV_KEYS = (
    "CCC_INTERNAL_ID",
    "CLAUDE_PID",
    "TMUX",
    "TMUX_PANE",
    "CLAUDE_CONFIG_DIR",
    "CLAUDE_PROJECT_DIR",
)
_SHELLS = frozenset({"sh", "dash", "bash", "zsh", "ash", "busybox"})


def is_safe_id(value: str) -> bool:
    """``protocol.is_safe_id`` (an id the daemon accepts and that is safe in a file name)."""
    return (
        0 < len(value) <= SAFE_ID_MAX_CHARS
        and value[0].isascii()
        and value[0].isalnum()
        and set(value) <= _SAFE_ID_CHARS
        and ".." not in value
    )


def _safe_id(value: str | None) -> str | None:
    if value and is_safe_id(value):
        return value
    return None


def parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` when ``pid`` is a shell (Linux /proc), else None.

    Claude Code runs hooks as ``sh -c CMD``; when that shell did not exec us, our parent is the
    shell and the Claude process is its parent.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read(4096)
    except OSError:
        return None
    lpar, rpar = stat.find(b"("), stat.rfind(b")")
    if lpar < 0 or rpar < 0:
        return None
    if stat[lpar + 1 : rpar].decode(errors="replace") not in _SHELLS:
        return None
    fields = stat[rpar + 2 :].split()
    try:
        return int(fields[1])
    except (IndexError, ValueError):
        return None


def _trim(value: Any) -> Any:
    if isinstance(value, str) and len(value) > TRIM_STRING_CHARS:
        return (
            value[:TRIM_STRING_CHARS]
            + f"…[{len(value) - TRIM_STRING_CHARS} characters cut by ccc hook]"
        )
    if isinstance(value, dict):
        return {k: _trim(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_trim(v) for v in value]
    return value


def identified_message(
    kind: str, payload: dict[str, Any], env: Mapping[str, str], keys: tuple[str, ...] = _ENV_KEYS
) -> dict[str, Any]:
    """A ``hook``/``statusline`` message with what identifies the session: the forwarded env
    vars, our parent (the ``sh -c`` Claude Code ran, or Claude itself if sh exec'd us) and its
    parent, and ``internal_id`` when it is a plain id (an unsafe one would get the whole
    message refused). Shared by ``ccc hook`` and ``ccc statusline`` so the daemon keys both to
    the same session."""
    fwd = {k: env[k] for k in keys if env.get(k)}
    ppid = os.getppid()
    fwd["PPID"] = str(ppid)
    grandparent = parent_of(ppid)
    if grandparent:
        fwd["PPID_PARENT"] = str(grandparent)
    msg: dict[str, Any] = {"type": kind, "data": payload}
    internal_id = _safe_id(env.get("CCC_INTERNAL_ID"))
    if internal_id:
        msg["internal_id"] = internal_id
    msg["env"] = fwd
    return msg


def build_message(payload: dict[str, Any], env: Mapping[str, str]) -> bytes:
    """The one wire line sent for a hook payload (bounded to the daemon's line limit)."""
    msg = identified_message("hook", payload, env)
    line = _encode(msg)
    if len(line) > MAX_SEND_BYTES:
        msg["data"] = _trim(payload)
        line = _encode(msg)
    if len(line) > MAX_SEND_BYTES:
        # Still too big (many long strings): keep only the small top-level fields, which carry
        # what the daemon needs for state and identity.
        msg["data"] = {
            k: v
            for k, v in payload.items()
            if isinstance(v, (str, int, float, bool)) and len(str(v)) < 4096
        }
        msg["data"]["ccc_truncated"] = True
        line = _encode(msg)
    return line


_SALVAGE_KEYS = ("session_id", "hook_event_name", "transcript_path", "cwd", "prompt_id")


def _salvage(raw: bytes) -> dict[str, Any]:
    """The identifying string fields of a payload too big to read whole (found by pattern,
    since the JSON is cut); the daemon still learns the event and the session."""
    import re  # only payloads over READ_LIMIT_BYTES come here

    out: dict[str, Any] = {}
    text = raw.decode("utf-8", "replace")
    for key in _SALVAGE_KEYS:
        m = re.search(rf'"{key}"\s*:\s*"((?:[^"\\]|\\.){{0,4096}})"', text)
        if m:
            try:
                out[key] = fastjson.loads('"' + m.group(1) + '"')
            except ValueError:
                continue
    if out:
        out["ccc_truncated"] = True
    return out


def _encode(msg: dict[str, Any]) -> bytes:
    return fastjson.dumps(msg, ensure_ascii=False).encode("utf-8", "replace") + b"\n"


def session_file(cache_dir: Path, internal_id: str) -> Path:
    """Where ``ccc run`` (internal id ``internal_id``) learns its current session id.

    ``ccc run`` creates this file empty and removes it on exit; ``ccc hook`` writes the id on
    every SessionStart (startup, clear, compact, resume), so the session client always knows
    the id it is running under, even after /clear, and can re-register with it when the
    daemon restarts. The hook never creates the file, so sessions not under ``ccc run`` leave
    nothing behind.
    """
    return cache_dir / session_file_name(internal_id)


def session_file_name(internal_id: str) -> str:
    return f"run-{internal_id}.session"


def note_session_id(cache_dir: str, payload: dict[str, Any], env: Mapping[str, str]) -> None:
    if payload.get("hook_event_name") != "SessionStart":
        return
    internal_id = _safe_id(env.get("CCC_INTERNAL_ID"))
    session_id = payload.get("session_id")
    if not internal_id or not isinstance(session_id, str) or not _safe_id(session_id):
        return
    try:
        path = os.path.join(cache_dir, session_file_name(internal_id))  # no pathlib here
        # O_NONBLOCK: a FIFO planted on the name fails at once instead of hanging the hook.
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return  # not under `ccc run` (or it has exited)
    try:
        if not _is_regular(fd):
            return
        os.write(fd, session_id.encode())
    finally:
        os.close(fd)


def read_session_file(path: str | os.PathLike[str]) -> str | None:
    """The session id in a :func:`session_file`, or None (missing, empty, or not a plain id)."""
    try:  # safeio: a FIFO or device there is refused, never waited on
        value = read_bounded(path, 256, nofollow=True, truncate=True)
    except OSError:
        return None
    return _safe_id(value.decode("ascii", "replace").strip())


def _is_regular(fd: int) -> bool:
    import stat

    return stat.S_ISREG(os.fstat(fd).st_mode)


def send_line(socket_path: str, line: bytes) -> bool:
    """Hand one line to the daemon without waiting for its reply; False if it is not there."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT_S)
        sock.connect(socket_path)
        if foreign_server(sock, socket_path) is not None:
            return False  # another user's socket: our payload never goes there
        sock.settimeout(SEND_TIMEOUT_S)
        sock.sendall(line)
        # Tell the daemon we will send nothing more; we close without reading its response.
        sock.shutdown(_socket.SHUT_WR)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def main(stdin: BinaryIO | None = None, env: Mapping[str, str] | None = None) -> int:
    """Read the hook JSON on stdin and forward it; always returns 0."""
    try:
        stdin = sys.stdin.buffer if stdin is None else stdin
        env = os.environ if env is None else env
        raw = stdin.read(READ_LIMIT_BYTES + 1)
        if not raw:
            return 0
        if len(raw) > READ_LIMIT_BYTES:
            payload = _salvage(raw)
        else:
            try:
                payload = fastjson.loads(raw)
            except (ValueError, RecursionError):
                return 0
        if not isinstance(payload, dict) or not payload:
            return 0
        line = build_message(payload, env)
        cache_dir = default_cache_dir(dict(env))
        note_session_id(cache_dir, payload, env)
        send_line(os.path.join(cache_dir, SOCKET_NAME), line)
    except BaseException:  # noqa: BLE001 - a hook must never fail or print a traceback
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
