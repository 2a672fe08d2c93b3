"""Paste safety (ccc_statusd/paste.py): for any text, the keystrokes are exactly one bracketed
paste and, separately, one Enter; nothing in the text can end the paste or act as a key."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccc_statusd.paste import (
    ENTER,
    PASTE_END,
    PASTE_START,
    DeliveryRefused,
    clean_paste_text,
    command_keys,
    message_keys,
    prompt_keys,
)

# Text biased towards the dangerous pieces: marker fragments, ESC, CSI, C1, CR, controls.
_PIECES = st.sampled_from(
    ["\x1b", "[", "20", "0~", "1~", "\x1b[200~", "\x1b[201~", "\x9b", "\x90", "\r", "\r\n", "\n",
     "\t", "\x03", "\x15", "\x7f", "\x00", "!", "/", "a", "é", " ", "\ud800"]
)  # fmt: skip
TEXTS = st.one_of(st.text(), st.lists(st.one_of(_PIECES, st.text(max_size=3))).map("".join))


def _written(text: str) -> bytes | None:
    try:
        keys = prompt_keys(text)
    except DeliveryRefused:
        return None
    return keys.body + keys.enter


@settings(max_examples=500)
@given(TEXTS)
def test_any_text_is_exactly_one_paste_then_enter(text: str) -> None:
    out = _written(text)
    if out is None:  # refused: only when nothing typeable is left
        assert not clean_paste_text(text).strip()
        return
    assert out.count(PASTE_START) == 1 and out.startswith(PASTE_START)
    assert out.count(PASTE_END) == 1
    # nothing after the end marker but the Enter
    assert out[out.index(PASTE_END) + len(PASTE_END) :] == ENTER
    inner = out[len(PASTE_START) : out.index(PASTE_END)]
    assert b"\x1b" not in inner and b"\r" not in inner
    decoded = inner.decode("utf-8")  # valid UTF-8, never a crash
    assert not any(0x80 <= ord(c) <= 0x9F for c in decoded)
    assert not any(ord(c) < 0x20 and c not in "\t\n" for c in decoded)


@given(TEXTS)
def test_cleaning_is_a_fixed_point(text: str) -> None:
    once = clean_paste_text(text)
    assert clean_paste_text(once) == once


@given(st.text(), st.text())
def test_command_args_carry_no_control_characters(name: str, args: str) -> None:
    try:
        keys = command_keys("model", args)
    except DeliveryRefused:  # pragma: no cover - a valid name is never refused
        raise
    assert keys.body.startswith(b"/model") and keys.enter == ENTER
    assert not any(b < 0x20 or b == 0x7F for b in keys.body)
    assert not any(0x80 <= ord(c) <= 0x9F for c in keys.text)
    try:
        command_keys(name, args)
    except DeliveryRefused as exc:
        assert "slash-command name" in str(exc)


def test_rebuilt_marker_cannot_end_the_paste() -> None:
    attack = "\x1b[20" + "\x1b[201~" + "1~\x1b[Z\x03!rm -rf ~\r"
    keys = prompt_keys("before " + attack)
    assert keys.body.count(PASTE_END) == 1 and keys.body.endswith(PASTE_END)
    assert keys.text == "before [20[201~1~[Z!rm -rf ~\n"
    assert b"\x1b" not in keys.body[len(PASTE_START) : -len(PASTE_END)]


def test_line_breaks_and_unicode() -> None:
    assert prompt_keys("a\r\nb\rc\nd").text == "a\nb\nc\nd"
    assert prompt_keys("héllo\tthere").body == PASTE_START + "héllo\tthere".encode() + PASTE_END
    assert prompt_keys("x\ud800y").text == "xy"  # a lone surrogate is dropped, not a crash


@pytest.mark.parametrize("text", ["", "  \n ", "\x1b\x03\x9b\x7f", "\r\r"])
def test_empty_after_cleaning_is_a_clear_refusal(text: str) -> None:
    with pytest.raises(DeliveryRefused, match="nothing was typed"):
        prompt_keys(text)


def test_commands() -> None:
    assert command_keys("clear").body == b"/clear"
    assert (
        command_keys("/compact", "keep the\nAPI notes\x1b\x9b").text
        == "/compact keep the API notes"
    )
    for bad in ("rm -rf", "/", "", "a" * 65, "x\x1b"):
        with pytest.raises(DeliveryRefused):
            command_keys(bad)


def test_message_keys() -> None:
    assert message_keys({"type": "prompt", "text": "hi"}).kind == "prompt"
    assert message_keys({"type": "command", "name": "status", "text": None}).text == "/status"
    with pytest.raises(DeliveryRefused, match="only prompt and command"):
        message_keys({"type": "eval", "code": "1"})
