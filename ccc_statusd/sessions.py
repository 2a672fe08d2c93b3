"""Live sessions, pure: who each session is, its ids and aliases, and its state from hooks.

Theory of operation. A live Claude Code session is keyed by its *client*, not by its
``session_id``: ``/clear`` gives the same process a new id (SessionEnd{reason: clear} for the
old id, then SessionStart{source: clear} for the new one). The key is the session client's
``internal_id`` (``ccc run``), or ``pid-<claude pid>`` for sessions adopted from their hooks.
``session_to_internal`` maps every id a session ever had (the current one and its aliases) to
that key, so old ids keep routing. State comes from hook events (SPEC §7):

    SessionStart / Stop             → idle
    UserPromptSubmit / Pre/PostTool → busy
    PermissionRequest, Notification(permission_prompt | elicitation_dialog) → waiting
    StopFailure                     → failed (with its error)
    SessionEnd                      → ended (reason clear: replaced by the next SessionStart)

No I/O and no trio here: the server feeds events in and reads decisions out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .protocol import is_safe_id

IDLE, BUSY, WAITING, FAILED, ENDED, UNKNOWN = (
    "idle",
    "busy",
    "waiting",
    "failed",
    "ended",
    "unknown",
)

_HOOK_STATE = {
    "SessionStart": IDLE,
    "Stop": IDLE,
    "UserPromptSubmit": BUSY,
    "PreToolUse": BUSY,
    "PostToolUse": BUSY,
    "PreCompact": BUSY,
    "PermissionRequest": WAITING,
    "StopFailure": FAILED,
    "SessionEnd": ENDED,
}
_WAITING_NOTIFICATIONS = frozenset({"permission_prompt", "elicitation_dialog"})


def state_after_hook(event: str, payload: dict[str, Any]) -> str | None:
    """The state a hook event puts a session in, or None when the event says nothing."""
    if event == "Notification":
        return WAITING if payload.get("notification_type") in _WAITING_NOTIFICATIONS else None
    return _HOOK_STATE.get(event)


@dataclass(slots=True)
class DeliveryRecord:
    """One text typed into a session, kept to confirm it against ``UserPromptSubmit``."""

    text: str
    at_wall: float
    submitted: bool = False


@dataclass(slots=True)  # slots: thousands of idle sessions must stay cheap
class SessionInfo:
    """One live (or remembered) session, keyed by ``key``.

    Clocks are named in the field: ``*_wall`` is wall-clock seconds (stored, shown to users),
    ``*_trio`` is Trio's clock (timeouts and windows, never stored).
    """

    key: str
    session_id: str | None = None
    internal_id: str | None = None
    name: str | None = None  # unique among live sessions (ccc run --name, ccc name)
    aliases: list[str] = field(default_factory=list)
    kind: str = "adopted"  # pty | inject | adopted | scripted
    state: str = UNKNOWN
    state_changed_wall: float | None = None
    state_error: str | None = None
    connected: bool = False
    client_left: bool = False  # its session client disconnected (it is then retired)
    pid: int | None = None
    pid_start: int | None = None  # the process's start time (ticks): a reused pid is not it
    end_reason: str | None = None  # exited | crashed | pane_gone, once ended
    cwd: str | None = None
    tmux_pane: str | None = None
    tmux_socket: str | None = None  # the pane's tmux server, when not the default one
    container: str | None = None  # the container dir its paths came from (--path-map)
    claude_config_dir: str | None = None
    transcript_path: str | None = None
    model: str | None = None
    git_branch: str | None = None
    cost_usd: float | None = None
    context: dict[str, Any] | None = None
    rate_limits: dict[str, Any] | None = None
    last_assistant_message: str | None = None
    capabilities: list[str] = field(default_factory=list)
    first_seen_wall: float | None = None
    last_activity_wall: float | None = None
    last_heartbeat_trio: float | None = None
    # Owned by delivery: after typing, later messages wait until this (or the next hook).
    settle_until_trio: float | None = None
    deliveries: list[DeliveryRecord] = field(default_factory=list)
    waiting_on: str | None = None  # why its outbox waits, when its client said "not now"

    @property
    def all_ids(self) -> list[str]:
        ids = list(self.aliases)
        if self.session_id:
            ids.append(self.session_id)
        return ids

    def to_public(self) -> dict[str, Any]:
        """The view shown to clients (``list_sessions``, cache files)."""
        out = {
            "session_id": self.session_id,
            "name": self.name,
            "internal_id": self.internal_id,
            "aliases": list(self.aliases),
            "kind": self.kind,
            "connected": self.connected,
            "state": self.state,
            "state_changed_at": self.state_changed_wall,
            "state_error": self.state_error,
            "end_reason": self.end_reason,
            "waiting_on": self.waiting_on,
            "pid": self.pid,
            "cwd": self.cwd,
            "tmux_pane": self.tmux_pane,
            "tmux_socket": self.tmux_socket,
            "container": self.container,
            "claude_config_dir": self.claude_config_dir,
            "transcript_path": self.transcript_path,
            "model": self.model,
            "git_branch": self.git_branch,
            "cost_usd": self.cost_usd,
            "context_window": self.context,
            "rate_limits": self.rate_limits,
            "first_seen": self.first_seen_wall,
            "last_activity": self.last_activity_wall,
        }
        if self.deliveries:
            # What was last typed into the session and whether Claude Code took it
            # (UserPromptSubmit with the same text): a prompt never "submitted" was swallowed.
            last = self.deliveries[-1]
            text = last.text.strip()
            out["last_delivery"] = {
                "text": text.splitlines()[0][:80] if text else "",
                "at": last.at_wall,
                "submitted": last.submitted,
            }
        return {k: v for k, v in out.items() if v is not None}


class SessionRegistry:
    """The seed's two maps plus what we know of each session.

    ``session_to_internal``: every session id (current and alias) → session key.
    ``sessions``: key → SessionInfo. The server keeps the third map, key → connection.
    """

    def __init__(self) -> None:
        self.session_to_internal: dict[str, str] = {}
        self.sessions: dict[str, SessionInfo] = {}

    # --- lookups ----------------------------------------------------------------------------

    def by_session_id(self, session_id: str) -> SessionInfo | None:
        key = self.session_to_internal.get(session_id)
        return self.sessions.get(key) if key else None

    def known_ids(self) -> set[str]:
        return set(self.session_to_internal)

    # --- changes ----------------------------------------------------------------------------

    def ensure(self, key: str, **attrs: Any) -> SessionInfo:
        info = self.sessions.get(key)
        if info is None:
            info = SessionInfo(key=key)
            self.sessions[key] = info
        for name, value in attrs.items():
            if value is not None:
                setattr(info, name, value)
        return info

    def associate(self, key: str, session_id: str) -> tuple[SessionInfo, str | None]:
        """Make ``session_id`` the current id of ``key``; the previous id becomes an alias.

        If the id belonged to another key before (a client that reconnected under a new
        internal id, or an adopted session now attached), it moves here: routing follows the
        newest claim. Returns the session and the id it replaced (or None).
        """
        info = self.ensure(key)
        previous = info.session_id
        old_key = self.session_to_internal.get(session_id)
        if old_key is not None and old_key != key:
            self._detach_id(old_key, session_id)
        self.session_to_internal[session_id] = key
        if previous == session_id:
            return info, None
        if previous is not None and previous not in info.aliases:
            info.aliases.append(previous)
        if session_id in info.aliases:
            info.aliases.remove(session_id)
        info.session_id = session_id
        return info, previous

    def _detach_id(self, key: str, session_id: str) -> None:
        other = self.sessions.get(key)
        if other is None:
            return
        if other.session_id == session_id:
            other.session_id = other.aliases.pop() if other.aliases else None
        elif session_id in other.aliases:
            other.aliases.remove(session_id)
        if other.session_id is None and not other.connected:
            del self.sessions[key]

    def forget(self, key: str) -> SessionInfo | None:
        """Drop a session and every id that mapped to it (no orphan ids are left behind)."""
        info = self.sessions.pop(key, None)
        if info is not None:
            for sid in info.all_ids:
                if self.session_to_internal.get(sid) == key:
                    del self.session_to_internal[sid]
        return info

    def set_state(
        self, info: SessionInfo, state: str, now: float, error: str | None = None
    ) -> bool:
        """Set the state; True when it changed (callers emit an event and persist then)."""
        changed = info.state != state or (state == FAILED and info.state_error != error)
        info.state = state
        info.state_error = error if state == FAILED else None
        if changed:
            info.state_changed_wall = now
        return changed

    def check_consistent(self) -> None:
        """Assert the maps agree (used by the tests' invariants)."""
        for sid, key in self.session_to_internal.items():
            assert key in self.sessions, f"id {sid} maps to missing session {key}"
            assert sid in self.sessions[key].all_ids, f"id {sid} not among {key}'s ids"
        for key, info in self.sessions.items():
            for sid in info.all_ids:
                assert self.session_to_internal.get(sid) == key, f"{key}'s id {sid} not mapped"


def hook_session_key(
    payload: dict[str, Any], env: dict[str, str], internal_id: str | None
) -> str | None:
    """Which live session a hook belongs to: its client id, else its Claude process id."""
    iid = internal_id or env.get("CCC_INTERNAL_ID")
    if iid and is_safe_id(iid):
        return iid
    # PPID_PARENT: `ccc hook` sends the grandparent when the shell Claude ran did not exec it.
    for var in ("CLAUDE_PID", "PPID_PARENT", "PPID"):
        pid = env.get(var, "")
        if pid.isdigit() and int(pid) > 1:
            return f"pid-{pid}"
    sid = payload.get("session_id")
    return f"sid-{sid}" if isinstance(sid, str) and is_safe_id(sid) else None
