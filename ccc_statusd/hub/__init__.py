"""The hub: the daemon's state, split by owner, behind one dispatch table.

Every piece of state has one owner (one writer):

- ``directory.SessionDirectory``: who the sessions are (ids, aliases, remembered ids, config
  dirs, transcript aggregates) and ``transition``, the one path of every state change;
- ``clients.SessionClients``: session-client connections and their pending requests;
- ``delivery.Delivery``: routing, typing, the settle windows and delivery memory;
- ``ingest.Ingest``: hooks and statusline payloads folded into sessions;
- ``persistence.Persistence``: the only writer of session rows and cache files;
- ``ask.Asks``: asks in flight (and their graph, for cycles);
- ``queries.Queries``: read-only answers;
- the ``Scheduler`` (built before the hub and handed in) owns the schedule's rows, count and
  wake-up.

``Hub.handle_line`` takes one raw line from a connection and returns the one reply line (or
None for a session client's ``response``, which answers a request of ours and must not be
answered back). It satisfies ``server.Handler``; the transport knows nothing else of it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import trio

from .. import __version__, protocol
from ..config import DaemonConfig
from ..events import EventBus
from ..oserrors import is_disk_full
from ..protocol import RemoteProtocolError
from ..routing import RoutingError
from ..scheduler import Scheduler
from ..server import Conn, Server
from ..sessions import ENDED, SessionRegistry
from ..store import Store
from ..storeworker import StoreWorker
from .ask import Asks
from .clients import SessionClients
from .delivery import Delivery
from .directory import SessionDirectory
from .ingest import Ingest
from .persistence import Persistence
from .queries import Queries

log = logging.getLogger(__name__)


class Hub:
    def __init__(
        self,
        config: DaemonConfig,
        store: StoreWorker,
        scheduler: Scheduler,
        server: Server | None = None,
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.scheduler = scheduler
        self.server = server
        self.wall = wall
        self.started_at = trio.current_time()
        self.started_wall = wall()
        self.errors = 0
        self.loop_stats: Any = None  # instrument.LoopStats, only under `make bench`
        self.events = EventBus(wall, max_subscribers=config.max_subscribers)
        self.directory = SessionDirectory(
            self.events,
            wall=wall,
            wake=scheduler.wake,
            max_client_config_dirs=config.max_client_config_dirs,
        )
        self.clients = SessionClients(self.directory, self.events, server, config.path_maps)
        self.delivery = Delivery(
            config, self.directory, self.clients, scheduler, self.events, wall=wall
        )
        self.ingest = Ingest(
            self.directory,
            self.delivery,
            self.events,
            store,
            self._scheduled_for,
            config.path_maps,
        )
        self.persistence = Persistence(
            self.directory, store, config.paths, wall=wall, drop_rows=scheduler.drop_sessions
        )
        self.asks = Asks(self.directory, self.delivery, self.events, store, scheduler.cancel)
        self.queries = Queries(
            self.directory,
            self.clients,
            scheduler,
            self.events,
            store,
            server,
            config.paths,
            self.status,
            self.persistence.forget_ended,
        )

    # --- start-up -----------------------------------------------------------------------------

    async def load(self) -> None:
        """Remember the ids of sessions in the database (they resolve by prefix), and count
        the schedule."""
        rows = await self.store.call(Store.sessions)
        for row in rows:
            self.directory.remember(row["session_id"])
            self.directory.add_config_dir(row.get("claude_config_dir") or None)
        restored = self.directory.restore(rows)
        if restored:
            log.info("restored %d live sessions from the database", restored)
        await self.scheduler.load()

    # --- the Handler protocol (server.py) ------------------------------------------------------

    async def handle_line(self, conn: Conn, line: bytes) -> bytes | None:
        obj: dict[str, Any] | None = None
        try:
            obj = protocol.decode_object(line)
            msg = protocol.validate(obj)
            reply = await self.dispatch(conn, msg)
        except (RemoteProtocolError, RoutingError) as exc:
            self.errors += 1
            rid = protocol.request_id_of(obj) if obj is not None else None
            reply = protocol.response(request_id=rid, error=str(exc))
        except (sqlite3.Error, OSError) as exc:
            if not is_disk_full(exc):
                raise
            self.errors += 1
            rid = protocol.request_id_of(obj) if obj is not None else None
            reply = protocol.response(
                request_id=rid,
                error=f"the daemon cannot write to {self.config.paths.cache_dir}: the disk is "
                "full; nothing stored was lost: free some space (df -h), then send again",
            )
        if reply is None or isinstance(reply, bytes):
            return reply  # bytes: a reply line the owner encoded itself (the live list)
        return protocol.encode_dict(reply)

    def on_disconnect(self, conn: Conn) -> None:
        self.events.unsubscribe(conn)
        self.clients.disconnect(conn)

    async def dispatch(self, conn: Conn, msg: Any) -> dict[str, Any] | bytes | None:
        kind = msg.type
        if kind == "response":
            self.clients.response(conn, msg)
            return None
        if kind == "query":
            return await self.queries.answer(conn, msg)
        if kind in protocol.ROUTED_TYPES:
            return await self.delivery.route(msg, sender=_sender(conn))
        if kind == "ask":
            return await self.asks.ask(msg, conn)
        if kind == "hook":
            await self.ingest.on_hook(msg)
            return protocol.response(request_id=msg.request_id)
        if kind == "statusline":
            return protocol.response(
                request_id=msg.request_id, data=await self.ingest.on_statusline(msg)
            )
        if kind == "register":
            return self.clients.register(conn, msg)
        if kind == "associate":
            return self.clients.associate(conn, msg)
        if kind == "heartbeat":
            return self.clients.heartbeat(conn, msg)
        raise RemoteProtocolError(f"message type {kind!r} is not accepted by the daemon")

    # --- glue between owners -------------------------------------------------------------------

    async def _scheduled_for(self, session_id: str) -> int:
        return await self.store.call(Store.count_scheduled, session_id)

    # --- for tests and the daemon --------------------------------------------------------------

    @property
    def registry(self) -> SessionRegistry:
        return self.directory.registry

    async def flush_metadata(self) -> None:
        await self.persistence.flush()

    def status(self) -> dict[str, Any]:
        conns = self.server.stats() if self.server is not None else {}
        live = [i for i in self.directory.sessions.values() if i.session_id and i.state != ENDED]
        out = {
            "pid": os.getpid(),
            "version": __version__,
            "uptime_s": round(trio.current_time() - self.started_at, 3),
            "started_at": self.started_wall,
            "connections": conns.get("connections", 0),
            "session_clients": len(self.clients.by_key),
            "subscribers": self.events.subscriber_count,
            "sessions": len(live),
            "sessions_by_state": _count_states(live),
            "scheduled": self.scheduler.count,
            "allow_eval": self.config.allow_eval,
            "counters": {
                "routed": self.delivery.routed,
                "queued": self.delivery.queued,
                "errors": self.errors,
                "hooks": self.ingest.hooks,
                "refused_connections": conns.get("refused", 0),
            },
            "paths": {
                "cache_dir": str(self.config.paths.cache_dir),
                "socket": str(self.config.paths.socket),
                "pid": str(self.config.paths.pid),
                "log": str(self.config.paths.log),
                "db": str(self.config.paths.db),
            },
        }
        if self.loop_stats is not None:
            out["loop"] = self.loop_stats.snapshot()
        return out


def _sender(conn: Conn) -> str | None:
    return f"pid {conn.peer_pid}" if conn.peer_pid else None


def _count_states(infos: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for info in infos:
        out[info.state] = out.get(info.state, 0) + 1
    return out


__all__ = ["Hub"]
