"""The ``ccc`` command line: the one typer app that defines every command (SPEC §6).

The CLI is thin: a command builds a request, calls the blocking client, prints, exits with a
code (0 ok, 1 the daemon or session answered with an error, 2 usage error, 3 daemon not
running). The send commands (``prompt``, ``command``, ``eval``, ``hook``, ``statusline``) are
usually served by :mod:`ccc_statusd.fastcli` without loading this module; their typer commands
here call the very same functions, so help, errors and exit codes are the same either way.

Read commands work without the daemon in a degraded mode: ``sessions``, ``path`` and ``status``
then read the per-session cache files and the database (read-only) and say so on stderr.
``schedule`` writes the database itself (the daemon picks the row up on ``reload_schedule`` or
when it starts), so it works with the daemon down too.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from . import __version__
from .client import Client, ClientError, DaemonNotRunning, default_socket_path, display, not_running
from .eventfmt import ago
from .listing import last_activity, sort_sessions
from .paths import Paths
from .sendcmd import (
    EXIT_ERROR,
    EXIT_NOT_RUNNING,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    error,
    note,
    print_json,
    run_hook,
    run_statusline,
    send_routed,
    text_arg,
    use_colour,
)
from .termsafe import clean
from .timespec import (
    MAX_ASK_TIMEOUT_S,
    RESET_MARGIN_S,
    parse_at,
    parse_duration,
    parse_resets_at,
)

# Width limits for the sessions table, so one long path does not push the rest off screen.
CWD_WIDTH = 40
TEXT_WIDTH = 50
ERROR_WIDTH = 40

app = typer.Typer(
    name="ccc",
    help="Talk to Claude Code sessions through the ccc-statusd daemon: send prompts and commands, "
    "list sessions, schedule prompts for later.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    rich_markup_mode=None,
)

# Routed commands take free text: "-v is verbose" is a TEXT, not an unknown option.
_FREE_TEXT = {"ignore_unknown_options": True}
# hook and statusline are run by Claude Code: extra arguments are ignored, never an error.
_LENIENT = {"ignore_unknown_options": True, "allow_extra_args": True}


@dataclass(frozen=True)
class State:
    """What the global options decide: where the daemon's socket and files are."""

    socket: str
    paths: Paths
    explicit_socket: str | None


def _state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    if isinstance(obj, State):
        return obj
    return _make_state(None)


def _make_state(socket: Path | None) -> State:
    if socket is None:
        return State(default_socket_path(), Paths.default(), None)
    sock = str(socket.expanduser())
    # A socket named daemon.sock lives in its cache dir, so the cache files and the database are
    # next to it; any other name says nothing about the cache dir, which then stays the default.
    paths = Paths(Path(sock).parent) if Path(sock).name == "daemon.sock" else Paths.default()
    return State(sock, paths, sock)


def _version(value: bool) -> None:
    if value:
        print(f"ccc {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def root(
    ctx: typer.Context,
    socket: Annotated[
        Path | None,
        typer.Option(
            "--socket",
            metavar="PATH",
            help="The daemon's socket (default: daemon.sock in $CCC_CACHE_DIR, "
            "$XDG_CACHE_HOME/ccc-status or ~/.cache/ccc-status).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            metavar="HOST",
            help="Run the command on another host's daemon over ssh (a name from "
            "~/.config/ccc/hosts or ~/.ssh/config); HOST:SESSION does the same for one session.",
        ),
    ] = None,
) -> None:
    if host is not None:  # main() sends these to remote.py before typer parses anything
        raise fail(f"--host {host} needs a command, e.g.: ccc --host {host} sessions", EXIT_USAGE)
    ctx.obj = _make_state(socket)


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    """Print the one-sentence error and return the Exit to raise."""
    return typer.Exit(error(message, code))


def _ask(state: State, name: str, **fields: Any) -> Any:
    """A query's data; DaemonNotRunning propagates (callers fall back or exit 3)."""
    with Client(state.socket) as client:
        return client.query(name, **fields)


# --- send commands (the same code fastcli runs) --------------------------------------------


JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def complete_session(incomplete: str) -> list[str]:
    """Shell completion of SESSION: names and ids of the sessions with a cache file (a
    directory listing and a few small reads: no daemon round trip, nothing slow)."""
    from .cache import read_session_cache, session_cache_ids

    paths = Paths.default()
    out: list[str] = []
    for sid in session_cache_ids(paths):
        rec = read_session_cache(paths.session_cache(sid)) or {}
        name = rec.get("name")
        if isinstance(name, str) and name.startswith(incomplete) and rec.get("state") != "ended":
            out.append(name)
        if sid.startswith(incomplete):
            out.append(sid)
    return sorted(set(out))


SessionArg = Annotated[
    str,
    typer.Argument(
        help="A session's name, id, or a unique prefix of its id (at least 4 characters).",
        autocompletion=complete_session,
    ),
]


@app.command(context_settings=_FREE_TEXT)
def prompt(
    ctx: typer.Context,
    session: SessionArg,
    text: Annotated[str, typer.Argument(help="The prompt; - reads it from stdin (lines kept).")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the daemon's whole response as JSON.")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="Wait until Claude Code confirms it took the prompt (exit 1 if not)."
        ),
    ] = False,
    from_name: Annotated[
        str | None,
        typer.Option(
            "--from-name",
            metavar="NAME",
            help="Put a sender header '[from NAME via ccc]' before the text.",
        ),
    ] = None,
) -> None:
    """Send a prompt to a session, typed as if by its user (queued if the session is busy)."""
    if from_name is not None:
        from .caller import name_header

        if not from_name.strip():
            raise fail(
                "--from-name is empty; give the name to show, or leave the option out", EXIT_USAGE
            )
        try:
            text = name_header(from_name) + text_arg(text, "prompt text")
        except UsageError as exc:
            raise fail(str(exc), EXIT_USAGE) from None
    raise typer.Exit(
        send_routed(
            _state(ctx).explicit_socket, "prompt", session, [text], as_json=as_json, wait=wait
        )
    )


@app.command(context_settings=_FREE_TEXT)
def command(
    ctx: typer.Context,
    session: SessionArg,
    name: Annotated[str, typer.Argument(help="The slash command, with or without the leading /.")],
    args: Annotated[list[str] | None, typer.Argument(help="The command's arguments.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the daemon's whole response as JSON.")
    ] = False,
) -> None:
    """Run a slash command in a session (e.g. ccc command abcd compact)."""
    raise typer.Exit(
        send_routed(
            _state(ctx).explicit_socket, "command", session, [name, *(args or [])], as_json=as_json
        )
    )


@app.command(name="eval", context_settings=_FREE_TEXT)
def eval_(
    ctx: typer.Context,
    session: SessionArg,
    code: Annotated[str, typer.Argument(help="JavaScript to evaluate; - reads it from stdin.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the daemon's whole response as JSON.")
    ] = False,
) -> None:
    """Evaluate JavaScript inside a session and print the result (daemon needs --allow-eval)."""
    raise typer.Exit(
        send_routed(_state(ctx).explicit_socket, "eval", session, [code], as_json=as_json)
    )


@app.command(context_settings=_FREE_TEXT)
def ask(
    ctx: typer.Context,
    session: SessionArg,
    text: Annotated[str, typer.Argument(help="The prompt; - reads it from stdin (lines kept).")],
    timeout: Annotated[
        str,
        typer.Option(
            "--timeout",
            metavar="DURATION",
            help="How long to wait for the reply (90s, 10m, 1h30m).",
        ),
    ] = "10m",
    as_json: JsonFlag = False,
) -> None:
    """Send a prompt, wait for the turn it starts to end, and print the assistant's reply."""
    state = _state(ctx)
    try:
        timeout_s = parse_duration(timeout, "--timeout", MAX_ASK_TIMEOUT_S)
        if timeout_s <= 0:
            raise ValueError(f"--timeout {timeout!r} must be longer than 0 s; write e.g. 10m")
        body = text_arg(text, "TEXT")
    except (ValueError, UsageError) as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    try:
        with Client(state.socket) as client:
            reply = client.ask(session, body, timeout_s=timeout_s)
    except ClientError as exc:
        raise fail(str(exc), exc.exit_code) from None
    if as_json:
        print_json(reply)
        return
    answer = (reply.get("data") or {}).get("reply")
    if answer is None:
        note(
            f"session {reply.get('session_id') or session} finished its turn but left no reply text"
        )
    else:
        print(clean(str(answer), keep_newlines=True))


@app.command()
def watch(
    ctx: typer.Context,
    session: Annotated[
        str | None, typer.Argument(help="Only this session (id or unique prefix).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per event.")] = False,
) -> None:
    """Follow what happens to sessions, one line per event, until Ctrl-C (survives restarts)."""
    from . import watchcmd
    from .follow import SubscribeRefused

    state = _state(ctx)
    try:
        watchcmd.main(state.socket, session, as_json=as_json, colour=use_colour(sys.stdout))
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_OK) from None
    except SubscribeRefused as exc:
        raise fail(str(exc)) from None


@app.command()
def top(
    ctx: typer.Context,
    bell: Annotated[
        bool, typer.Option("--bell", help="Ring the terminal bell when a session starts waiting.")
    ] = False,
    show_all: Annotated[
        bool,
        typer.Option(
            "--all", help="Also show sessions that ended or were quiet for an hour (hidden)."
        ),
    ] = False,
) -> None:
    """A full-screen live view of every session; keys send prompts, asks, jump to tmux panes."""
    if not sys.stdout.isatty() or not sys.stdin.isatty():
        raise fail("ccc top needs a terminal; for a stream of lines use: ccc watch", EXIT_USAGE)
    from .top.app import run as run_top  # Textual loads here and nowhere else

    state = _state(ctx)
    raise typer.Exit(run_top(state.socket, state.paths, bell=bell, show_all=show_all))


def _threshold(text: str | None, option: str, unit_s: int) -> float | None:
    """A plain number in the option's unit (``--blocked 5`` = 5 minutes), or a duration."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return float(parse_duration(text, option))
    if value < 0:
        raise ValueError(f"{option} {text!r} is negative; give a duration like 90s or 5m")
    return value * unit_s


@app.command()
def notify(
    ctx: typer.Context,
    exec_cmd: Annotated[
        str | None,
        typer.Option(
            "--exec",
            metavar="CMD",
            help="Run sh -c CMD per alert, with CCC_EVENT, CCC_SESSION, CCC_NAME, CCC_STATE, "
            "CCC_TEXT (and CCC_DURATION, CCC_MESSAGE_ID) set.",
        ),
    ] = None,
    desktop: Annotated[
        bool, typer.Option("--desktop", help="Show a desktop notification (notify-send).")
    ] = False,
    bell: Annotated[bool, typer.Option("--bell", help="Ring the terminal bell.")] = False,
    long_turn: Annotated[
        str | None,
        typer.Option(
            "--long-turn",
            metavar="S",
            help="Also alert when a turn longer than S seconds ends (or 90s, 5m).",
        ),
    ] = None,
    blocked: Annotated[
        str | None,
        typer.Option(
            "--blocked",
            metavar="M",
            help="Also alert when a message has been queued for M minutes (or 90s, 1h).",
        ),
    ] = None,
    no_waiting: Annotated[
        bool, typer.Option("--no-waiting", help="Do not alert when a session starts waiting.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Do not print a line per alert.")
    ] = False,
) -> None:
    """Alert when a session waits for you, finishes a long turn, or has a message stuck."""
    from . import notifycmd
    from .alerts import Rules

    try:
        rules = Rules(
            waiting=not no_waiting,
            long_turn_s=_threshold(long_turn, "--long-turn", 1),
            blocked_s=_threshold(blocked, "--blocked", 60),
        )
    except ValueError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    actions = notifycmd.Actions(exec_cmd=exec_cmd, desktop=desktop, bell=bell, quiet=quiet)
    try:
        notifycmd.main(_state(ctx).socket, rules, actions)
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_OK) from None


@app.command(context_settings=_LENIENT)
def hook(ctx: typer.Context) -> None:
    """Forward a Claude Code hook event (JSON on stdin) to the daemon; for settings.json."""
    raise typer.Exit(run_hook(_state(ctx).explicit_socket))


@app.command(context_settings=_LENIENT)
def statusline(
    ctx: typer.Context,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            metavar="F",
            help="A template, e.g. '{model} {ctx_pct}% ${cost}' (see the README).",
        ),
    ] = None,
    wrap: Annotated[
        str | None,
        typer.Option(
            "--wrap",
            metavar="CMD",
            help="Also run CMD (your own statusLine) on the same JSON and show its line with "
            "ccc's segment.",
        ),
    ] = None,
    wrap_position: Annotated[
        str,
        typer.Option(
            "--wrap-position",
            metavar="P",
            help="Where ccc's segment goes with --wrap: right (default), left, or none.",
        ),
    ] = "right",
    separator: Annotated[
        str | None,
        typer.Option(
            "--separator", metavar="S", help="Between CMD's line and ccc's segment (' │ ')."
        ),
    ] = None,
) -> None:
    """Claude Code's statusLine command: forward the JSON on stdin and print one status line."""
    from .statusline import WRAP_POSITIONS, WRAP_SEPARATOR

    position = wrap_position if wrap_position in WRAP_POSITIONS else "right"
    layout = (position, WRAP_SEPARATOR if separator is None else separator)
    raise typer.Exit(run_statusline(_state(ctx).explicit_socket, fmt, wrap, layout))


# --- sessions ------------------------------------------------------------------------------


@app.command()
def sessions(
    ctx: typer.Context,
    everything: Annotated[
        bool, typer.Option("--all", help="Also ended sessions and transcript history.")
    ] = False,
    as_json: JsonFlag = False,
    all_hosts: Annotated[
        bool,
        typer.Option(
            "--all-hosts",
            help="Also list the sessions of every host in ~/.config/ccc/hosts (over ssh, "
            "concurrently), with a HOST column.",
        ),
    ] = False,
) -> None:
    """List live sessions: name, state, kind, where, queued, model, cwd, branch, ctx, cost."""
    state = _state(ctx)
    if all_hosts:
        raise typer.Exit(_sessions_all_hosts(state, as_json))
    try:
        records = _ask(state, "list_sessions", data={"all": True} if everything else None) or []
    except DaemonNotRunning as exc:
        note(f"{exc}; showing the last known state from {display(str(state.paths.cache_dir))}")
        records = degraded_sessions(state.paths)
        if not everything:
            records = [r for r in records if r.get("state") != "ended"]
    except ClientError as exc:
        raise fail(str(exc), exc.exit_code) from None
    records = sort_sessions(records)
    if as_json:
        print_json(records)
        return
    print_sessions(records, now=time.time(), colour=use_colour(sys.stdout))


# --- remote hosts (remote.py; loaded only for --host, HOST:SESSION and --all-hosts) ---------


def _sessions_all_hosts(state: State, as_json: bool) -> int:
    from . import remote

    try:
        hosts = remote.load_hosts()
    except ValueError as exc:
        return error(str(exc), EXIT_USAGE)

    def local() -> remote.HostSessions:
        try:
            return remote.HostSessions("local", _ask(state, "list_sessions") or [])
        except DaemonNotRunning as exc:
            note(f"local: {exc}; showing the last known state")
            return remote.HostSessions("local", degraded_sessions(state.paths))
        except ClientError as exc:
            return remote.HostSessions("local", [], str(exc))

    results = remote.list_all(hosts, local)
    records = [
        r
        for res in results
        for r in (
            remote.merged_records([res])
            if res.error
            else [{**x, "host": res.host} for x in sort_sessions(res.records)]
        )
    ]
    if as_json:
        print_json(records)
    else:
        print_host_sessions(records, now=time.time(), colour=use_colour(sys.stdout))
    for res in results:
        if res.error:
            note(f"{res.host}: {res.error}")
    if not hosts:
        note(f"no hosts configured in {remote.hosts_file()}; add one per line, e.g.: devbox")
    return EXIT_OK


def print_host_sessions(records: list[dict[str, Any]], *, now: float, colour: bool) -> None:
    """The sessions table with a HOST column first; an unreachable host is one row saying so."""
    rows: list[list[str]] = []
    colours: list[list[str | None]] = []
    width = len(SESSION_HEADERS) + 1
    for rec in records:
        host = str(rec.get("host") or "local")
        if rec.get("state") == "unreachable" and "session_id" not in rec:
            row = [host, *["-"] * (width - 1)]
            row[3] = "unreachable"
            row[SESSION_HEADERS.index("CWD") + 1] = _cut(str(rec.get("error") or ""), CWD_WIDTH)
            rows.append(row)
            colours.append([None, None, None, "31", *[None] * (width - 4)])
            continue
        row = [host, *session_row(rec, now)]
        rows.append(row)
        colours.append(
            [None, None, None if rec.get("connected") else "2", _STATE_COLOURS.get(row[3])]
            + [None] * (width - 4)
        )
    print_table(["HOST", *SESSION_HEADERS], rows, colours if colour else None)


def _context_pct(rec: dict[str, Any]) -> float | None:
    ctx = rec.get("context_window")
    if isinstance(ctx, dict) and isinstance(ctx.get("used_percentage"), int | float):
        return float(ctx["used_percentage"])
    return None


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


_STATE_COLOURS = {"idle": "32", "busy": "33", "waiting": "35", "failed": "31", "ended": "2"}


def session_row(rec: dict[str, Any], now: float) -> list[str]:
    pct = _context_pct(rec)
    cost = rec.get("cost_usd")
    last = last_activity(rec)
    state = str(rec.get("state") or "unknown")
    if state == "ended" and rec.get("end_reason") in ("crashed", "pane_gone"):
        state = f"ended ({rec['end_reason'].replace('_', ' ')})"
    queued = int(rec.get("queued") or 0)
    waiting_on = str(rec.get("waiting_on") or "")
    return [
        str(rec.get("name") or "-"),
        str(rec.get("session_id") or "?")[:8],
        state,
        str(rec.get("kind") or "-"),
        str(rec.get("where") or "-"),
        (f"{queued}" + (" draft" if "draft" in waiting_on else "")) if queued else "-",
        str(rec.get("model") or "-"),
        _shorten(display(str(rec["cwd"])), CWD_WIDTH) if rec.get("cwd") else "-",
        str(rec.get("git_branch") or "-"),
        f"{pct:.0f}%" if pct is not None else "-",
        f"${cost:.2f}" if isinstance(cost, int | float) else "-",
        f"{ago(now - last)} ago" if last else "-",
    ]


def print_table(
    headers: list[str], rows: list[list[str]], colours: list[list[str | None]] | None = None
) -> None:
    """Rows of session data as columns; every cell is cleaned of terminal escapes first."""
    rows = [[clean(cell) for cell in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for n, row in enumerate(rows):
        cells = []
        for i, (cell, w) in enumerate(zip(row, widths, strict=True)):
            padded = cell.ljust(w)
            colour = colours[n][i] if colours else None
            cells.append(f"\x1b[{colour}m{padded}\x1b[0m" if colour else padded)
        print("  ".join(cells).rstrip())


SESSION_HEADERS = [
    "NAME",
    "SESSION",
    "STATE",
    "KIND",
    "WHERE",
    "QUEUED",
    "MODEL",
    "CWD",
    "BRANCH",
    "CTX",
    "COST",
    "LAST ACTIVITY",
]


def print_sessions(records: list[dict[str, Any]], *, now: float, colour: bool) -> None:
    if not records:
        print("no sessions known yet; start one with: ccc run -- claude")
        return
    rows = [session_row(r, now) for r in records]
    colours: list[list[str | None]] | None = None
    if colour:
        colours = [[None] * len(row) for row in rows]
        for row, cols, rec in zip(rows, colours, records, strict=True):
            cols[2] = _STATE_COLOURS.get(row[2].split(" ")[0])
            if not rec.get("connected"):
                cols[1] = "2"
    print_table(
        SESSION_HEADERS,
        rows,
        colours,
    )


def open_store_readonly(db_path: Path) -> Any:
    """A :class:`~ccc_statusd.store.Store` over a read-only connection, or None if there is no
    database. Read-only: with the daemon down we must not migrate, repair or create anything."""
    from .paths import check_own_file
    from .store import Store

    db = Path(db_path)
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        try:
            check_own_file(path)  # SQLite would block on a FIFO, follow a symlink
        except OSError as exc:
            note(f"not reading the schedule: {exc}")
            return None
    return Store.open_readonly(db_path)


def _db_rows(paths: Paths, method: str, *args: Any) -> list[Any]:
    """What ``Store.<method>(*args)`` returns, read-only; empty without a database."""
    store = open_store_readonly(paths.db)
    if store is None:
        return []
    try:
        return list(getattr(store, method)(*args))
    except sqlite3.Error as exc:
        note(f"cannot read {display(str(paths.db))} ({exc}); showing what the cache files hold")
        return []
    finally:
        store.db.conn.close()


def degraded_sessions(paths: Paths) -> list[dict[str, Any]]:
    """Sessions from the database and the cache files, as list_sessions would show them."""
    from .cache import read_all_session_caches

    by_id: dict[str, dict[str, Any]] = {}
    for row in _db_rows(paths, "sessions"):
        if row.get("alias_of"):
            continue
        by_id[row["session_id"]] = {k: v for k, v in row.items() if v is not None}
    for rec in read_all_session_caches(paths):
        sid = rec.get("session_id")
        if not isinstance(sid, str):
            continue
        merged = by_id.setdefault(sid, {})
        merged.update({k: v for k, v in rec.items() if v is not None})
    aliases = {a for rec in by_id.values() for a in rec.get("aliases") or []}
    out = []
    for sid, rec in by_id.items():
        if sid in aliases:
            continue
        rec["connected"] = False  # nothing is connected to a daemon that is not running
        out.append(rec)
    return out


def known_ids(paths: Paths, records: list[dict[str, Any]] | None = None) -> set[str]:
    """Every session id we can resolve a prefix against: the daemon's list (when given), the
    cache files and the database (current ids and aliases)."""
    from .cache import session_cache_ids

    ids = set(session_cache_ids(paths))
    ids.update(str(sid) for sid in _db_rows(paths, "session_ids"))
    for rec in records or []:
        if rec.get("session_id"):
            ids.add(rec["session_id"])
        ids.update(rec.get("aliases") or [])
    return ids


def resolve_locally(target: str, ids: set[str]) -> str:
    """A full id or unique prefix → full id, with the daemon's own messages; exit 1 if not."""
    from .routing import RoutingError, resolve_id

    try:
        return resolve_id(target, ids)
    except RoutingError as exc:
        raise fail(str(exc)) from None


# --- status, query, path -------------------------------------------------------------------


@app.command()
def status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Show the daemon's pid, version, uptime, connections, sessions, schedule and paths."""
    state = _state(ctx)
    try:
        data = _ask(state, "status")
    except DaemonNotRunning as exc:
        scheduled = len(_db_rows(state.paths, "scheduled"))
        known = len(degraded_sessions(state.paths))
        if as_json:
            print_json(
                {
                    "running": False,
                    "sessions": known,
                    "scheduled": scheduled,
                    "paths": _paths_dict(state),
                }
            )
        else:
            print("ccc-statusd: not running")
            print(f"sessions:    {known} known")
            print(f"scheduled:   {scheduled}")
            _print_paths(_paths_dict(state))
        raise fail(str(exc), EXIT_NOT_RUNNING) from None
    except ClientError as exc:
        raise fail(str(exc), exc.exit_code) from None
    if as_json:
        print_json({"running": True, **data})
        return
    by_state = data.get("sessions_by_state") or {}
    states = ", ".join(f"{n} {s}" for s, n in sorted(by_state.items()))
    print(
        f"ccc-statusd: {data.get('version')}, pid {data.get('pid')}, up {ago(float(data.get('uptime_s') or 0))}"
    )
    print(
        f"connections: {data.get('connections', 0)} "
        f"({plural(data.get('session_clients', 0), 'session client')}, "
        f"{plural(data.get('subscribers', 0), 'subscriber')})"
    )
    print(f"sessions:    {data.get('sessions', 0)} live" + (f" ({states})" if states else ""))
    print(f"scheduled:   {data.get('scheduled', 0)}")
    print(f"eval:        {'allowed' if data.get('allow_eval') else 'disabled'}")
    _print_paths(data.get("paths") or _paths_dict(state))


def plural(n: Any, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _paths_dict(state: State) -> dict[str, str]:
    p = state.paths
    return {
        "cache_dir": str(p.cache_dir),
        "socket": state.socket,
        "pid": str(p.pid),
        "log": str(p.log),
        "db": str(p.db),
    }


def _print_paths(paths: dict[str, str]) -> None:
    for key, label in (("socket", "socket"), ("db", "database"), ("log", "log")):
        if paths.get(key):
            print(f"{label + ':':<12} {display(paths[key])}")


@app.command()
def query(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Argument(
            help="ping, status, list_sessions, active_sessions, active_connections, session_path, list_scheduled, reload_schedule."
        ),
    ],
    session: Annotated[
        str | None,
        typer.Option(
            "--session",
            metavar="ID",
            help="The session_id field (for session_path, list_scheduled).",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Accepted for symmetry: the output is always JSON.")
    ] = False,
) -> None:
    """Send a raw query and print its data as JSON."""
    state = _state(ctx)
    try:
        data = _ask(state, name, session_id=session)
    except ClientError as exc:
        raise fail(str(exc), exc.exit_code) from None
    print_json(data)


@app.command()
def path(ctx: typer.Context, session: SessionArg, as_json: JsonFlag = False) -> None:
    """Print the transcript path of a session (database, $CCC_PATH_HOME, then config dirs)."""
    state = _state(ctx)
    sid: str = session
    try:
        with Client(state.socket) as client:
            reply = client.request(
                {"type": "query", "query": "session_path", "session_id": session}
            )
        found = reply.get("data")
        sid = reply.get("session_id") or session
    except DaemonNotRunning as exc:
        note(f"{exc}; looking in {display(str(state.paths.cache_dir))} instead")
        sid = resolve_locally(session, known_ids(state.paths))
        found = degraded_session_path(state.paths, sid)
    except ClientError as exc:
        raise fail(str(exc), exc.exit_code) from None
    if as_json:
        print_json({"session_id": sid, "path": found})
        if not found:
            raise typer.Exit(EXIT_ERROR)
        return
    if not found:
        raise fail(
            f"no transcript found for session {sid}; set CCC_PATH_HOME or CLAUDE_CONFIG_DIR to "
            "where its config dir is"
        )
    print(found)


def degraded_session_path(paths: Paths, sid: str) -> str | None:
    """The seed's discovery order without the daemon: database, cache file, then the
    filesystem search the daemon does (``listing.discover_path``)."""

    from .cache import read_session_cache
    from .listing import discover_path

    row = next((r for r in _db_rows(paths, "sessions") if r["session_id"] == sid), None)
    if row and row.get("transcript_path"):
        return str(row["transcript_path"])
    cached = read_session_cache(paths.session_cache(sid)) or {}
    if cached.get("transcript_path"):
        return str(cached["transcript_path"])
    return discover_path(paths, sid, row)


# --- schedule ------------------------------------------------------------------------------


class _ScheduleGroup(TyperGroup):
    """``ccc schedule SESSION TEXT ...`` means ``ccc schedule add SESSION TEXT ...``; ``list``
    and ``cancel`` are subcommands (a session id is never one of those words)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["add", *args]
        return super().parse_args(ctx, args)


schedule_app = typer.Typer(
    cls=_ScheduleGroup,
    help="Schedule a prompt for later: ccc schedule SESSION TEXT --in 10m | --at 14:30 "
    "[--when-idle] [--after-limit-reset]; ccc schedule list; ccc schedule cancel ID.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(
    schedule_app, name="schedule", short_help="Schedule a prompt for later; list or cancel."
)


def _rate_limit_reset(state: State, sid: str, records: list[dict[str, Any]] | None) -> float:
    from .cache import read_session_cache

    limits = None
    for rec in records or []:
        if rec.get("session_id") == sid or sid in (rec.get("aliases") or []):
            limits = rec.get("rate_limits")
            break
    if not isinstance(limits, dict):
        limits = (read_session_cache(state.paths.session_cache(sid)) or {}).get("rate_limits")
    five = limits.get("five_hour") if isinstance(limits, dict) else None
    resets = parse_resets_at(five.get("resets_at")) if isinstance(five, dict) else None
    if resets is None:
        raise fail(
            f"no rate-limit reset time is known for session {sid} (it comes from the statusline "
            "of a Claude Code subscription session); use --in or --at instead"
        )
    if resets <= time.time():
        when = datetime.fromtimestamp(resets).strftime("%H:%M")
        raise fail(
            f"the five-hour limit of session {sid} already reset at {when} and the next reset is "
            "not known yet; send it now with ccc prompt, or use --in or --at"
        )
    return resets + RESET_MARGIN_S


def _when(send_at: float, trigger: str, now: float) -> str:
    try:
        due = datetime.fromtimestamp(send_at).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):  # a row no version of ccc should have stored
        due = f"epoch {send_at:g}"
    if trigger in ("when_idle", "idle") and send_at <= now + 1:
        return "at its next idle moment"
    idle = ", then at its next idle moment" if trigger == "when_idle" else ""
    return f"at {due} (in {ago(send_at - now)}){idle}"


def _reload_schedule(state: State) -> bool:
    """Tell a running daemon to re-read the schedule; False when there is none."""
    try:
        _ask(state, "reload_schedule")
        return True
    except DaemonNotRunning:
        return False
    except ClientError as exc:
        note(
            f"the schedule was saved but the daemon did not reload it ({exc}); it re-reads it within a minute"
        )
        return True


@schedule_app.command("add", context_settings=_FREE_TEXT)
def schedule_add(
    ctx: typer.Context,
    session: SessionArg,
    text: Annotated[str, typer.Argument(help="The prompt; - reads it from stdin.")],
    in_: Annotated[
        str | None,
        typer.Option("--in", metavar="DURATION", help="Send after this long: 90s, 10m, 2h, 1h30m."),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at", metavar="TIME", help="Send at this time: 14:30 (next such time) or ISO 8601."
        ),
    ] = None,
    when_idle: Annotated[
        bool,
        typer.Option(
            "--when-idle", help="Send at the session's next idle moment (after --in/--at if given)."
        ),
    ] = False,
    after_limit_reset: Annotated[
        bool,
        typer.Option(
            "--after-limit-reset",
            help="Send when the session's five-hour rate limit resets (plus a minute).",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Schedule a prompt (the default: ccc schedule SESSION TEXT --in 10m)."""
    from .sendcmd import UsageError, text_arg

    state = _state(ctx)
    timing = [
        flag
        for flag, given in (("--in", in_), ("--at", at), ("--after-limit-reset", after_limit_reset))
        if given
    ]
    if len(timing) > 1:
        raise fail(f"give only one of {' and '.join(timing)}", EXIT_USAGE)
    if not timing and not when_idle:
        raise fail("say when: --in 10m, --at 14:30, --when-idle or --after-limit-reset", EXIT_USAGE)
    try:
        message = text_arg(text, "prompt text")
    except UsageError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    now = time.time()
    try:
        if in_ is not None:
            send_at = now + parse_duration(in_)
        elif at is not None:
            send_at = parse_at(at, datetime.fromtimestamp(now)).timestamp()
        else:
            send_at = now
    except ValueError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    records: list[dict[str, Any]] | None = None
    try:
        records = _ask(state, "list_sessions")
    except DaemonNotRunning:
        records = None
    except ClientError as exc:
        raise fail(str(exc), exc.exit_code) from None
    sid = resolve_locally(session, known_ids(state.paths, records))
    if after_limit_reset:
        send_at = _rate_limit_reset(state, sid, records)
    trigger = "when_idle" if when_idle else "at"
    from .oserrors import describe_error, is_disk_full
    from .store import Store

    try:
        state.paths.ensure_dir()
        state.paths.check_fixed_files()
        store = Store(state.paths.db)
    except (OSError, sqlite3.Error) as exc:
        raise fail(f"cannot open the schedule: {describe_error(exc)}") from None
    try:
        row = store.add_scheduled(
            sid, message, int(send_at), trigger=trigger, sender="ccc schedule"
        )
    except (OSError, sqlite3.Error) as exc:
        if is_disk_full(exc):
            raise fail(
                f"cannot write the schedule to {display(str(state.paths.db))}: "
                f"{describe_error(exc)}; nothing was scheduled"
            ) from None
        raise fail(
            f"cannot write the schedule to {display(str(state.paths.db))} ({exc}); check the file and try again"
        ) from None
    finally:
        store.close()
    running = _reload_schedule(state)
    if as_json:
        print_json({**row, "due_in_s": round(row["send_at"] - now), "daemon_running": running})
        return
    print(f"scheduled {row['id']} for session {sid[:8]} {_when(row['send_at'], trigger, now)}")
    if not running:
        note(
            "the daemon is not running; it will send this when it starts (start it with: ccc-statusd)"
        )


@schedule_app.command("list")
def schedule_list(
    ctx: typer.Context,
    session: Annotated[
        str | None,
        typer.Option("--session", metavar="ID", help="Only this session's messages (full id)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List scheduled and queued prompts: when due, attempts, last error."""
    state = _state(ctx)
    rows = _db_rows(state.paths, "scheduled", session)
    now = time.time()
    if as_json:
        print_json([{**r, "due_in_s": round(r["send_at"] - now)} for r in rows])
        return
    if not rows:
        print("nothing scheduled")
        return
    table = []
    for r in rows:
        due_in = r["send_at"] - now
        if due_in > 0:
            due = f"in {ago(due_in)}"
        elif r.get("state") == "parked":
            due = "parked"
        elif r.get("state") == "in_flight":
            due = "typing now"
        elif r.get("trigger") in ("idle", "when_idle"):
            due = "when idle"
        else:
            due = f"overdue {ago(-due_in)}"
        text = str(r.get("message") or "")
        if r.get("kind") == "command":
            text = f"/{r.get('command_name') or ''} {text}".rstrip()
        lines = text.strip().splitlines()
        first = lines[0] if lines else ""
        table.append(
            [
                str(r["id"]),
                str(r["session_id"])[:8],
                due,
                _cut(first + (" …" if len(lines) > 1 else ""), TEXT_WIDTH),
                str(r.get("attempts") or 0),
                _cut(str(r.get("last_error") or "-"), ERROR_WIDTH),
            ]
        )
    print_table(["ID", "SESSION", "DUE", "TEXT", "ATTEMPTS", "LAST ERROR"], table)
    cut = [r for r in rows if len(str(r.get("last_error") or "")) > ERROR_WIDTH]
    if cut:  # the table shows the start of long errors; here they are whole
        print()
        for r in cut:
            print(f"{r['id']}: {clean(str(r['last_error']))}")


@schedule_app.command("cancel")
def schedule_cancel(
    ctx: typer.Context,
    id: Annotated[str, typer.Argument(help="A scheduled message's id or a unique prefix of it.")],
) -> None:
    """Cancel a scheduled or queued prompt."""
    from .store import Store

    state = _state(ctx)
    if not state.paths.db.exists():
        raise fail(f"no scheduled message matches {id!r}; list them with: ccc schedule list")
    from .oserrors import describe_error

    try:
        state.paths.check_fixed_files()
        store = Store(state.paths.db)
    except (OSError, sqlite3.Error) as exc:
        raise fail(f"cannot open the schedule: {describe_error(exc)}") from None
    try:
        matches = store.match_scheduled(id)
        if not matches:
            raise fail(f"no scheduled message matches {id!r}; list them with: ccc schedule list")
        if len(matches) > 1:
            raise fail(
                f"id prefix {id!r} is ambiguous: it matches {', '.join(sorted(matches))}; give more characters"
            )
        outcome = store.cancel_scheduled(matches[0])
    except (OSError, sqlite3.Error) as exc:
        raise fail(f"cannot change the schedule: {describe_error(exc)}") from None
    finally:
        store.close()
    if outcome == "in_flight":
        raise fail(
            f"too late: scheduled message {matches[0]} is being typed into its session right "
            "now; see what became of it with: ccc watch (or ccc sessions)"
        )
    if outcome != "cancelled":
        raise fail(
            f"scheduled message {matches[0]} was sent or cancelled meanwhile; nothing to cancel"
        )
    _reload_schedule(state)
    print(f"cancelled {matches[0]}")


# --- session client, install -------------------------------------------------------------


@app.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
def run(
    ctx: typer.Context,
    command: Annotated[
        list[str] | None, typer.Argument(help="The command to run, after -- (default: claude).")
    ] = None,
    inject: Annotated[
        bool,
        typer.Option(
            "--inject", help="Also load the in-process client into Claude Code (enables eval)."
        ),
    ] = False,
    log: Annotated[
        Path | None,
        typer.Option(
            "--log",
            metavar="PATH",
            help="Write the session client's log here (never to the terminal).",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Name the session (use it wherever a SESSION is accepted)."),
    ] = None,
) -> None:
    """Run Claude Code (or COMMAND) attached to the daemon, so it can receive prompts."""
    from .session import pty_host

    state = _state(ctx)
    raise typer.Exit(
        pty_host.run_command(
            list(command or []), paths=state.paths, inject=inject, log_path=log, name=name
        )
    )


@app.command("name")
def name_session(
    ctx: typer.Context,
    session: SessionArg,
    new_name: Annotated[
        str | None, typer.Argument(metavar="NAME", help="The new name; leave out to clear it.")
    ] = None,
) -> None:
    """Name a live session (or clear its name); the name works wherever a SESSION does."""
    state = _state(ctx)
    try:
        with Client(state.socket) as client:
            reply = client.request(
                {
                    "type": "query",
                    "query": "set_name",
                    "session_id": session,
                    "data": {"name": new_name or ""},
                }
            )
    except DaemonNotRunning as exc:
        raise fail(str(exc), EXIT_NOT_RUNNING) from None
    except ClientError as exc:
        raise fail(str(exc), exc.exit_code) from None
    sid = str(reply.get("session_id") or session)
    print(
        f"session {sid[:8]} is now called {new_name}"
        if new_name
        else f"session {sid[:8]} has no name now"
    )


@app.command()
def forget(ctx: typer.Context, session: SessionArg) -> None:
    """Forget an ended session: its rows in the database and its cache file."""
    state = _state(ctx)
    try:
        data = _ask(state, "forget", session_id=session)
    except DaemonNotRunning as exc:
        raise fail(str(exc), EXIT_NOT_RUNNING) from None
    except ClientError as exc:
        raise fail(str(exc), exc.exit_code) from None
    ids = (data or {}).get("forgotten") or [session]
    print("forgot " + ", ".join(str(i) for i in ids))


SettingsOpt = Annotated[
    Path | None,
    typer.Option(
        "--settings",
        metavar="PATH",
        help="The settings.json to edit (default: $CLAUDE_CONFIG_DIR/settings.json or ~/.claude/settings.json).",
    ),
]
ProfileOpt = Annotated[
    Path | None,
    typer.Option(
        "--profile", metavar="DIR", help="A Claude config dir whose settings.json to edit."
    ),
]
DryRunOpt = Annotated[
    bool, typer.Option("--print", "--dry-run", help="Show the change as a diff; write nothing.")
]


NoMcpOpt = Annotated[
    bool, typer.Option("--no-mcp", help="Leave the MCP server registration (ccc mcp) alone.")
]


@app.command()
def install(
    settings: SettingsOpt = None,
    profile: ProfileOpt = None,
    dry_run: DryRunOpt = False,
    no_mcp: NoMcpOpt = False,
    create: Annotated[
        bool,
        typer.Option("--create", help="Create the --profile dir if it does not exist yet."),
    ] = False,
) -> None:
    """Add ccc's hooks and statusLine to a Claude Code settings.json (a backup is kept)."""
    from . import install as inst

    if profile is not None and not create and not profile.expanduser().is_dir():
        raise fail(
            f"--profile {display(str(profile))} is not an existing directory (a typo would "
            f"create a profile Claude Code never reads); check the path, or create it with: "
            f"ccc install --profile {profile} --create",
            EXIT_USAGE,
        )
    try:
        target = inst.default_settings_path(profile=profile, settings=settings)
        result = inst.install(target, inst.find_ccc(), dry_run=dry_run)
    except inst.SettingsError as exc:
        raise fail(str(exc)) from None
    _report_settings(
        result,
        dry_run,
        "added ccc's hooks and statusLine to",
        "already has ccc's hooks and statusLine",
    )
    if not no_mcp:
        _mcp_wiring(True, settings, profile, dry_run)


@app.command()
def uninstall(
    settings: SettingsOpt = None,
    profile: ProfileOpt = None,
    dry_run: DryRunOpt = False,
    no_mcp: NoMcpOpt = False,
) -> None:
    """Remove exactly what ccc install added to a Claude Code settings.json (a backup is kept)."""
    from . import install as inst

    try:
        target = inst.default_settings_path(profile=profile, settings=settings)
        result = inst.uninstall(target, dry_run=dry_run)
    except inst.SettingsError as exc:
        raise fail(str(exc)) from None
    _report_settings(
        result, dry_run, "removed ccc's hooks and statusLine from", "has no ccc entries"
    )
    if not no_mcp:
        _mcp_wiring(False, settings, profile, dry_run)


def _report_settings(result: Any, dry_run: bool, did: str, nothing: str) -> None:
    for line in result.notes:
        note(line)
    if not result.changed:
        print(f"{display(str(result.path))} {nothing}; nothing to do")
    elif dry_run:
        sys.stdout.write(result.diff)
    else:
        backup = f" (backup: {display(str(result.backup))})" if result.backup else ""
        print(f"{did} {display(str(result.path))}{backup}")


# --- mcp (issue 18) -------------------------------------------------------------------------


@app.command()
def mcp(
    ctx: typer.Context,
    no_header: Annotated[
        bool,
        typer.Option("--no-header", help="Send prompts as plain text, without the sender header."),
    ] = False,
    header: Annotated[
        str | None,
        typer.Option(
            "--header",
            metavar="TEMPLATE",
            help="The sender header for prompts; fields {who} {name} {id} {session_id}.",
        ),
    ] = None,
    rate_limit: Annotated[
        float,
        typer.Option(
            "--rate-limit", metavar="N", min=1, help="Sends a minute allowed to this session."
        ),
    ] = 20.0,
    progress_every: Annotated[
        float, typer.Option("--progress-every", metavar="SECONDS", min=0.01, hidden=True)
    ] = 10.0,
) -> None:
    """Serve ccc's tools to Claude Code over MCP (stdio); registered by ccc install."""
    from .mcp_server import serve

    raise typer.Exit(
        serve(
            _state(ctx).explicit_socket,
            header=not no_header,
            rate_per_minute=rate_limit,
            prompt_header=header.replace("\\n", "\n") if header is not None else None,
            progress_interval_s=progress_every,
        )
    )


def _mcp_wiring(add: bool, settings: Path | None, profile: Path | None, dry_run: bool) -> None:
    """The MCP half of install/uninstall (ccc_statusd.mcp_install): register or remove
    ``ccc mcp`` as the user-scope MCP server ``ccc``."""
    from . import install as inst
    from . import mcp_install as mi

    try:
        target = mi.user_config_path(profile=profile, settings=settings)
        claude = mi.find_claude()
        if add:
            result = mi.register(target, inst.find_ccc(), claude=claude, dry_run=dry_run)
        else:
            result = mi.unregister(target, claude=claude, dry_run=dry_run)
    except inst.SettingsError as exc:
        raise fail(str(exc)) from None
    if add:
        _report_settings(
            result, dry_run, "registered the MCP server `ccc mcp` in", "already has `ccc mcp`"
        )
    else:
        _report_settings(
            result, dry_run, "removed the MCP server `ccc mcp` from", "has no `ccc mcp` server"
        )


# --- entry point ---------------------------------------------------------------------------


# One sentence each in `ccc --help` (click would cut a docstring mid-phrase, at "e.g.").
SHORT_HELP = {
    "prompt": "Send a prompt, typed as if by the session's user.",
    "command": "Run a slash command in a session.",
    "eval_": "Evaluate JavaScript inside a session.",
    "ask": "Send a prompt and print the reply of its turn.",
    "watch": "Follow what happens to sessions, one line each.",
    "top": "A full-screen live view of every session.",
    "notify": "Alert when a session needs you.",
    "hook": "Forward a Claude Code hook event to the daemon.",
    "statusline": "Claude Code's statusLine: forward it, print a line.",
    "sessions": "List live sessions (--all: ended ones too).",
    "status": "Show the daemon's state, counts and paths.",
    "query": "Send a raw query and print its data as JSON.",
    "path": "Print the transcript path of a session.",
    "run": "Run Claude Code attached to the daemon.",
    "name_session": "Name a live session, or clear its name.",
    "forget": "Forget an ended session.",
    "install": "Wire ccc into Claude Code's settings.",
    "uninstall": "Remove exactly what ccc install added.",
    "mcp": "Serve ccc's tools to Claude Code over MCP.",
    "schedule_add": "Schedule a prompt (the default subcommand).",
    "schedule_list": "List scheduled and queued prompts.",
    "schedule_cancel": "Cancel a scheduled or queued prompt.",
}
for _command in (*app.registered_commands, *schedule_app.registered_commands):
    _fn = getattr(_command.callback, "__name__", "")
    if _fn in SHORT_HELP and _command.short_help is None:
        _command.short_help = SHORT_HELP[_fn]


def main(argv: list[str] | None = None) -> int:
    """Run the typer app; returns the exit code (fastcli's fall-through lands here).
    ``--host H`` and ``H:SESSION`` go to :mod:`ccc_statusd.remote` first."""
    args = sys.argv[1:] if argv is None else list(argv)
    if any(a == "--host" or a.startswith("--host=") or ":" in a for a in args):
        from .remote import main as remote_main

        remote_code = remote_main(args)
        if remote_code is not None:
            return remote_code
    argv = args
    try:
        app(args=argv, prog_name="ccc", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return EXIT_OK
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


__all__ = ["app", "main", "not_running", "EXIT_NOT_RUNNING"]


if __name__ == "__main__":
    sys.exit(main())
