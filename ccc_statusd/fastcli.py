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

from .sendcmd import (  # noqa: F401 (re-exported: the entry point keeps its old names)
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_NOT_RUNNING,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    build_routed,
    env_for_socket,
    error,
    note,
    print_json,
    run_hook,
    run_statusline,
    send_routed,
    text_arg,
    use_colour,
)

_ROUTED = {"prompt": ("text", 2, 2), "command": ("name", 2, None), "eval": ("code", 2, 2)}
_FAST = frozenset({"prompt", "command", "eval", "hook", "statusline"})
_HELP = frozenset({"-h", "--help"})


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


def _names_a_host(args: list[str], plan: tuple[str | None, str, list[str], bool] | None) -> bool:
    """A cheap test (no imports): may these arguments address another host?"""
    if plan is not None:
        return plan[1] in _ROUTED and ":" in plan[2][0]
    return any(a == "--host" or a.startswith("--host=") or ":" in a for a in args)


def run_typer(args: list[str]) -> int:
    from .cli import main as cli_main

    return cli_main(args)


def _socket_first(args: list[str]) -> list[str]:
    """``ccc prompt --socket S ...`` as ``ccc --socket S prompt ...``: the option is global, and
    people put it after the subcommand too (not after ``--``: that is the command's text)."""
    if not args or args[0].startswith("-") or "--socket" not in "".join(args):
        return args
    out: list[str] = []
    moved: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out.extend(args[i:])
            break
        if arg == "--socket" and i + 1 < len(args):
            moved += args[i : i + 2]
            i += 2
            continue
        if arg.startswith("--socket="):
            moved.append(arg)
        else:
            out.append(arg)
        i += 1
    return moved + out


def main(argv: list[str] | None = None) -> int:
    """The ``ccc`` console script."""
    args = _socket_first(sys.argv[1:] if argv is None else list(argv))
    completing = os.environ.get("_CCC_COMPLETE")
    if not completing and args[:1] == ["run"] and not _HELP.intersection(args[1:2]):
        # `ccc run` stays resident for the whole session: without typer, click and rich it
        # weighs ~10 MiB less (pty_host has its own argument parser for the same options).
        from .session.pty_host import main as run_main

        return run_main(args[1:])
    plan = None if completing else parse_fast(args)
    if not completing and _names_a_host(args, plan):
        # --host H or HOST:SESSION: run ccc on that host over ssh (remote.py), without typer.
        from .remote import main as remote_main

        code = remote_main(args)
        if code is not None:
            return code
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
