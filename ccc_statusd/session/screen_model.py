"""The pty host's model of the child's screen: every byte Claude Code writes goes through a
``pyte`` VT emulator, so before typing the host can ask :func:`ccc_statusd.screen.classify` what
is on screen. Owns the emulator and nothing else (no I/O).

pyte is a maintained VT100/xterm emulator: the cursor motion, erases, scroll regions and wide
characters Claude Code's renderer (Ink) uses are all handled there, not by hand-written escape
parsing here. Unknown sequences are ignored by pyte, which at worst leaves a screen we do not
recognise: that makes messages wait (fail safe), never type.
"""

from __future__ import annotations

import pyte

from ..screen import ScreenState, classify


class ScreenModel:
    """A ``rows`` x ``cols`` screen fed with the child's output.

    Rendering is incremental: pyte's own ``display`` measures every cell's width on every call
    (~30 ms for 200x50); here only the rows pyte marked dirty since the last look are rebuilt
    (a wide character's second cell holds "", so joining the cells gives the text), and a
    classification is cached until the next feed."""

    def __init__(self, rows: int, cols: int) -> None:
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.version = 0
        self._rows: list[str] = [""] * rows
        self._state: tuple[int, ScreenState] | None = None

    def feed(self, data: bytes) -> None:
        self.stream.feed(data)
        self.version += 1

    def resize(self, rows: int, cols: int) -> None:
        self.screen.resize(rows, cols)
        self._rows = [""] * rows
        self.screen.dirty.update(range(rows))
        self.version += 1

    def lines(self) -> list[str]:
        screen = self.screen
        cols = screen.columns
        buffer = screen.buffer
        for y in screen.dirty:
            if 0 <= y < len(self._rows):
                row = buffer[y]
                self._rows[y] = "".join([row[x].data for x in range(cols)]).rstrip()
        screen.dirty.clear()
        return list(self._rows)

    @property
    def cursor(self) -> tuple[int, int]:
        return (self.screen.cursor.x, self.screen.cursor.y)

    def text(self) -> str:
        return "\n".join(self.lines())

    def classify(self) -> ScreenState:
        if self._state is not None and self._state[0] == self.version:
            return self._state[1]
        state = classify(self.lines(), self.cursor)
        self._state = (self.version, state)
        return state
