"""What the send path does: ``ccc prompt|command|eval|hook|statusline``, output and exit codes.

Shared by the fast entry point (:mod:`ccc_statusd.fastcli`) and the typer app
(:mod:`ccc_statusd.cli`), so output, errors and exit codes cannot drift apart. Stdlib only,
and almost nothing of it: this runs on every hook Claude Code fires (see fastcli's docstring
for what the send path may import).
"""

from __future__ import annotations

import os
import sys

from .wire import routed_message

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
EXIT_INTERRUPTED = 130  # the shell convention for Ctrl-C (128 + SIGINT)


# --- output -------------------------------------------------------------------------------


def use_colour(stream: object) -> bool:
    """Colour only on a terminal, and never with ``NO_COLOR`` set (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def error(message: str, code: int = EXIT_ERROR) -> int:
    """Print ``ccc: <message>`` on stderr; return ``code`` (for ``return error(...)``)."""
    prefix = "\x1b[1;31mccc:\x1b[0m" if use_colour(sys.stderr) else "ccc:"
    try:
        print(f"{prefix} {message}", file=sys.stderr)
    except (OSError, ValueError):
        pass
    return code


def note(message: str) -> None:
    """An informational line on stderr (stdout carries only results)."""
    try:
        print(f"ccc: {message}", file=sys.stderr)
    except (OSError, ValueError):
        pass


def print_json(obj: object) -> None:
    import json  # only --json and eval results pay for it (fastjson does not indent)

    print(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


# --- what the send commands do (shared with the typer app) ---------------------------------


class UsageError(Exception):
    """Bad input detected after parsing (empty text): exit 2, same on both paths."""


def text_arg(value: str, what: str) -> str:
    """``-`` reads the text from stdin (all of it, lines kept; trailing newlines dropped)."""
    if value == "-":
        try:
            value = sys.stdin.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(
                f"cannot read the {what} from stdin ({exc}); pipe UTF-8 text in"
            ) from None
        value = value.rstrip("\r\n")
    if not value.strip():
        raise UsageError(f"the {what} is empty; pass it as an argument, or pipe it in with -")
    return value


def build_routed(kind: str, session: str, rest: list[str]) -> dict[str, object]:
    """The wire message for ``ccc prompt|command|eval SESSION ...``. Raises UsageError."""
    if kind == "prompt":
        return routed_message(kind, session, text=text_arg(rest[0], "prompt text"))
    if kind == "eval":
        return routed_message(kind, session, code=text_arg(rest[0], "code"))
    if not rest[0].strip("/ "):
        raise UsageError("the command name is empty; give one, e.g.: ccc command SESSION compact")
    return routed_message(kind, session, name=rest[0], text=" ".join(rest[1:]) or None)


# `--wait`: the daemon waits up to 10 s for Claude Code to confirm; we wait a little longer.
WAIT_TIMEOUT_S = 40.0


def send_routed(
    socket_path: str | None,
    kind: str,
    session: str,
    rest: list[str],
    *,
    as_json: bool = False,
    wait: bool = False,
) -> int:
    """Run ``ccc prompt|command|eval``; returns the exit code. Prints the session's answer
    (eval's result) on stdout, a queued notice on stderr, nothing else on success. ``wait``:
    wait for Claude Code to confirm the submission (exit 1, with what was seen, if it did not)."""
    from .client import DEFAULT_TIMEOUT_S, Client, ClientError

    try:
        msg = build_routed(kind, session, rest)
        if wait:
            msg["data"] = {"wait": True}
        with Client(socket_path, timeout=WAIT_TIMEOUT_S if wait else DEFAULT_TIMEOUT_S) as client:
            reply = client.request(msg)
    except UsageError as exc:
        return error(str(exc), EXIT_USAGE)
    except ClientError as exc:
        return error(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    if as_json:
        print_json(reply)
        return EXIT_OK
    if reply.get("status") == "queued":
        data = reply.get("data")
        if not isinstance(data, dict):
            data = {}
        sid = reply.get("session_id") or session
        reason = data.get("reason") or "the session is not idle"
        ident = (
            f" (id {data['id']}; cancel with: ccc schedule cancel {data['id']})"
            if data.get("id")
            else ""
        )
        note(
            f"queued for session {sid}: {reason}; it goes as soon as the session can take it{ident}"
        )
        if wait:
            return EXIT_ERROR  # --wait: not submitted (yet)
    elif wait and reply.get("status") != "submitted":
        data = reply.get("data") if isinstance(reply.get("data"), dict) else {}
        seen = f"; the screen showed: {data['seen']}" if data and data.get("seen") else ""
        return error(
            f"typed into session {reply.get('session_id') or session}, but Claude Code did not "
            f"confirm it{seen}; look at the session (ccc watch shows what happens next)"
        )
    elif kind == "eval":
        result = reply.get("data")
        if isinstance(result, str):
            print(result)
        elif result is not None:
            print_json(result)
    return EXIT_OK


def env_for_socket(socket_path: str | None) -> dict[str, str] | None:
    """The environment for ``hook``/``statusline``, which find the daemon via the cache dir:
    ``--socket DIR/daemon.sock`` becomes ``CCC_CACHE_DIR=DIR`` (another file name cannot be
    expressed that way and is ignored)."""
    if socket_path is None or os.path.basename(socket_path) != "daemon.sock":
        return None
    env = dict(os.environ)
    env["CCC_CACHE_DIR"] = os.path.dirname(os.path.abspath(socket_path))
    return env


def run_hook(socket_path: str | None) -> int:
    from .hookcmd import main as hook_main

    return hook_main(env=env_for_socket(socket_path))


def run_statusline(socket_path: str | None, fmt: str | None, wrap: str | None) -> int:
    from .statusline import main as statusline_main

    try:
        return statusline_main(fmt, wrap, env=env_for_socket(socket_path))
    except BaseException:  # a status line never becomes a traceback (statusline.cli does the same)
        return 0


# --- the fast parser ----------------------------------------------------------------------
