"""The ``ccc`` entry point: serves the send path itself, hands everything else to the typer app.

``ccc prompt``, ``ccc command``, ``ccc eval``, ``ccc hook`` and ``ccc statusline`` are what other
programs call in tight loops (agents, Claude Code's hooks and statusLine), so they must start in
about the time of a bare interpreter (issue 9: ≤ 2× ``python -I -c pass``). Loading typer/click,
rich, trio, anyio, asyncio, pydantic or sqlite_utils costs 20–150 ms each, so this module imports
none of them — nor ``json``, ``re``, ``typing``, ``pathlib`` or ``socket`` (~17 ms together,
against a ~11 ms bare interpreter; a test lists what the send path may load). The typer app
(:mod:`ccc_statusd.cli`) stays the one definition of the CLI:

- this module recognises only the plain shapes of those five commands (``--socket`` before the
  command, ``--json``, ``--`` and positionals in the right number); anything else — ``-h``,
  ``--help``, an unknown option, a wrong number of arguments, shell completion — falls through
  to the typer app, which prints the help or the usage error;
- what a command *does* lives here (:func:`send_routed` and friends) and the typer commands call
  the same functions, so output, errors and exit codes cannot drift apart (a test compares them).

Exit codes (SPEC §6): 0 success, 1 the daemon or session answered with an error, 2 usage error,
3 daemon not running. Errors are one sentence on stderr, prefixed ``ccc:``.
"""

from __future__ import annotations

import os
import sys

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
EXIT_INTERRUPTED = 130  # the shell convention for Ctrl-C (128 + SIGINT)

# Routed commands: name → (message field for the second positional, needs at least, at most).
_ROUTED = {"prompt": ("text", 2, 2), "command": ("name", 2, None), "eval": ("code", 2, 2)}
_FAST = frozenset({"prompt", "command", "eval", "hook", "statusline"})
_HELP = frozenset({"-h", "--help"})


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
        return {"type": "prompt", "session_id": session, "text": text_arg(rest[0], "prompt text")}
    if kind == "eval":
        return {"type": "eval", "session_id": session, "code": text_arg(rest[0], "code")}
    msg: dict[str, object] = {"type": "command", "session_id": session, "name": rest[0]}
    if not rest[0].strip("/ "):
        raise UsageError("the command name is empty; give one, e.g.: ccc command SESSION compact")
    if len(rest) > 1:
        msg["text"] = " ".join(rest[1:])
    return msg


def send_routed(
    socket_path: str | None, kind: str, session: str, rest: list[str], *, as_json: bool = False
) -> int:
    """Run ``ccc prompt|command|eval``; returns the exit code. Prints the session's answer
    (eval's result) on stdout, a queued notice on stderr, nothing else on success."""
    from .client import Client, ClientError

    try:
        msg = build_routed(kind, session, rest)
        with Client(socket_path) as client:
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
            f"queued for session {sid}: {reason}; it will be delivered at its next idle moment{ident}"
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


def run_statusline(
    socket_path: str | None,
    fmt: str | None,
    wrap: str | None,
    layout: tuple[str, str] | None = None,
) -> int:
    from .statusline import WRAP_SEPARATOR
    from .statusline import main as statusline_main

    position, separator = layout or ("right", WRAP_SEPARATOR)
    try:
        return statusline_main(
            fmt,
            wrap,
            env=env_for_socket(socket_path),
            wrap_position=position,
            separator=separator,
        )
    except BaseException:  # a status line never becomes a traceback (statusline.cli does the same)
        return 0


# --- the fast parser ----------------------------------------------------------------------


def parse_fast(args: list[str]) -> tuple[str | None, str, list[str], bool] | None:
    """``(socket, command, positionals, json)`` for a plain send-path invocation, else None
    (then the typer app handles it: help, usage errors, every other command)."""
    socket_path: str | None = None
    i = 0
    while i < len(args) and args[i].startswith("-"):
        arg = args[i]
        if arg == "--socket" and i + 1 < len(args):
            socket_path, i = args[i + 1], i + 2
        elif arg.startswith("--socket=") and len(arg) > len("--socket="):
            socket_path, i = arg[len("--socket=") :], i + 1
        else:
            return None
    if i >= len(args) or args[i] not in _FAST:
        return None
    command, rest = args[i], args[i + 1 :]
    if command in ("hook", "statusline"):
        # Both accept and ignore unknown arguments (a hook must never fail); only help is typer's.
        return None if any(a in _HELP for a in rest) else (socket_path, command, rest, False)
    positionals: list[str] = []
    as_json = False
    it = iter(rest)
    for arg in it:
        if arg == "--":
            positionals.extend(it)
        elif arg == "--json":
            as_json = True
        elif arg.startswith("-") and arg != "-":
            return None
        else:
            positionals.append(arg)
    _, least, most = _ROUTED[command]
    if len(positionals) < least or (most is not None and len(positionals) > most):
        return None
    return socket_path, command, positionals, as_json


def run_typer(args: list[str]) -> int:
    from .cli import main as cli_main

    return cli_main(args)


def main(argv: list[str] | None = None) -> int:
    """The ``ccc`` console script."""
    args = sys.argv[1:] if argv is None else list(argv)
    plan = None if os.environ.get("_CCC_COMPLETE") else parse_fast(args)
    if plan is None:
        return run_typer(args)
    socket_path, command, positionals, as_json = plan
    if command == "hook":
        return run_hook(socket_path)
    if command == "statusline":
        from .statusline import parse_args, parse_layout

        fmt, wrap = parse_args(positionals)
        return run_statusline(socket_path, fmt, wrap, parse_layout(positionals))
    return send_routed(socket_path, command, positionals[0], positionals[1:], as_json=as_json)


if __name__ == "__main__":
    sys.exit(main())
