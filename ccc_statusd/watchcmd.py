"""``ccc watch``: print what happens to sessions, one human line per event, across restarts.

The lines come from :class:`~ccc_statusd.eventfmt.EventFormatter` (one label per session, no
raw JSON, no repeats); ``--json`` prints the daemon's events unchanged. When the daemon stops
or restarts, ``watch`` says so once on stderr, retries with back-off
(:func:`~ccc_statusd.follow.follow`), and says when it is back.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any

import anyio

from .eventfmt import EventFormatter
from .follow import Snapshot, Status, follow


class Watch:
    def __init__(
        self, out: IO[str], err: IO[str], *, as_json: bool = False, colour: bool = False
    ) -> None:
        self.out, self.err = out, err
        self.as_json, self.colour = as_json, colour
        self.fmt = EventFormatter()
        self.down = False  # said "reconnecting" and not yet "back"
        self.ever = False

    def snapshot(self, snap: Snapshot) -> None:
        self.fmt.learn(snap.sessions)

    def event(self, event: dict[str, Any]) -> None:
        if self.as_json:
            print(json.dumps(event), file=self.out, flush=True)
            return
        line = self.fmt.line(event, colour=self.colour)
        if line is not None:
            print(line, file=self.out, flush=True)

    def status(self, status: Status) -> None:
        if status.connected:
            if self.down:
                self._note("the daemon is back; following events again")
            self.down, self.ever = False, True
            return
        if not self.down:
            self.down = True
            if self.ever:
                self._note(
                    f"lost the daemon ({status.message}); reconnecting with back-off "
                    "(Ctrl-C to stop)"
                )
            else:
                self._note(f"{status.message}; waiting for it (Ctrl-C to stop)")

    def _note(self, text: str) -> None:
        print(f"ccc: {text}", file=self.err, flush=True)


async def run_watch(socket_path: str, session: str | None, watch: Watch) -> None:
    await follow(
        socket_path, watch.snapshot, watch.event, watch.status, session=session, scheduled=False
    )


def main(socket_path: str, session: str | None, *, as_json: bool, colour: bool) -> None:
    """Blocking entry for the CLI: runs until Ctrl-C; SubscribeRefused propagates."""
    watch = Watch(sys.stdout, sys.stderr, as_json=as_json, colour=colour)
    anyio.run(run_watch, socket_path, session, watch)
