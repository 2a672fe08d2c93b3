"""The watchers' slot in the root nursery: transcripts, git branches, tmux panes, config dirs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from .hub import Hub


async def run_watchers(hub: Hub, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    task_status.started()
    await trio.sleep_forever()
