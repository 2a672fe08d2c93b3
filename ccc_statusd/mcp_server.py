"""``ccc mcp``: the daemon's tools for a Claude Code session, as an MCP server over stdio.

Claude Code starts this as a child process (one per session, registered by ``ccc install``) and
the session's model calls the tools as ``mcp__ccc__<tool>``. Built on the official MCP SDK
(``mcp.server.mcpserver.MCPServer``, anyio on asyncio); every tool is a few requests to the
daemon through :class:`~ccc_statusd.aclient.AsyncClient`, one short connection per call (an
``ask`` holds its connection for minutes and must not hold up the other tools).

Who is calling: :func:`ccc_statusd.caller.find_caller` on every call (the session may send its
first hook after we start, and ``/clear`` changes its id). Routed prompts carry a sender header
(:func:`ccc_statusd.caller.sender_header`; ``--no-header`` turns it off); asks carry the asker's
ids so the daemon refuses a self-ask; sends are rate-limited per calling session
(:class:`ccc_statusd.caller.RateLimiter`).

Errors are ``ToolError``: the call returns ``isError`` with one sentence the model can act on.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from . import __version__
from .aclient import AsyncClient
from .askgraph import AskCycle, check_ask
from .caller import (
    DEFAULT_ASK_HEADER,
    DEFAULT_PROMPT_HEADER,
    Caller,
    RateLimited,
    RateLimiter,
    ancestors,
    find_caller,
    find_row,
    resolve_name,
    row_name,
    sender_header,
    short_id,
)
from .client import ClientError, DaemonNotRunning, default_socket_path
from .paths import Paths

# Sends (prompt, command, ask, schedule) per calling session: a burst of this many, refilled at
# this rate a minute. A person coordinating a few sessions never gets near it; a model stuck in
# a loop is stopped within seconds instead of filling another session's outbox.
DEFAULT_RATE_PER_MINUTE = 20.0
DEFAULT_BURST = 10.0
# Progress notification interval while an ask (or send_prompt wait) is pending: Claude Code
# shows it and keeps the tool call alive.
PROGRESS_INTERVAL_S = 10.0
DEFAULT_ASK_TIMEOUT_S = 600.0
MAX_ASK_TIMEOUT_S = 3600.0  # a model waiting longer than an hour should schedule instead
DEFAULT_SEND_WAIT_S = 300.0
SEND_WAIT_POLL_S = 1.0
# What the model should know about the server (MCP "instructions").
INSTRUCTIONS = (
    "ccc connects the Claude Code sessions running on this machine. Use list_sessions to see "
    "them (name, short id, state), send_prompt to hand another session work without waiting, "
    "ask_session to ask one a question and wait for its answer, send_command to run a slash "
    "command there, schedule_prompt for later. Prompts you send are prefixed with a header "
    "naming you, so the other side knows who asked. Never ask yourself (whoami tells you who "
    "you are)."
)
LIVE_STATES = frozenset({"idle", "busy", "waiting", "failed"})


def _err(exc: BaseException) -> ToolError:
    return ToolError(str(exc))


class Peers:
    """What the tools share: where the daemon is, who we are, the header, the send budget."""

    def __init__(
        self,
        socket_path: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        header: bool = True,
        prompt_header: str = DEFAULT_PROMPT_HEADER,
        ask_header: str = DEFAULT_ASK_HEADER,
        rate_per_minute: float = DEFAULT_RATE_PER_MINUTE,
        burst: float = DEFAULT_BURST,
        clock: Callable[[], float] = time.monotonic,
        pids: Callable[[], list[int]] = ancestors,
        progress_interval_s: float = PROGRESS_INTERVAL_S,
        poll_s: float = SEND_WAIT_POLL_S,
    ) -> None:
        self.socket_path = socket_path or default_socket_path()
        self.env = dict(os.environ if env is None else env)
        self.prompt_header = prompt_header if header else ""
        self.ask_header = ask_header if header else ""
        self.limiter = RateLimiter(rate_per_minute, burst, clock)
        self.pids = pids
        self.progress_interval_s = progress_interval_s
        self.poll_s = poll_s
        self._pid_cache: list[int] | None = None

    def client(self, timeout: float | None = None) -> AsyncClient:
        return (
            AsyncClient(self.socket_path)
            if timeout is None
            else AsyncClient(self.socket_path, timeout)
        )

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        try:
            async with self.client() as c:
                return await c.request(message)
        except ClientError as exc:
            raise _err(exc) from None

    async def query(self, name: str, **fields: Any) -> Any:
        return (await self.request({"type": "query", "query": name, **fields})).get("data")

    async def rows(self, *, everything: bool = False) -> list[dict[str, Any]]:
        """Live sessions (``everything``: also ended ones and transcript history)."""
        data = await self.query("list_sessions", data={"all": True} if everything else None)
        return [r for r in data or [] if isinstance(r, dict)]

    def caller(self, rows: list[dict[str, Any]]) -> Caller:
        if self._pid_cache is None:
            self._pid_cache = self.pids()
        return find_caller(rows, self.env, self._pid_cache)

    def spend(self, caller: Caller) -> None:
        """One send from ``caller``; ToolError when over the limit."""
        key = caller.internal_id or (
            f"pid-{caller.row.get('pid')}" if caller.row and caller.row.get("pid") else "self"
        )
        try:
            self.limiter.take(key)
        except RateLimited as exc:
            raise _err(exc) from None

    async def target(self, session: str) -> tuple[str, Caller, Mapping[str, Any] | None]:
        """(what to send to the daemon, who is calling, the target's row if we know it)."""
        if not isinstance(session, str) or not session.strip():
            raise ToolError(
                "session is empty: give a session's name, id or id prefix (see list_sessions)"
            )
        rows = await self.rows()
        caller = self.caller(rows)
        row = find_row(session, rows)
        return resolve_name(session, rows), caller, row


def session_summary(row: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a ``list_sessions`` row a model needs to pick a session."""
    ctx = row.get("context_window")
    pct = ctx.get("used_percentage") if isinstance(ctx, dict) else None
    out: dict[str, Any] = {
        "name": row_name(row),
        "id": short_id(row.get("session_id")),
        "session_id": row.get("session_id"),
        "state": row.get("state") or "unknown",
        "connected": bool(row.get("connected")),
        "cwd": row.get("cwd"),
        "branch": row.get("git_branch"),
        "model": row.get("model"),
        "context_pct": round(float(pct)) if isinstance(pct, int | float) else None,
    }
    return {k: v for k, v in out.items() if v is not None}


def is_live(row: Mapping[str, Any]) -> bool:
    """Not ended, and attached or known from hooks to be running."""
    state = row.get("state") or "unknown"
    return state != "ended" and (bool(row.get("connected")) or state in LIVE_STATES)


def _describe_send(reply: Mapping[str, Any], target: str, kind: str) -> dict[str, Any]:
    status = str(reply.get("status") or "delivered")
    raw = reply.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    sid = str(reply.get("session_id") or target)
    out: dict[str, Any] = {"status": status, "session_id": sid}
    if status == "queued":
        reason = data.get("reason") or "the session is not idle"
        out["queued_id"] = data.get("id")
        out["message"] = (
            f"queued for session {short_id(sid)} ({reason}); it will be typed at its next idle "
            f"moment"
            + (f"; cancel with cancel_scheduled id {data['id']}" if data.get("id") else "")
        )
    elif status == "submitted":
        out["message"] = f"{kind} submitted to session {short_id(sid)} (Claude Code took it)"
    elif status == "typed":
        out["message"] = (
            f"{kind} typed into session {short_id(sid)}; Claude Code has not confirmed it yet"
        )
    elif status == "delivered":
        out["message"] = f"{kind} delivered to session {short_id(sid)}"
    else:
        out["message"] = f"{kind} for session {short_id(sid)}: {status}"
    return out


async def _with_progress(
    ctx: Context | None,
    interval_s: float,
    total: float | None,
    what: Callable[[float], str],
    work: Callable[[], Any],
) -> Any:
    """Run ``work()``; every ``interval_s`` send an MCP progress notification meanwhile."""
    result: list[Any] = []
    start = anyio.current_time()

    async def ticker() -> None:
        n = 0
        while True:
            await anyio.sleep(interval_s)
            n += 1
            if ctx is not None:
                elapsed = anyio.current_time() - start
                await ctx.report_progress(elapsed, total, what(elapsed))

    failed: list[Exception] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        try:
            result.append(await work())
        except Exception as exc:  # re-raised below, not wrapped in the task group's group
            failed.append(exc)
        finally:
            tg.cancel_scope.cancel()
    if failed:
        raise failed[0]
    return result[0]


def build_server(peers: Peers) -> MCPServer:
    """The MCP server with every tool bound to ``peers``."""
    server: MCPServer = MCPServer(
        name="ccc", instructions=INSTRUCTIONS, version=__version__, log_level="WARNING"
    )
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)
    sends = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)

    @server.tool(annotations=read_only)
    async def list_sessions(
        all: Annotated[
            bool,
            Field(description="Also list sessions that ended or are no longer connected."),
        ] = False,
    ) -> dict[str, Any]:
        """List the Claude Code sessions on this machine: name (if set), short id, state
        (idle, busy, waiting for permission, failed, ended), working directory, git branch,
        model, context-window use in percent and queued messages. Live sessions only unless
        `all` is true. The entry marked `you` is the session calling this tool."""
        rows = await peers.rows(everything=all)
        caller = peers.caller(rows)
        pending: dict[str, int] = {}
        for r in await peers.query("list_scheduled") or []:
            if isinstance(r, dict) and isinstance(r.get("session_id"), str):
                pending[r["session_id"]] = pending.get(r["session_id"], 0) + 1
        shown = []
        for row in rows:
            if not all and not is_live(row):
                continue
            item = session_summary(row)
            item["queued"] = pending.get(str(row.get("session_id")), 0)
            if caller.known and caller.is_row(row):
                item["you"] = True
            shown.append(item)
        return {"sessions": shown, "count": len(shown)}

    @server.tool(annotations=read_only)
    async def whoami() -> dict[str, Any]:
        """Who you are to ccc: this session's id, short id, name and state, and how it was
        identified. Other sessions see you by this name/id in the header of what you send."""
        rows = await peers.rows()
        caller = peers.caller(rows)
        if not caller.known:
            raise ToolError(
                "ccc cannot tell which session this is: no CCC_INTERNAL_ID in the environment "
                "and no session with this process's parent pid has sent a hook yet; start "
                "claude with `ccc run -- claude`, or run `ccc install` so its hooks reach the "
                "daemon, then try again"
            )
        out: dict[str, Any] = {
            "session_id": caller.session_id,
            "id": short_id(caller.session_id) if caller.session_id else None,
            "name": caller.name,
            "state": caller.state,
            "internal_id": caller.internal_id,
            "identified_by": caller.how,
        }
        return {k: v for k, v in out.items() if v is not None}

    @server.tool(annotations=sends)
    async def send_prompt(
        session: Annotated[
            str, Field(description="The target session: its name, full id or id prefix.")
        ],
        text: Annotated[str, Field(description="The prompt, as its user would type it.")],
        wait: Annotated[
            bool,
            Field(
                description="If the session is busy the prompt is queued; true waits until it "
                "is actually typed into the session (up to 5 minutes), not for its answer "
                "(use ask_session for that)."
            ),
        ] = False,
        ctx: Context | None = None,
    ) -> dict[str, Any]:
        """Send a prompt to another Claude Code session, typed into it as if by its user, and
        return at once (status `delivered`/`submitted`, or `queued` when that session is busy:
        it gets the prompt at its next idle moment). The text is prefixed with a header naming
        you so the other session knows who sent it. To get an answer back, use ask_session."""
        if not text.strip():
            raise ToolError("text is empty: give the prompt to send")
        target, caller, row = await peers.target(session)
        if caller.known and row is not None and caller.is_row(row):
            raise ToolError(
                "that session is you: a prompt sent to yourself would only be typed after this "
                "turn ends; just do the work now, or schedule_prompt it for later"
            )
        peers.spend(caller)
        body = sender_header(peers.prompt_header, caller) + text
        reply = await peers.request({"type": "prompt", "session_id": target, "text": body})
        out = _describe_send(reply, target, "prompt")
        queued_id = out.get("queued_id")
        if wait and queued_id is not None:
            await _with_progress(
                ctx,
                peers.progress_interval_s,
                DEFAULT_SEND_WAIT_S,
                lambda s: (
                    f"waiting for session {short_id(out['session_id'])} to become idle ({s:.0f} s)"
                ),
                lambda: _wait_unqueued(peers, str(queued_id), DEFAULT_SEND_WAIT_S),
            )
            out["status"] = "typed"
            out["message"] = (
                f"prompt typed into session {short_id(out['session_id'])} (it was queued first)"
            )
        return out

    @server.tool(annotations=sends)
    async def send_command(
        session: Annotated[
            str, Field(description="The target session: its name, full id or id prefix.")
        ],
        name: Annotated[
            str, Field(description="The slash command, with or without the /, e.g. compact.")
        ],
        args: Annotated[
            str | None, Field(description="The command's arguments, if any, as one string.")
        ] = None,
    ) -> dict[str, Any]:
        """Run a slash command (e.g. /compact, /model sonnet) in another Claude Code session.
        Returns `delivered`/`submitted`, or `queued` when that session is busy. Slash commands
        carry no sender header."""
        if not name.strip("/ "):
            raise ToolError("name is empty: give the command, e.g. compact")
        target, caller, row = await peers.target(session)
        if caller.known and row is not None and caller.is_row(row):
            raise ToolError(
                "that session is you: a command sent to yourself would only run after this turn "
                "ends; ask your user to run it, or schedule_prompt it"
            )
        peers.spend(caller)
        msg: dict[str, Any] = {"type": "command", "session_id": target, "name": name}
        if args:
            msg["text"] = args
        reply = await peers.request(msg)
        return _describe_send(reply, target, "command")

    @server.tool(annotations=sends)
    async def ask_session(
        session: Annotated[
            str, Field(description="The session to ask: its name, full id or id prefix.")
        ],
        question: Annotated[str, Field(description="The question or task, as a prompt.")],
        timeout: Annotated[  # noqa: ASYNC109 (a tool argument the model sets)
            float,
            Field(
                description="Seconds to wait for the answer (default 600, at most 3600).",
                gt=0,
                le=MAX_ASK_TIMEOUT_S,
            ),
        ] = DEFAULT_ASK_TIMEOUT_S,
        ctx: Context | None = None,
    ) -> dict[str, Any]:
        """Ask another Claude Code session something and wait for its answer: the prompt is
        typed into that session (queued until it is idle if busy), and the text of the reply
        its turn ends with is returned. Takes as long as that session needs. You cannot ask
        yourself; to hand work off without waiting use send_prompt."""
        if not question.strip():
            raise ToolError("question is empty: give the question to ask")
        target, caller, row = await peers.target(session)
        if caller.known and row is not None and caller.is_row(row):
            raise ToolError(
                f"session {short_id(caller.session_id)} is you: asking yourself would wait for "
                "the end of the very turn that is waiting; answer it yourself, or use "
                "send_prompt/schedule_prompt to queue a prompt for later"
            )
        peers.spend(caller)
        body = sender_header(peers.ask_header, caller) + question
        target_sid = row.get("session_id") if row else None
        edge = (
            (caller.session_id, target_sid)
            if caller.session_id and isinstance(target_sid, str)
            else None
        )
        data: dict[str, Any] = {"timeout_s": float(timeout), **caller.asker_fields()}
        msg = {"type": "ask", "session_id": target, "text": body, "data": data}
        if caller.internal_id:
            msg["internal_id"] = caller.internal_id
        shown = row_name(row) if row else None
        label = shown or (short_id(row.get("session_id")) if row else target)

        async def run() -> dict[str, Any]:
            try:
                async with peers.client() as c:
                    c.timeout = float(timeout) + 10.0
                    return await c.request(msg)
            except DaemonNotRunning as exc:
                raise _err(exc) from None
            except ClientError as exc:
                raise ToolError(f"asking session {label} failed: {exc}") from None

        asks = _asks_dir(peers)
        mark = _mark_ask(asks, edge, float(timeout)) if edge else None
        try:
            if edge:
                try:
                    check_ask(_asks_in_flight(asks, exclude=mark), *edge)
                except AskCycle as exc:
                    raise _err(exc) from None
            reply = await _with_progress(
                ctx,
                peers.progress_interval_s,
                float(timeout),
                lambda s: f"waiting for session {label} to answer ({s:.0f} s of {timeout:g} s)",
                run,
            )
        finally:
            if mark is not None:
                with contextlib.suppress(OSError):
                    os.unlink(mark)
        answer = (reply.get("data") or {}).get("reply")
        sid = str(reply.get("session_id") or target)
        return {
            "session_id": sid,
            "reply": answer
            if answer is not None
            else f"(session {short_id(sid)} finished its turn without reply text)",
        }

    @server.tool(annotations=sends)
    async def schedule_prompt(
        session: Annotated[
            str, Field(description="The target session: its name, full id or id prefix.")
        ],
        text: Annotated[str, Field(description="The prompt to send later.")],
        at: Annotated[
            str | None,
            Field(description="Send at this local time: 14:30 (the next one) or ISO 8601."),
        ] = None,
        delay: Annotated[
            str | None, Field(description="Send after this long: 90s, 10m, 2h, 1h30m.")
        ] = None,
        when_idle: Annotated[
            bool,
            Field(
                description="Send at the session's next idle moment (after `at`/`delay` if given)."
            ),
        ] = False,
        after_limit_reset: Annotated[
            bool,
            Field(description="Send when the session's five-hour usage limit resets."),
        ] = False,
    ) -> dict[str, Any]:
        """Schedule a prompt for another session (or yourself) for later: at a time, after a
        delay, at its next idle moment, or when its usage limit resets. It is stored durably
        and survives restarts; list_scheduled shows it, cancel_scheduled removes it."""
        from .routing import RoutingError, resolve_id
        from .timespec import RESET_MARGIN_S, parse_at, parse_duration, parse_resets_at

        timing = [
            n
            for n, v in (("at", at), ("delay", delay), ("after_limit_reset", after_limit_reset))
            if v
        ]
        if len(timing) > 1:
            raise ToolError(f"give only one of {' and '.join(timing)}")
        if not timing and not when_idle:
            raise ToolError("say when: at, delay, when_idle or after_limit_reset")
        if not text.strip():
            raise ToolError("text is empty: give the prompt to schedule")
        rows = await peers.rows()
        caller = peers.caller(rows)
        ids = {r["session_id"] for r in rows if isinstance(r.get("session_id"), str)}
        ids.update(a for r in rows for a in r.get("aliases") or [] if isinstance(a, str))
        try:
            sid = resolve_id(resolve_name(session, rows), ids)
        except RoutingError as exc:
            raise _err(exc) from None
        now = time.time()
        try:
            if delay is not None:
                send_at = now + parse_duration(delay, "delay")
            elif at is not None:
                send_at = parse_at(at, datetime.fromtimestamp(now)).timestamp()
            else:
                send_at = now
        except ValueError as exc:
            raise ToolError(str(exc).replace("--in", "delay").replace("--at", "at")) from None
        if after_limit_reset:
            row = next((r for r in rows if r.get("session_id") == sid), None) or {}
            limits = row.get("rate_limits")
            five = limits.get("five_hour") if isinstance(limits, dict) else None
            resets = parse_resets_at(five.get("resets_at")) if isinstance(five, dict) else None
            if resets is None or resets <= now:
                raise ToolError(
                    f"no upcoming usage-limit reset is known for session {short_id(sid)}; "
                    "use at or delay instead"
                )
            send_at = resets + RESET_MARGIN_S
        peers.spend(caller)
        is_self = caller.known and caller.is_row(
            next((r for r in rows if r.get("session_id") == sid), {})
        )
        body = text if is_self else sender_header(peers.prompt_header, caller) + text
        row_out = await anyio.to_thread.run_sync(
            _add_scheduled, peers, sid, body, int(send_at), when_idle, caller.who
        )
        try:
            await peers.query("reload_schedule")
        except ToolError:
            pass  # saved; the daemon re-reads the schedule when it starts
        return {
            "id": row_out["id"],
            "session_id": sid,
            "send_at": datetime.fromtimestamp(row_out["send_at"]).isoformat(timespec="seconds"),
            "when_idle": when_idle,
            "message": f"scheduled {row_out['id']} for session {short_id(sid)}",
        }

    @server.tool(annotations=read_only)
    async def list_scheduled(
        session: Annotated[
            str | None,
            Field(description="Only this session's (name, full id or prefix); default all."),
        ] = None,
    ) -> dict[str, Any]:
        """List scheduled and queued prompts: id, target session, when due, text, attempts and
        last error (a prompt that could not be delivered stays listed with its error)."""
        fields: dict[str, Any] = {}
        if session:
            target, _, row = await peers.target(session)
            # The daemon filters on the full id only: resolve names and prefixes here.
            sid = row.get("session_id") if row else None
            fields["session_id"] = sid if isinstance(sid, str) else target
        data = await peers.query("list_scheduled", **fields) or []
        now = time.time()
        items = []
        for r in data if isinstance(data, list) else []:
            if not isinstance(r, dict):
                continue
            send_at = r.get("send_at")
            items.append(
                {
                    "id": r.get("id"),
                    "session": short_id(r.get("session_id")),
                    "session_id": r.get("session_id"),
                    "due_in_s": round(send_at - now) if isinstance(send_at, int | float) else None,
                    "trigger": r.get("trigger"),
                    "text": str(r.get("message") or "")[:200],
                    "attempts": r.get("attempts") or 0,
                    "last_error": r.get("last_error"),
                }
            )
        return {"scheduled": items, "count": len(items)}

    @server.tool(annotations=ToolAnnotations(destructive_hint=True, open_world_hint=False))
    async def cancel_scheduled(
        id: Annotated[str, Field(description="The scheduled prompt's id or a unique prefix.")],
    ) -> dict[str, Any]:
        """Cancel a scheduled or queued prompt (see list_scheduled for ids)."""
        cancelled = await anyio.to_thread.run_sync(_cancel_scheduled, peers, id)
        try:
            await peers.query("reload_schedule")
        except ToolError:
            pass
        return {"cancelled": cancelled, "message": f"cancelled {cancelled}"}

    return server


def _paths(peers: Peers) -> Paths:
    sock = peers.socket_path
    return Paths(Path(sock).parent) if os.path.basename(sock) == "daemon.sock" else Paths.default()


def _add_scheduled(
    peers: Peers, sid: str, text: str, send_at: int, when_idle: bool, who: str
) -> dict[str, Any]:
    from .store import Store

    paths = _paths(peers)
    paths.ensure_dir()
    try:
        store = Store(paths.db)
    except sqlite3.Error as exc:
        raise ToolError(f"cannot open the schedule database ({exc}); check: ccc status") from None
    try:
        row: dict[str, Any] = store.add_scheduled(
            sid,
            text,
            send_at,
            trigger="when_idle" if when_idle else "at",
            sender=f"ccc mcp ({who})",
        )
        return row
    except sqlite3.Error as exc:
        raise ToolError(f"cannot write the schedule ({exc}); check: ccc status") from None
    finally:
        store.close()


def _cancel_scheduled(peers: Peers, ident: str) -> str:
    from .store import Store

    paths = _paths(peers)
    missing = ToolError(f"no scheduled prompt matches {ident!r}; see list_scheduled")
    if not paths.db.exists():
        raise missing
    store = Store(paths.db)
    try:
        matches = store.match_scheduled(ident)
        if not matches:
            raise missing
        if len(matches) > 1:
            raise ToolError(
                f"id prefix {ident!r} is ambiguous: it matches {', '.join(sorted(matches))}; "
                "give more characters"
            )
        if not store.delete_scheduled(matches[0]):
            raise ToolError(f"scheduled prompt {matches[0]} was sent or cancelled meanwhile")
        return str(matches[0])
    finally:
        store.close()


# --- asks in flight (cycle detection until the daemon does it: see ccc_statusd.askgraph) -------
#
# Each ask_session in flight is a small file <cache>/asks/<pid>-<n>.json: {"asker", "target",
# "pid", "until"}. An ask first writes its own file, then reads the others (so two sessions that
# ask each other at the same moment both see the cycle and both get the error, never both wait).
# Files of processes that are gone, or past their deadline, are ignored.
ASKS_DIR_NAME = "asks"
MAX_ASK_FILES = 512  # a bound on what one ask reads; far above the sessions one user runs
MAX_ASK_FILE_BYTES = 4096
_ask_serial = itertools.count(1)


def _asks_dir(peers: Peers) -> Path:
    return _paths(peers).cache_dir / ASKS_DIR_NAME


def _mark_ask(directory: Path, edge: tuple[str, str], timeout_s: float) -> Path | None:
    record: dict[str, Any] = {"asker": edge[0], "target": edge[1], "pid": os.getpid()}
    record["until"] = time.time() + timeout_s + 60
    path = directory / f"{os.getpid()}-{next(_ask_serial)}.json"
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        os.replace(tmp, path)
    except OSError:
        return None  # no cycle check then; the ask itself still works
    return path


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 1:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _asks_in_flight(directory: Path, exclude: Path | None = None) -> list[tuple[str, str]]:
    """The edges asker → target of every other ask in flight (bounded, non-blocking reads)."""
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".json"))[:MAX_ASK_FILES]
    except OSError:
        return []
    now = time.time()
    edges = []
    for name in names:
        path = directory / name
        if exclude is not None and path == exclude:
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as f:
                rec = json.loads(f.read(MAX_ASK_FILE_BYTES))
        except (OSError, ValueError):
            continue
        if not isinstance(rec, dict):
            continue
        asker, target, until = rec.get("asker"), rec.get("target"), rec.get("until")
        if not (isinstance(asker, str) and isinstance(target, str)):
            continue
        if not isinstance(until, int | float) or until < now or not _alive(rec.get("pid")):
            with contextlib.suppress(OSError):
                os.unlink(path)  # a crashed or finished ask's leftover
            continue
        edges.append((asker, target))
    return edges


async def _wait_unqueued(peers: Peers, queued_id: str, timeout_s: float) -> None:
    """Poll the schedule until the queued prompt is gone (delivered; rows are deleted only
    after the session confirmed), or raise ToolError after ``timeout_s``."""
    with anyio.move_on_after(timeout_s):
        while True:
            rows = await peers.query("list_scheduled") or []
            if not any(isinstance(r, dict) and str(r.get("id")) == queued_id for r in rows):
                return
            await anyio.sleep(peers.poll_s)
    raise ToolError(
        f"the prompt is still queued after {timeout_s:g} s (id {queued_id}): the session has "
        "not been idle; it will be typed when it is (cancel with cancel_scheduled)"
    )


def serve(
    socket_path: str | None = None,
    *,
    header: bool = True,
    rate_per_minute: float = DEFAULT_RATE_PER_MINUTE,
    prompt_header: str | None = None,
    progress_interval_s: float = PROGRESS_INTERVAL_S,
) -> int:
    """Run the server on stdin/stdout until the client closes it (``ccc mcp``)."""
    peers = Peers(
        socket_path,
        header=header,
        rate_per_minute=rate_per_minute,
        burst=min(DEFAULT_BURST, max(1.0, rate_per_minute)),
        prompt_header=prompt_header if prompt_header is not None else DEFAULT_PROMPT_HEADER,
        progress_interval_s=progress_interval_s,
    )
    build_server(peers).run("stdio")
    return 0
