"""The watchers' slot in the root nursery: transcripts, git branches, tmux panes, config dirs.

Each watcher lives in ``watchers/`` and knows nothing of the hub; this module feeds them what
the session directory knows (config dirs, session cwds and panes) and folds what they report
back: transcript aggregates into the directory, state changes through its one ``transition``,
cache files of sessions not live through persistence's writer.
"""

from __future__ import annotations

import logging
import os
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import trio

from .dialogs import iso_epoch, state_after_turn_mark
from .hub.persistence import write_caches
from .sessions import ENDED
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
    """~/.claude, $CLAUDE_CONFIG_DIR, the config dirs clients named (bounded), --config-dir."""
    dirs = {Path(d) for d in hub.directory.config_dirs if d}
    env_dir = os.environ.get("CLAUDE_CONFIG_DIR")
    if env_dir:
        dirs.add(Path(env_dir))
    home = os.environ.get("HOME")
    if home:
        dirs.add(Path(home) / ".claude")
    dirs.update(hub.config.extra_config_dirs)
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
    directory = hub.directory
    offline: list[tuple[str, dict[str, Any]]] = []
    # Building the views is per-aggregate work: off the event loop (it stalled it at 1,000).
    for agg, view in await hub.store.offload(_views, changed):
        sid = agg.session_id
        directory.set_transcript(sid, view)
        if view is None or sid not in directory.transcripts:
            continue  # removed, or not a plain id (a copied `<uuid> (copy).jsonl`)
        info = directory.by_session_id(sid)
        if info is not None:
            # A rejected permission dialog (or Esc) ends the turn with no Stop hook: the
            # transcript's "[Request interrupted by user…]" line is the only sign (dialogs.py).
            idle = state_after_turn_mark(info.state, info.state_changed_wall, agg.turn_mark)
            if idle is not None:
                directory.transition(info, idle, cause="transcript")
            directory.touch(info)
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
        await hub.store.offload(write_caches, hub.config.paths, offline)


def session_cwds(hub: Hub) -> dict[str, Path]:
    return {
        info.session_id: Path(info.cwd)
        for info in hub.directory.sessions.values()
        if info.session_id and info.cwd
    }


def on_branch(hub: Hub, session_id: str, branch: str | None) -> None:
    info = hub.directory.by_session_id(session_id)
    if info is not None and info.git_branch != branch:
        info.git_branch = branch
        hub.events.publish("branch", info, branch=branch)
        hub.directory.touch(info)


def session_panes(hub: Hub) -> dict[str, TmuxPane]:
    """Pane ids are unique per tmux server only: each carries its server's socket when known."""
    return {
        info.session_id: TmuxPane(info.tmux_pane, info.tmux_socket)
        for info in hub.directory.sessions.values()
        if info.session_id and info.tmux_pane
    }


def on_pane(hub: Hub, session_id: str, alive: bool) -> None:
    info = hub.directory.by_session_id(session_id)
    if info is None or alive:
        return
    hub.events.publish("pane_gone", info, pane=info.tmux_pane)
    info.tmux_pane = None
    if not info.connected:
        # An adopted session whose pane is gone cannot be reached any more: through the one
        # transition path, so an ask waiting on it hears "ended" at once.
        hub.directory.transition(info, ENDED, cause="pane_gone")
    hub.directory.touch(info)


async def run_watchers(
    hub: Hub, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> NoReturn:
    index = await hub.store.call(lambda store: TranscriptIndex(store.db))
    # What earlier runs indexed: a restart lists the whole history without re-reading it.
    for agg, view in await hub.store.on_db(lambda: _views(index.aggregates())):
        if view is not None and agg.session_id not in hub.directory.transcripts:
            hub.directory.set_transcript(agg.session_id, view)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(
                run_transcript_watcher,
                index,
                lambda: known_config_dirs(hub),
                hub.store.on_db,
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
