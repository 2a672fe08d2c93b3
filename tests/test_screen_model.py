"""The pty host's screen model (ccc_statusd/session/screen_model.py): pyte plus a filter for
the APC/PM/SOS strings pyte would print as text (Claude Code 2.1.331 sends a kitty graphics
query at start-up, which used to look like a draft in the input box)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from ccc_statusd.session.screen_model import ScreenModel, _StringFilter

READY = (Path(__file__).parent / "data" / "screens" / "2.1.331" / "ready.ansi").read_bytes()
KITTY_QUERY = b"\x1b_Gi=1,a=q,t=d,f=24;AAAA\x1b\\"


def _ready_bytes() -> bytes:
    return b"\x1b[H\x1b[2J" + READY.rstrip(b"\n").replace(b"\n", b"\r\n") + b"\x1b[48;3H"


def test_ready_screen_with_a_graphics_query_is_ready() -> None:
    m = ScreenModel(50, 200)
    m.feed(_ready_bytes()[:-8] + KITTY_QUERY[:5])
    m.feed(KITTY_QUERY[5:] + _ready_bytes()[-8:])
    assert m.classify().ready, m.classify()
    assert "a=q" not in m.text()


def test_filter() -> None:
    f = _StringFilter()
    assert f.feed(b"a\x1b_G;x\x1b\\b\x1b[1mc\x1b") == b"ab\x1b[1mc"
    assert f.feed(b"^pm\x07d\x1bXsos\x1b\\e") == b"de"
    assert f.feed(b"\x1b]0;title\x07") == b"\x1b]0;title\x07"  # OSC is pyte's to handle


STREAM = st.lists(
    st.sampled_from(
        [b"\x1b", b"_", b"\\", b"\x07", b"[", b"m", b"a", b"X", b"^", b"\x1b_G;q\x1b\\"]
    ),
    max_size=40,
).map(b"".join)


@given(STREAM, st.lists(st.integers(0, 60), max_size=5))
def test_filter_is_the_same_whatever_the_chunks(data: bytes, cuts: list[int]) -> None:
    whole = _StringFilter().feed(data)
    f = _StringFilter()
    pieces, last = [], 0
    for cut in sorted(c for c in cuts if c <= len(data)):
        pieces.append(f.feed(data[last:cut]))
        last = cut
    pieces.append(f.feed(data[last:]))
    assert b"".join(pieces) == whole
