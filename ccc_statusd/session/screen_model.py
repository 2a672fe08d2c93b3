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
    """A ``rows`` x ``cols`` screen fed with the child's output; ``version`` counts feeds (a
    cheap "did anything change since" for the confirmation loop)."""

    def __init__(self, rows: int, cols: int) -> None:
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.version = 0

    def feed(self, data: bytes) -> None:
        self.stream.feed(data)
        self.version += 1

    def resize(self, rows: int, cols: int) -> None:
        self.screen.resize(rows, cols)
        self.version += 1

    def lines(self) -> list[str]:
        return list(self.screen.display)

    @property
    def cursor(self) -> tuple[int, int]:
        return (self.screen.cursor.x, self.screen.cursor.y)

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def classify(self) -> ScreenState:
        return classify(self.lines(), self.cursor)
