"""The session directory: who the sessions are, and the one path every state change takes.

Owns the live registry (``SessionRegistry``: keys, ids, aliases), the ids remembered from the
database and the transcript index (routable by prefix even when not live), the config dirs
clients named, the transcript aggregates, and the set of sessions changed since the last
flush. ``transition`` is the only way a session's state changes: it sets the state, publishes
the ``state`` event (an ``ask`` waiting on the session hears it), wakes the scheduler (a
session that went idle may take its queued messages) and marks the session for persistence.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import trio

from ..events import EventBus
from ..liveness import is_alive, pid_start
from ..protocol import is_safe_id
from ..routing import RoutingError, resolve_id
from ..sessions import ENDED, IDLE, UNKNOWN, SessionInfo, SessionRegistry

log = logging.getLogger(__name__)


class SessionDirectory:
    def __init__(
        self,
        events: EventBus,
        *,
        wall: Callable[[], float],
        wake: Callable[[Iterable[str]], None],
        max_client_config_dirs: int = 16,
    ) -> None:
        self.events = events
        self.wall = wall
        self.wake = wake
        self.registry = SessionRegistry()
        self.remembered: set[str] = set()  # ids in the database or transcript index
        self.transcripts: dict[str, dict[str, Any]] = {}  # session id → transcript aggregate
        self.config_dirs: set[str] = set()  # named by clients (bounded)
        self.max_client_config_dirs = max_client_config_dirs
        self._dirty: set[str] = set()
        self.changed = trio.Event()
        # key → stamp of its last change (touch): what lets list_sessions reuse a row it
        # already built and encoded while the session did not change.
        self.stamps: dict[str, int] = {}
        self._stamp = 0
        self._names: dict[str, str] = {}  # name → key (a name is checked against its session)

    # --- lookups ------------------------------------------------------------------------------

    @property
    def sessions(self) -> dict[str, SessionInfo]:
        return self.registry.sessions

    def get(self, key: str) -> SessionInfo | None:
        return self.registry.sessions.get(key)

    def by_session_id(self, session_id: str) -> SessionInfo | None:
        return self.registry.by_session_id(session_id)

    def owner_key(self, session_id: str) -> str | None:
        return self.registry.session_to_internal.get(session_id)

    def known_ids(self) -> set[str]:
        return self.registry.known_ids() | self.remembered

    def resolve(self, target: str) -> str:
        """A live session's name, a full id (the common case: no set is built), or a unique
        prefix → full session id."""
        if target in self.registry.session_to_internal or target in self.remembered:
            return target  # an exact id always wins over a name
        named = self.named(target)
        if named is not None and named.session_id:
            return named.session_id
        return resolve_id(target, self.known_ids())

    def named(self, name: str) -> SessionInfo | None:
        """The live session called ``name`` (names are unique among live sessions). An index,
        not a scan: every routed message asks this first."""
        info = self.get(self._names.get(name, ""))
        if info is not None and info.name == name and info.state != ENDED:
            return info
        return None

    def set_name(self, info: SessionInfo, name: str | None) -> None:
        """Name a session (None or "" clears); RoutingError if a live session has the name."""
        name = name or None
        if name is not None:
            if not is_safe_id(name) or len(name) > 40:
                raise RoutingError(
                    f"{name[:40]!r} is not a usable name; use up to 40 letters, digits, '.', "
                    "'_' or '-', starting with a letter or digit (e.g. api)"
                )
            other = self.named(name)
            if other is not None and other is not info:
                raise RoutingError(
                    f"the name {name!r} is taken by live session {other.session_id}; pick "
                    f"another, or rename that one first: ccc name {other.session_id} OTHER"
                )
        if info.name != name:
            if info.name is not None and self._names.get(info.name) == info.key:
                del self._names[info.name]
            if name is not None:
                self._names[name] = info.key
            info.name = name
            self.events.publish("renamed", info, name=name or "")
            self.touch(info)

    # --- identity -----------------------------------------------------------------------------

    def ensure(self, key: str, **attrs: Any) -> SessionInfo:
        """The session under ``key`` (created if new, first seen now), with ``attrs`` set."""
        info = self.registry.ensure(key, **attrs)
        if info.first_seen_wall is None:
            info.first_seen_wall = self.wall()
        return info

    def associate(self, info: SessionInfo, session_id: str) -> None:
        """Make ``session_id`` the session's current id (the previous one becomes an alias)."""
        _, previous = self.registry.associate(info.key, session_id)
        self.remember(session_id)
        if previous is not None or info.session_id == session_id:
            self.events.publish("associated", info, previous=previous)
        self.touch(info)

    def remember(self, session_id: str) -> bool:
        """Keep an id routable by prefix; only plain ids ever become sessions (a transcript
        copied as ``<uuid> (copy).jsonl`` must not)."""
        if not is_safe_id(session_id):
            return False
        self.remembered.add(session_id)
        return True

    def add_config_dir(self, path: str | None) -> None:
        """A config dir a client named: watched, up to a bound (each costs a scan)."""
        if not path or path in self.config_dirs:
            return
        if len(self.config_dirs) >= self.max_client_config_dirs:
            log.warning(
                "not watching config dir %r: already watching %d named by clients "
                "(add it with: ccc-statusd --config-dir DIR)",
                path[:200],
                self.max_client_config_dirs,
            )
            return
        self.config_dirs.add(path)

    def forget(self, key: str) -> SessionInfo | None:
        self.stamps.pop(key, None)
        info = self.registry.forget(key)
        if info is not None and info.name and self._names.get(info.name) == key:
            del self._names[info.name]
        return info

    def set_pid(self, info: SessionInfo, pid: int | None) -> None:
        """The session's Claude process (and its start time, which tells a reused pid apart)."""
        if pid is None or pid == info.pid:
            return
        info.pid = pid
        info.pid_start = pid_start(pid)

    def restore(self, rows: list[dict[str, Any]]) -> int:
        """After a restart: sessions that were live when the daemon stopped and whose process
        still runs come back with their state, name, pane and aliases (a ``/clear`` chain
        keeps routing). Returns how many came back."""
        aliases: dict[str, list[str]] = {}
        for row in rows:
            if row.get("alias_of"):
                aliases.setdefault(row["alias_of"], []).append(row["session_id"])
        restored = 0
        for row in rows:
            sid = row["session_id"]
            pid = row.get("pid")
            if row.get("alias_of") or row.get("state") in (ENDED, None, UNKNOWN):
                continue
            if not isinstance(pid, int) or not is_alive(pid, row.get("pid_start")):
                continue
            key = row.get("internal_id") or f"pid-{pid}"
            if not is_safe_id(key) or self.by_session_id(sid) is not None:
                continue
            info = self.ensure(
                key,
                internal_id=row.get("internal_id"),
                kind=row.get("client_kind") or "adopted",
                cwd=row.get("cwd"),
                model=row.get("model"),
                git_branch=row.get("git_branch"),
                tmux_pane=row.get("tmux_pane"),
                tmux_socket=row.get("tmux_socket"),
                claude_config_dir=row.get("claude_config_dir") or None,
                transcript_path=row.get("transcript_path"),
                cost_usd=row.get("cost_usd"),
                name=row.get("name") or None,
                pid=pid,
                pid_start=row.get("pid_start"),
            )
            info.state = row["state"]
            info.state_changed_wall = row.get("state_changed_at")
            if info.name:
                self._names.setdefault(info.name, key)
            info.context = row.get("context_window")
            for alias in aliases.get(sid, []):
                self.registry.associate(key, alias)
            self.registry.associate(key, sid)
            restored += 1
        return restored

    def end(self, info: SessionInfo, reason: str, *, cause: str | None = None) -> None:
        """The session is over (``exited``, ``crashed``, ``pane_gone``, ``silent``); ``cause``
        is what told us (the hook name), by default the reason itself."""
        if info.state != ENDED:
            info.end_reason = reason
        self.transition(info, ENDED, cause=cause or reason)

    def set_transcript(self, session_id: str, view: dict[str, Any] | None) -> None:
        if view is None:
            self.transcripts.pop(session_id, None)
        elif self.remember(session_id):
            self.transcripts[session_id] = view

    # --- state ----------------------------------------------------------------------------------

    def transition(
        self, info: SessionInfo, state: str, *, cause: str, error: str | None = None
    ) -> bool:
        """The one path of every state change (hooks, watchers, pane death, liveness)."""
        changed = self.registry.set_state(info, state, self.wall(), error)
        if changed:
            self.events.publish("state", info, state=state, error=info.state_error, hook=cause)
        if state == IDLE or changed:
            self.wake(info.all_ids)
        self.touch(info)
        return changed

    # --- persistence hand-off -------------------------------------------------------------------

    def touch(self, info: SessionInfo) -> None:
        """Mark a session for the next metadata flush (coalesced: one transaction per flush)."""
        self._dirty.add(info.key)
        self.changed.set()
        if info.key in self.registry.sessions:  # not for a session already forgotten
            self._stamp += 1
            self.stamps[info.key] = self._stamp

    def is_dirty(self, key: str) -> bool:
        return key in self._dirty

    def take_dirty(self) -> set[str]:
        keys, self._dirty = self._dirty, set()
        self.changed = trio.Event()
        return keys

    def put_back_dirty(self, keys: set[str]) -> None:
        """A flush that did not happen: its sessions wait for the next one."""
        self._dirty |= keys
        self.changed.set()
