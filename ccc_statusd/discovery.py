"""The watchers' slot in the root nursery: transcripts, git branches, tmux panes, config dirs.

Each watcher lives in ``watchers/`` and knows nothing of the hub; this module feeds them what
the hub knows (config dirs, session cwds and panes) and folds what they report back into the
hub's sessions, the per-session cache files and the event stream.
"""

from __future__ import annotations

import logging
import os
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import trio

from .cache import write_session_cache
from .dialogs import iso_epoch, state_after_turn_mark
from .watchers.git import run_git_watcher
from .watchers.tmux import TmuxPane, run_tmux_watcher
from .watchers.transcript_parse import TranscriptAggregate
from .watchers.transcripts import TranscriptIndex, run_transcript_watcher

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger(__name__)

TRANSCRIPT_RESCAN_S = 5.0  # new config/project dirs show up within this; appends at once
GIT_POLL_S = 2.0  # a stat of each session's .git/HEAD: cheap
TMUX_POLL_S = 5.0  # one `tmux list-panes` per poll, only while some session has a pane


def known_config_dirs(hub: Hub) -> set[Path]:
    """~/.claude, $CLAUDE_CONFIG_DIR, every config dir seen from sessions, and --config-dir."""
    dirs = {Path(d) for d in hub.config_dirs if d}
    env_dir = os.environ.get("CLAUDE_CONFIG_DIR")
    if env_dir:
        dirs.add(Path(env_dir))
    home = os.environ.get("HOME")
    if home:
        dirs.add(Path(home) / ".claude")
    dirs.update(hub.config.extra_config_dirs)
    for info in hub.registry.sessions.values():
        if info.claude_config_dir:
            dirs.add(Path(info.claude_config_dir))
    return dirs


def transcript_view(agg: TranscriptAggregate) -> dict[str, Any]:
    """What the hub keeps of an aggregate (the bulky per-message usage map is left out)."""
    d = agg.to_dict()
    d.pop("recent_usage", None)
    d.pop("skipping_long_line", None)
    d["transcript_path"] = d.pop("path", None)
    d["claude_config_dir"] = d.pop("config_dir", None)
    d["last_ts_epoch"] = iso_epoch(d.get("last_ts"))
    return d


def _views(
    aggs: list[TranscriptAggregate],
) -> list[tuple[TranscriptAggregate, dict[str, Any] | None]]:
    return [(a, None if a.removed else transcript_view(a)) for a in aggs if a.session_id]


async def on_transcripts(hub: Hub, changed: list[TranscriptAggregate]) -> None:
    offline: list[tuple[str, dict[str, Any]]] = []
    # Building the views is per-aggregate work: off the event loop (it stalled it at 1,000).
    for agg, view in await hub.store.offload(_views, changed):
        sid = agg.session_id
        if view is None:
            hub.transcripts.pop(sid, None)
            continue
        hub.transcripts[sid] = view
        hub.remembered_ids.add(sid)
        info = hub.registry.by_session_id(sid)
        if info is not None:
            # A rejected permission dialog (or Esc) ends the turn with no Stop hook: the
            # transcript's "[Request interrupted by user…]" line is the only sign (dialogs.py).
            idle = state_after_turn_mark(info.state, info.state_changed_at, agg.turn_mark)
            if idle is not None and hub.registry.set_state(info, idle, hub.wall()):
                hub.events.publish("state", info, state=idle, error=None, hook="transcript")
                hub.wake_scheduler(info.all_ids)
            hub.touch(info)
        else:
            offline.append(
                (
                    sid,
                    {
                        "session_id": sid,
                        **{
                            k: view.get(k)
                            for k in (
                                "cwd",
                                "git_branch",
                                "model",
                                "transcript_path",
                                "claude_config_dir",
                            )
                        },
                        "transcript": view,
                        "connected": False,
                    },
                )
            )
    if offline:
        await hub.store.offload(_write_offline_caches, hub, offline)


def _write_offline_caches(hub: Hub, records: list[tuple[str, dict[str, Any]]]) -> None:
    for sid, record in records:
        try:
            write_session_cache(hub.config.paths, sid, record)
        except (OSError, ValueError) as exc:
            log.warning("could not write the cache file of session %s: %s", sid, exc)


def session_cwds(hub: Hub) -> dict[str, Path]:
    return {
        info.session_id: Path(info.cwd)
        for info in hub.registry.sessions.values()
        if info.session_id and info.cwd
    }


def on_branch(hub: Hub, session_id: str, branch: str | None) -> None:
    info = hub.registry.by_session_id(session_id)
    if info is not None and info.git_branch != branch:
        info.git_branch = branch
        hub.events.publish("branch", info, branch=branch)
        hub.touch(info)


def session_panes(hub: Hub) -> dict[str, TmuxPane]:
    """Pane ids are unique per tmux server only: each carries its server's socket when known."""
    return {
        info.session_id: TmuxPane(info.tmux_pane, info.data.get("tmux_socket"))
        for info in hub.registry.sessions.values()
        if info.session_id and info.tmux_pane
    }


def on_pane(hub: Hub, session_id: str, alive: bool) -> None:
    info = hub.registry.by_session_id(session_id)
    if info is None or alive:
        return
    hub.events.publish("pane_gone", info, pane=info.tmux_pane)
    info.tmux_pane = None
    if not info.connected and info.state != "ended":
        # An adopted session whose pane is gone cannot be reached any more.
        hub.registry.set_state(info, "ended", hub.wall())
    hub.touch(info)


async def run_watchers(
    hub: Hub, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> NoReturn:
    index = await hub.store.call(TranscriptIndex, hub.store.store.db)
    # What earlier runs indexed: a restart lists the whole history without re-reading it.
    for agg, view in await hub.store.call(lambda: _views(index.aggregates())):
        if view is not None:
            hub.transcripts.setdefault(agg.session_id, view)
            hub.remembered_ids.add(agg.session_id)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(
                run_transcript_watcher,
                index,
                lambda: known_config_dirs(hub),
                hub.store.call,
                partial(on_transcripts, hub),
                rescan_interval_s=hub.config.transcript_rescan_s,
            )
        )
        await nursery.start(
            partial(
                run_git_watcher,
                lambda: session_cwds(hub),
                partial(on_branch, hub),
                interval_s=GIT_POLL_S,
            )
        )
        await nursery.start(
            partial(
                run_tmux_watcher,
                lambda: session_panes(hub),
                partial(on_pane, hub),
                interval_s=TMUX_POLL_S,
            )
        )
        task_status.started()
        await trio.sleep_forever()
    raise AssertionError("unreachable")  # pragma: no cover
