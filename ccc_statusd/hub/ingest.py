"""Ingest: what Claude Code's hooks and statusLine tell about a session, folded into it.

A hook names its session by client (``CCC_INTERNAL_ID``) or by Claude process id (a session
started without ``ccc run``); its ``session_id`` is an attribute that ``/clear`` changes
(sessions.py). State changes go through ``SessionDirectory.transition``; the delivery owner
hears every hook (its settle window ends, ``UserPromptSubmit`` confirms a typed prompt).
Everything taken from a payload is bounded: untrusted numbers and strings go through
``values``, and a ``rate_limits`` object bigger than a few KiB is dropped.
"""

from __future__ import annotations

import json
from typing import Any

from .. import protocol
from ..events import EventBus
from ..pathmap import PathMap, map_payload, to_host
from ..protocol import RemoteProtocolError
from ..sessions import (
    BUSY,
    ENDED,
    FAILED,
    WAITING,
    SessionInfo,
    hook_session_key,
    state_after_hook,
)
from ..store import Store
from ..storeworker import StoreWorker
from .delivery import Delivery
from .directory import SessionDirectory
from .values import finite, sqlite_int, text

MAX_RATE_LIMITS_BYTES = 4096  # the statusline's rate_limits object is a few hundred bytes


class Ingest:
    def __init__(
        self,
        directory: SessionDirectory,
        delivery: Delivery,
        events: EventBus,
        store: StoreWorker,
        scheduled_for: Any,
        path_maps: PathMap = (),
    ) -> None:
        self.path_maps = path_maps  # container paths → host paths (--path-map)
        self.directory = directory
        self.delivery = delivery
        self.events = events
        self.store = store
        self.scheduled_for = scheduled_for  # async (session id) → count of its waiting rows
        self.hooks = 0

    async def on_hook(self, msg: protocol.Hook) -> SessionInfo | None:
        payload, origin = self._mapped(msg.data)
        env = msg.env or {}
        event = payload.get("hook_event_name")
        sid = payload.get("session_id")
        if not isinstance(event, str) or not isinstance(sid, str):
            raise RemoteProtocolError(
                'hook data needs the "session_id" and "hook_event_name" strings Claude Code '
                "sends; configure the hook command as: ccc hook"
            )
        if not protocol.is_safe_id(sid):
            raise RemoteProtocolError(f"hook session_id {sid[:40]!r} is not a plain id")
        key = hook_session_key(payload, env, msg.internal_id)
        if key is None:  # pragma: no cover - sid is safe, so a key always exists
            return None
        directory = self.directory
        owner = directory.owner_key(sid)
        if (
            owner is not None
            and owner != key
            and not (msg.internal_id or env.get("CCC_INTERNAL_ID"))
        ):
            # A hook that does not name its client must not take an id away from the session
            # client that holds it (its prompts would then fail as "not connected").
            owner_info = directory.get(owner)
            if owner_info is not None and owner_info.connected:
                key = owner
        self.hooks += 1
        info = directory.get(key)
        if info is None:
            info = directory.ensure(key)
            if not key.startswith("pid-") and not key.startswith("sid-"):
                info.internal_id = key
        if event == "SessionEnd" and sid != info.session_id and sid in info.aliases:
            return info  # the old id of a /clear: the new SessionStart already took over
        if info.session_id != sid:
            directory.associate(info, sid)
        pid = env.get("CLAUDE_PID") or (
            (env.get("PPID_PARENT") or env.get("PPID")) if not info.internal_id else None
        )
        directory.ensure(
            key,
            transcript_path=text(payload.get("transcript_path")),
            cwd=text(payload.get("cwd")) or text(env.get("CLAUDE_PROJECT_DIR")),
            claude_config_dir=self._host_path(text(env.get("CLAUDE_CONFIG_DIR"))),
            tmux_pane=text(env.get("TMUX_PANE"), 64),
            container=origin,
        )
        directory.set_pid(info, sqlite_int(pid))
        directory.add_config_dir(info.claude_config_dir)
        if env.get("TMUX") and env.get("TMUX_PANE"):
            from ..tmux_delivery import socket_from_tmux_env

            info.tmux_socket = socket_from_tmux_env(env["TMUX"])
        if event == "SessionStart" and text(payload.get("model"), 256):
            info.model = payload["model"]
        if event == "Stop":
            lam = payload.get("last_assistant_message")
            if isinstance(lam, str):
                info.last_assistant_message = lam
        info.last_activity_wall = self.directory.wall()
        self.delivery.on_hook(info, event, payload)
        state = state_after_hook(event, payload)
        cause = event
        if event == "SessionEnd" and payload.get("reason") == "clear":
            # The same process goes on under a new id (SessionStart{source: clear} follows at
            # once); until then nothing is typed into it.
            state, cause = BUSY, "clear"
        if state is not None:
            error = None
            if state == FAILED:
                error = (
                    text(payload.get("error"), 500)
                    or text(payload.get("error_type"), 200)
                    or "the turn failed"
                )
            if state == ENDED:
                directory.end(info, "exited")
            else:
                directory.transition(info, state, cause=cause, error=error)
        self.events.publish("hook", info, hook=event, payload=payload)
        directory.touch(info)
        return info

    async def on_statusline(self, msg: protocol.Statusline) -> dict[str, Any]:
        payload, _ = self._mapped(msg.data)
        env = msg.env or {}
        sid = payload.get("session_id")
        if not isinstance(sid, str) or not protocol.is_safe_id(sid):
            raise RemoteProtocolError(
                'statusline data needs the "session_id" Claude Code sends; configure the '
                "statusLine command as: ccc statusline"
            )
        directory = self.directory
        info = directory.by_session_id(sid)
        if info is None:
            key = hook_session_key(payload, env, msg.internal_id) or f"sid-{sid}"
            info = directory.ensure(key)
            directory.associate(info, sid)
        model = payload.get("model")
        if isinstance(model, dict):
            info.model = (
                text(model.get("display_name"), 256) or text(model.get("id"), 256) or info.model
            )
        cost = payload.get("cost")
        if isinstance(cost, dict) and finite(cost.get("total_cost_usd")) is not None:
            info.cost_usd = finite(cost["total_cost_usd"])
        ws = payload.get("workspace")
        if isinstance(ws, dict) and text(ws.get("current_dir")):
            info.cwd = ws["current_dir"]
        limits = payload.get("rate_limits")
        if isinstance(limits, dict) and _small(limits, MAX_RATE_LIMITS_BYTES):
            info.rate_limits = limits
        if text(payload.get("transcript_path")):
            info.transcript_path = payload["transcript_path"]
        ctx = context_figures(payload.get("context_window"))
        if ctx is not None and ctx != info.context:
            # Claude Code runs the statusLine after every turn and on UI events: only a change
            # is stored and published (no "context 3% used" three times in `ccc watch`).
            info.context = ctx
            await self.store.call(Store.upsert_context_window, sid, ctx, int(directory.wall()))
            self.events.publish("context", info, used_percentage=ctx["used_percentage"])
        directory.touch(info)
        others = [s for s in directory.sessions.values() if s is not info]
        return {
            "short_id": sid[:8],
            "state": info.state,
            "scheduled": await self.scheduled_for(sid),
            "others_busy": sum(1 for s in others if s.state == BUSY),
            "others_waiting": sum(1 for s in others if s.state == WAITING),
            "branch": info.git_branch,
        }

    def _mapped(self, payload: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The payload with container paths at their host locations (--path-map)."""
        if not self.path_maps:
            return payload, None
        mapped, origin = map_payload(payload, self.path_maps)
        return dict(mapped), origin

    def _host_path(self, path: str | None) -> str | None:
        return path if path is None or not self.path_maps else to_host(path, self.path_maps)


def _small(value: Any, limit: int) -> bool:
    try:
        return len(json.dumps(value)) <= limit
    except (TypeError, ValueError):
        return False


def context_figures(ctx: Any) -> dict[str, Any] | None:
    """The statusline's context_window, as the seed's table columns (None before a reply)."""
    if not isinstance(ctx, dict):
        return None
    used = finite(ctx.get("used_percentage"))
    if used is None:
        return None
    raw_usage = ctx.get("current_usage")
    usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
    remaining = finite(ctx.get("remaining_percentage"))
    return {
        "context_window_size": sqlite_int(ctx.get("context_window_size")) or 0,
        "used_percentage": used,
        "remaining_percentage": remaining if remaining is not None else 100.0 - used,
        "total_input_tokens": sqlite_int(ctx.get("total_input_tokens")) or 0,
        "total_output_tokens": sqlite_int(ctx.get("total_output_tokens")) or 0,
        "cache_read_input_tokens": sqlite_int(usage.get("cache_read_input_tokens")),
        "cache_creation_input_tokens": sqlite_int(usage.get("cache_creation_input_tokens")),
        "current_input_tokens": sqlite_int(usage.get("input_tokens")),
        "current_output_tokens": sqlite_int(usage.get("output_tokens")),
    }
