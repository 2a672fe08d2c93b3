"""Answers to ``query`` messages (SPEC §4 rule 5): the daemon's state, read-only.

``session_path`` follows the seed's discovery order: the database's transcript path, a search
under ``$CCC_PATH_HOME``, the config dir from the cache file or the database, then
``$CLAUDE_CONFIG_DIR`` or ``~/.claude``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from . import protocol
from .cache import read_session_cache
from .paths import Paths
from .protocol import RemoteProtocolError

if TYPE_CHECKING:
    from .hub import Hub
    from .server import Conn


async def answer(hub: Hub, conn: Conn, msg: protocol.Query) -> dict[str, Any]:
    name = msg.query
    rid = msg.request_id
    if name == "ping":
        return protocol.response(request_id=rid, data="pong")
    if name == "status":
        return protocol.response(request_id=rid, data=hub.status())
    if name == "active_sessions":
        return protocol.response(request_id=rid, data=active_sessions(hub))
    if name == "active_connections":
        return protocol.response(request_id=rid, data=active_connections(hub))
    if name == "list_sessions":
        return protocol.response(request_id=rid, data=await list_sessions(hub))
    if name == "session_path":
        if not msg.session_id:
            raise RemoteProtocolError(
                'query "session_path" needs a "session_id" (a full id or a unique prefix)'
            )
        sid = hub.resolve(msg.session_id)
        path = await session_path(hub, sid)
        return protocol.response(request_id=rid, session_id=sid, data=path)
    if name == "reload_schedule":
        hub.scheduled_count = await hub.store.run("count_scheduled")
        hub.wake_scheduler()
        return protocol.response(request_id=rid, data={"scheduled": hub.scheduled_count})
    if name == "list_scheduled":
        return protocol.response(
            request_id=rid, data=await hub.store.run("scheduled", msg.session_id)
        )
    if name == "subscribe":
        flt = msg.session_id
        if flt:
            flt = hub.resolve(flt)
        hub.events.subscribe(conn, flt)
        return protocol.response(request_id=rid, data={"subscribed": True, "session_id": flt})
    raise RemoteProtocolError(
        f"unknown query {name[:40]!r}; use one of: " + ", ".join(protocol.QUERY_NAMES)
    )


def active_sessions(hub: Hub) -> list[dict[str, Any]]:
    """Sessions with a live session-client connection (the seed's active_sessions)."""
    server = hub.server
    out = []
    for iid in sorted(server.clients if server else ()):
        info = hub.registry.sessions.get(iid)
        if info is not None:
            out.append(info.to_public())
    return out


def active_connections(hub: Hub) -> list[dict[str, Any]]:
    server = hub.server
    if server is None:
        return []
    now = trio.current_time()
    return [
        {
            "id": c.id,
            "kind": c.kind,
            "internal_id": c.internal_id,
            "idle_s": round(now - c.last_seen, 3),
            "pending": len(c.pending),
        }
        for c in server.conns.values()
    ]


async def list_sessions(hub: Hub) -> list[dict[str, Any]]:
    """Every session we know: live ones from the registry, the rest from the database and the
    transcript index; live and recently active first."""
    rows = await hub.store.run("sessions")
    by_id: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.get("alias_of"):
            continue
        rec = {k: v for k, v in row.items() if v is not None}
        rec["connected"] = False
        by_id[row["session_id"]] = rec
    for sid, agg in hub.transcripts.items():
        rec = by_id.setdefault(sid, {"session_id": sid, "connected": False})
        rec["transcript"] = agg
        for field in ("cwd", "transcript_path"):
            if agg.get(field) and not rec.get(field):
                rec[field] = agg[field]
        if agg.get("model") and not rec.get("model"):
            rec["model"] = agg["model"]
        if agg.get("git_branch") and not rec.get("git_branch"):
            rec["git_branch"] = agg["git_branch"]
    for info in hub.registry.sessions.values():
        if not info.session_id:
            continue
        rec = by_id.setdefault(info.session_id, {"session_id": info.session_id})
        rec.update(info.to_public())
        for alias in info.aliases:
            by_id.pop(alias, None)
    out = list(by_id.values())
    out.sort(key=_activity_key, reverse=True)
    return out


def _activity_key(rec: dict[str, Any]) -> tuple[int, float]:
    last = rec.get("last_activity") or rec.get("last_seen") or 0
    agg = rec.get("transcript") or {}
    return (
        1 if rec.get("connected") else 0,
        float(last or 0) or float(agg.get("last_ts_epoch") or 0),
    )


async def session_path(hub: Hub, sid: str) -> str | None:
    info = hub.registry.by_session_id(sid)
    if info is not None and info.transcript_path and info.session_id == sid:
        return info.transcript_path
    row = await hub.store.run("session", sid)
    if row and row.get("transcript_path"):
        return str(row["transcript_path"])
    agg = hub.transcripts.get(sid)
    if agg and agg.get("transcript_path"):
        return str(agg["transcript_path"])
    return await hub.store.offload(discover_path, hub.config.paths, sid, row)


def discover_path(paths: Paths, sid: str, row: dict[str, Any] | None) -> str | None:
    """Steps 2–5 of the seed's FindSessionPath, on the filesystem."""
    name = f"{sid}.jsonl"
    path_home = os.environ.get("CCC_PATH_HOME")
    if path_home:
        for root, _dirs, files in os.walk(path_home):
            if name in files:
                return str(Path(root) / name)
    candidates: list[str] = []
    cached = read_session_cache(paths.session_cache(sid))
    if cached and cached.get("claude_config_dir"):
        candidates.append(cached["claude_config_dir"])
    if row and row.get("claude_config_dir"):
        candidates.append(row["claude_config_dir"])
    candidates.append(os.environ.get("CLAUDE_CONFIG_DIR") or str(Path.home() / ".claude"))
    for config_dir in candidates:
        projects = Path(config_dir) / "projects"
        try:
            for project in projects.iterdir():
                p = project / name
                if p.is_file():
                    return str(p)
        except OSError:
            continue
    return None
