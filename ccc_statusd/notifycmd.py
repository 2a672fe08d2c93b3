"""``ccc notify``: tell the user when a session needs them (a client-side subscriber process).

It follows the daemon's events (:func:`~ccc_statusd.follow.follow`, across restarts), keeps a
:class:`~ccc_statusd.board.Board`, and asks :class:`~ccc_statusd.alerts.Rules` which changes
are worth an alert: a session starts waiting for its user, a turn longer than ``--long-turn``
ends, a message has been queued longer than ``--blocked``. Each alert fires exactly once, as it
happens: state changes are pushed by the daemon, and the one timer sleeps until the next queued
message would cross the threshold (no polling).

What it does with an alert (any combination; by default it prints one line on stdout):
``--exec CMD`` runs ``sh -c CMD`` with the facts in ``CCC_EVENT``, ``CCC_SESSION``,
``CCC_NAME``, ``CCC_STATE``, ``CCC_TEXT`` (and ``CCC_DURATION``, ``CCC_MESSAGE_ID`` when they
apply); ``--desktop`` runs ``notify-send``; ``--bell`` writes a BEL to the terminal.
Nothing fires for what was already true when it (re)connected: only transitions.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import anyio
import anyio.abc

from .alerts import Alert, Rules
from .board import Board
from .eventfmt import clock
from .follow import Snapshot, Status, follow

MAX_RUNNING = 8  # commands running at once; more alerts wait (a hung command cannot pile up)
NOTIFY_SEND_TIMEOUT_S = 10


@dataclass(frozen=True)
class Actions:
    exec_cmd: str | None = None
    desktop: bool = False
    bell: bool = False
    quiet: bool = False


class Notifier:
    def __init__(
        self,
        rules: Rules,
        actions: Actions,
        *,
        out: IO[str] | None = None,
        err: IO[str] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.rules = rules
        self.actions = actions
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.wall = wall
        self.board = Board()
        self.changed = anyio.Event()
        self.down = False
        self.ever = False
        self.notify_send = shutil.which("notify-send") if actions.desktop else None
        self.limiter = anyio.CapacityLimiter(MAX_RUNNING)
        self.tg: anyio.abc.TaskGroup | None = None

    # --- feed --------------------------------------------------------------------------------

    def snapshot(self, snap: Snapshot) -> None:
        self.board.load(snap.sessions, snap.scheduled, self.wall())
        # Messages already past the threshold when we (re)connect were announced before (or
        # blocked before we started): only the ones that cross it from now on fire.
        if self.rules.blocked_s is not None:
            for row in self.board.rows.values():
                for mid, since in row.queued.items():
                    if self.wall() - since >= self.rules.blocked_s:
                        self.rules.fired_blocked.add(mid)
        self._wake()

    def event(self, event: dict[str, Any]) -> None:
        change = self.board.apply(event)
        for alert in self.rules.on_change(change):
            self.fire(alert)
        if change is not None and change.queued_id is not None:
            self._wake()

    def status(self, status: Status) -> None:
        if status.connected:
            if self.down:
                self._note("the daemon is back; watching sessions again")
            self.down, self.ever = False, True
        elif not self.down:
            self.down = True
            self._note(
                f"lost the daemon ({status.message}); reconnecting with back-off"
                if self.ever
                else f"{status.message}; waiting for it"
            )

    def _wake(self) -> None:
        self.changed.set()

    async def blocked_timer(self) -> None:
        """Sleep until the next queued message crosses ``--blocked``; fire; repeat."""
        while True:
            self.changed = anyio.Event()
            for alert in self.rules.due(self.board, self.wall()):
                self.fire(alert)
            deadline = self.rules.next_deadline(self.board)
            with anyio.move_on_after(
                max(deadline - self.wall(), 0.0) if deadline is not None else float("inf")
            ):
                await self.changed.wait()

    # --- actions -----------------------------------------------------------------------------

    def fire(self, alert: Alert) -> None:
        if self.actions.bell:
            try:
                self.out.write("\a")
                self.out.flush()
            except (OSError, ValueError):
                pass
        if not self.actions.quiet:
            print(f"{clock(self.wall())} {alert.event:9} {alert.text}", file=self.out, flush=True)
        if self.tg is None:
            return
        if self.actions.exec_cmd:
            self.tg.start_soon(self._run_exec, alert)
        if self.notify_send:
            self.tg.start_soon(self._run_notify_send, alert)

    async def _run_exec(self, alert: Alert) -> None:
        assert self.actions.exec_cmd is not None
        env = {**os.environ, **alert.env()}
        async with self.limiter:
            try:
                result = await anyio.run_process(
                    ["/bin/sh", "-c", self.actions.exec_cmd],
                    env=env,
                    check=False,
                    stdout=None,
                    stderr=None,
                )
            except OSError as exc:
                self._note(f"--exec could not run: {exc}")
                return
        if result.returncode != 0:
            self._note(f"--exec command exited with {result.returncode} for {alert.event}")

    async def _run_notify_send(self, alert: Alert) -> None:
        assert self.notify_send is not None
        urgency = "critical" if alert.event == "waiting" else "normal"
        async with self.limiter:
            with anyio.move_on_after(NOTIFY_SEND_TIMEOUT_S):
                try:
                    await anyio.run_process(
                        [
                            self.notify_send,
                            "-u",
                            urgency,
                            "-a",
                            "ccc",
                            f"ccc: {alert.name}",
                            alert.text,
                        ],
                        check=False,
                    )
                except OSError as exc:
                    self._note(f"notify-send failed: {exc}")

    def _note(self, text: str) -> None:
        print(f"ccc notify: {text}", file=self.err, flush=True)


async def run_notifier(socket_path: str, notifier: Notifier) -> None:
    async with anyio.create_task_group() as tg:
        notifier.tg = tg
        tg.start_soon(notifier.blocked_timer)
        await follow(socket_path, notifier.snapshot, notifier.event, notifier.status)
        tg.cancel_scope.cancel()


def main(socket_path: str, rules: Rules, actions: Actions) -> None:
    """Blocking entry for the CLI: runs until Ctrl-C / SIGTERM."""
    notifier = Notifier(rules, actions)
    if actions.desktop and notifier.notify_send is None:
        notifier._note(
            "--desktop: notify-send is not installed, so no desktop notifications are shown "
            "(install it with: sudo apt install libnotify-bin); alerts are printed here instead"
        )
    anyio.run(run_notifier, socket_path, notifier)
