"""Loop-health figures for ``make bench``: the longest single task step and the live task count.

Installed only when ``CCC_BENCH_INSTRUMENT=1`` (the bench sets it): a Trio instrument costs a
little on every task step, which the daemon does not pay in normal use. ``status`` reports
``loop`` when it is on. A long step means something blocked the event loop (e.g. SQLite work
done on the loop instead of the store worker).
"""

from __future__ import annotations

import time
from typing import Any

import trio


class LoopStats(trio.abc.Instrument):
    def __init__(self) -> None:
        self.max_step_s = 0.0
        self.max_step_task = ""
        self.live_tasks = 0
        self._t0 = 0.0

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.live_tasks += 1

    def task_exited(self, task: trio.lowlevel.Task) -> None:
        self.live_tasks -= 1

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._t0 = time.perf_counter()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        step = time.perf_counter() - self._t0
        if step > self.max_step_s:
            self.max_step_s, self.max_step_task = step, task.name

    def snapshot(self) -> dict[str, Any]:
        """The figures since the last read (the maximum resets on every read)."""
        out = {
            "max_step_ms": round(self.max_step_s * 1000, 3),
            "max_step_task": self.max_step_task,
            "live_tasks": self.live_tasks,
        }
        self.max_step_s, self.max_step_task = 0.0, ""
        return out
