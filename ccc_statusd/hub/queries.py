"""Answers to ``query`` messages (SPEC §4 rule 5): the daemon's state, read-only.

``session_path`` follows the seed's discovery order: the live session's or the database's
transcript path, the transcript index, then ``listing.discover_path`` on the filesystem.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from .. import protocol
from ..events import EventBus, TooManySubscribers
from ..listing import discover_path, last_activity, sort_sessions
from ..paths import Paths
from ..protocol import RemoteProtocolError
from ..routing import RoutingError
from ..scheduler import Scheduler
from ..server import Conn, Server
from ..sessions import ENDED
from ..store import Store
from ..storeworker import StoreWorker
from .clients import SessionClients
from .directory import SessionDirectory


class Queries:
    def __init__(
        self,
        directory: SessionDirectory,
        clients: SessionClients,
        scheduler: Scheduler,
        events: EventBus,
        store: StoreWorker,
        server: Server | None,
        paths: Paths,
        status: Callable[[], dict[str, Any]],
        forget_rows: Callable[[list[str]], Awaitable[None]],
    ) -> None:
        self.forget_rows = forget_rows
        self.directory = directory
        self.clients = clients
        self.scheduler = scheduler
        self.events = events
        self.store = store
        self.server = server
        self.paths = paths
        self._handlers: dict[str, Callable[[Conn, protocol.Query], Awaitable[Any]]] = {
            "ping": self._ping,
            "status": self._status,
            "active_sessions": self._active_sessions,
            "active_connections": self._active_connections,
            "list_sessions": self._list_sessions,
            "session_path": self._session_path,
            "reload_schedule": self._reload_schedule,
            "list_scheduled": self._list_scheduled,
            "subscribe": self._subscribe,
            "set_name": self._set_name,
            "forget": self._forget,
            "cancel_scheduled": self._cancel_scheduled,
        }
        self.status = status
        self._rows: dict[str, tuple[int, tuple[bool, bool, float], bytes, str]] = {}

    async def answer(self, conn: Conn, msg: protocol.Query) -> dict[str, Any] | bytes:
        """The reply: a dict, or the whole reply line already encoded (the live list)."""
        handler = self._handlers.get(msg.query)
        if handler is None:
            raise RemoteProtocolError(
                f"unknown query {msg.query[:40]!r}; use one of: " + ", ".join(protocol.QUERY_NAMES)
            )
        data = await handler(conn, msg)
        if isinstance(data, bytes):
            return data
        if isinstance(data, tuple):  # (session id, data)
            sid, data = data
            return protocol.response(request_id=msg.request_id, session_id=sid, data=data)
        return protocol.response(request_id=msg.request_id, data=data)

    async def _ping(self, conn: Conn, msg: protocol.Query) -> str:
        return "pong"

    async def _status(self, conn: Conn, msg: protocol.Query) -> dict[str, Any]:
        return self.status()

    async def _active_sessions(self, conn: Conn, msg: protocol.Query) -> list[dict[str, Any]]:
        """Sessions with a live session-client connection (the seed's active_sessions)."""
        out = []
        for key in sorted(self.clients.by_key):
            info = self.directory.get(key)
            if info is not None:
                out.append(info.to_public())
        return out

    async def _active_connections(self, conn: Conn, msg: protocol.Query) -> list[dict[str, Any]]:
        if self.server is None:
            return []
        now = trio.current_time()
        return [
            {
                "id": c.id,
                "kind": c.role,
                "internal_id": c.label if c.role == "session" else None,
                "idle_s": round(now - c.last_seen, 3),
                "pending": self.clients.pending_count(c.id),
                "pid": c.peer_pid,
            }
            for c in self.server.conns.values()
        ]

    async def _list_sessions(self, conn: Conn, msg: protocol.Query) -> list[dict[str, Any]] | bytes:
        if (msg.data or {}).get("all"):
            return await list_all_sessions(self.directory, self.store)
        return await self.list_live_line(msg)

    async def list_live_line(self, msg: protocol.Query) -> bytes:
        """The reply line to ``list_sessions`` (live sessions), built from rows encoded once
        per change of their session: with 1,000 sessions, a list costs a join, not 1,000
        dict builds and a JSON encode of the lot."""
        queued = await self.store.call(Store.queued_counts)
        stamps = self.directory.stamps
        parts: list[tuple[tuple[bool, bool, float], bytes, str]] = []
        cache: dict[str, tuple[int, tuple[bool, bool, float], bytes, str]] = {}
        for info in self.directory.sessions.values():
            if not info.session_id or info.state == ENDED:
                continue
            stamp = stamps.get(info.key, 0)
            hit = self._rows.get(info.key)
            if hit is None or hit[0] != stamp or hit[3] != info.session_id:
                row = _row(info.to_public(), {}, live=True)
                del row["queued"]
                body = json.dumps(row, separators=(",", ":"), ensure_ascii=False, default=str)
                key = (bool(row.get("connected")), True, last_activity(row))
                hit = (stamp, key, body[:-1].encode(), info.session_id)
            cache[info.key] = hit
            parts.append((hit[1], hit[2], hit[3]))
        self._rows = cache  # sessions that left drop out
        parts.sort(key=lambda p: p[0], reverse=True)
        rows = b",".join(b'%s,"queued":%d}' % (body, queued.get(sid, 0)) for _, body, sid in parts)
        head = protocol.encode_dict(protocol.response(request_id=msg.request_id))[:-2]
        return head + b',"data":[' + rows + b"]}\n"

    async def _set_name(self, conn: Conn, msg: protocol.Query) -> tuple[str, dict[str, Any]]:
        sid = self._live_target(msg, "set_name")
        info = self.directory.by_session_id(sid)
        assert info is not None
        name = (msg.data or {}).get("name")
        if name is not None and not isinstance(name, str):
            raise RemoteProtocolError('"data.name" must be a string ("" clears the name)')
        self.directory.set_name(info, name)
        return sid, {"name": info.name}

    async def _forget(self, conn: Conn, msg: protocol.Query) -> tuple[str, dict[str, Any]]:
        if not msg.session_id:
            raise RemoteProtocolError('query "forget" needs a "session_id"')
        sid = self.directory.resolve(msg.session_id)
        info = self.directory.by_session_id(sid)
        if info is not None and info.state != ENDED:
            raise RoutingError(
                f"session {sid} is live ({info.state}); only ended sessions can be forgotten"
            )
        ids = info.all_ids if info is not None else [sid]
        if info is not None:
            self.directory.forget(info.key)
        for i in ids:
            self.directory.remembered.discard(i)
            self.directory.transcripts.pop(i, None)
        await self.forget_rows(ids)
        return sid, {"forgotten": ids}

    async def _cancel_scheduled(self, conn: Conn, msg: protocol.Query) -> dict[str, Any]:
        """Cancel a scheduled or queued message by id (or a unique prefix of it)."""
        prefix = (msg.data or {}).get("id")
        if not isinstance(prefix, str) or not prefix:
            raise RemoteProtocolError('query "cancel_scheduled" needs "data.id" (a message id)')
        matches = await self.store.call(Store.match_scheduled, prefix)
        if len(matches) != 1:
            raise RoutingError(
                f"no scheduled message matches {prefix!r}; list them with: ccc schedule list"
                if not matches
                else f"id prefix {prefix!r} is ambiguous: it matches {', '.join(sorted(matches))}"
            )
        outcome = await self.scheduler.cancel(matches[0])
        if outcome == "in_flight":
            raise RoutingError(
                f"too late: scheduled message {matches[0]} is being typed into its session "
                "right now; see what became of it with: ccc watch"
            )
        if outcome == "missing":
            raise RoutingError(f"scheduled message {matches[0]} was sent or cancelled meanwhile")
        return {"cancelled": matches[0]}

    def _live_target(self, msg: protocol.Query, what: str) -> str:
        if not msg.session_id:
            raise RemoteProtocolError(f'query "{what}" needs a "session_id" (a name, id or prefix)')
        sid = self.directory.resolve(msg.session_id)
        info = self.directory.by_session_id(sid)
        if info is None or info.state == ENDED:
            raise RoutingError(f"session {sid} is not live; only live sessions can be named")
        return sid

    async def _session_path(self, conn: Conn, msg: protocol.Query) -> tuple[str, str | None]:
        if not msg.session_id:
            raise RemoteProtocolError(
                'query "session_path" needs a "session_id" (a full id or a unique prefix)'
            )
        sid = self.directory.resolve(msg.session_id)
        return sid, await self.session_path(sid)

    async def _reload_schedule(self, conn: Conn, msg: protocol.Query) -> dict[str, Any]:
        return {"scheduled": await self.scheduler.reload()}

    async def _list_scheduled(self, conn: Conn, msg: protocol.Query) -> list[dict[str, Any]]:
        return await self.store.call(Store.scheduled, msg.session_id)

    async def _subscribe(self, conn: Conn, msg: protocol.Query) -> dict[str, Any]:
        flt = msg.session_id
        if flt:
            flt = self.directory.resolve(flt)
        if self.server is not None and (why := self.server.may_become_long_lived(conn)):
            raise RemoteProtocolError(why)
        try:
            self.events.subscribe(conn, flt)
        except TooManySubscribers as exc:
            raise RemoteProtocolError(str(exc)) from None
        if conn.role == "client":  # a session client that also subscribes stays a session
            conn.role = "subscriber"
        return {"subscribed": True, "session_id": flt}

    async def session_path(self, sid: str) -> str | None:
        info = self.directory.by_session_id(sid)
        if info is not None and info.transcript_path and info.session_id == sid:
            return info.transcript_path
        row = await self.store.call(Store.session, sid)
        if row and row.get("transcript_path"):
            return str(row["transcript_path"])
        agg = self.directory.transcripts.get(sid)
        if agg and agg.get("transcript_path"):
            return str(agg["transcript_path"])
        return await self.store.offload(discover_path, self.paths, sid, row)


# Every key a ``list_sessions`` row always has (a stable schema for `--json` and scripts).
ROW_KEYS = (
    "session_id",
    "name",
    "state",
    "kind",
    "connected",
    "live",
    "where",
    "queued",
    "waiting_on",
    "end_reason",
    "model",
    "cwd",
    "git_branch",
    "cost_usd",
    "context_window",
    "last_activity",
    "pid",
)


async def list_all_sessions(
    directory: SessionDirectory, store: StoreWorker
) -> list[dict[str, Any]]:
    """Every session known (``list_sessions`` with ``all``): live ones, and those only in the
    database and the transcript index. Live and recently active first; every row has every
    key of ``ROW_KEYS``. (The default, live-only list is ``Queries.list_live_line``.)"""
    queued = await store.call(Store.queued_counts)
    rows = await store.call(Store.sessions)
    by_id: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.get("alias_of"):
            continue
        rec = {k: v for k, v in row.items() if v is not None}
        rec["connected"] = False
        by_id[row["session_id"]] = rec
    for sid, agg in directory.transcripts.items():
        rec = by_id.setdefault(sid, {"session_id": sid, "connected": False})
        rec["transcript"] = agg
        for field in ("cwd", "transcript_path", "model", "git_branch"):
            if agg.get(field) and not rec.get(field):
                rec[field] = agg[field]
    live_ids: set[str] = set()
    for info in directory.sessions.values():
        if not info.session_id:
            continue
        rec = by_id.setdefault(info.session_id, {"session_id": info.session_id})
        rec.update(info.to_public())
        if info.state != ENDED:
            live_ids.add(info.session_id)
        for alias in info.aliases:
            by_id.pop(alias, None)
    return sort_sessions([_row(rec, queued, live=sid in live_ids) for sid, rec in by_id.items()])


def _row(rec: dict[str, Any], queued: dict[str, int], *, live: bool) -> dict[str, Any]:
    rec["live"] = live
    rec["queued"] = queued.get(rec["session_id"], 0)
    rec.setdefault("kind", rec.get("client_kind") or ("history" if not live else "adopted"))
    rec["where"] = (
        rec.get("tmux_pane")
        or (f"container {rec['container']}" if rec.get("container") else None)
        or ("pty" if rec.get("kind") in ("pty", "inject") else None)
    )
    rec.setdefault("connected", False)
    rec["name"] = rec.get("name") or None
    for key in ROW_KEYS:
        rec.setdefault(key, None)
    return rec
