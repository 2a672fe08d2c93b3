"""TranscriptAggregate: fixture transcripts from two Claude Code versions, incremental feeding at
every split point, half-written lines, garbage, token de-duplication, persistence round trip."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccc_statusd.watchers import transcript_parse
from ccc_statusd.watchers.transcript_parse import TranscriptAggregate

from .fixtures import transcript as fixture


def parse(data: bytes, *chunks_at: int) -> TranscriptAggregate:
    agg = TranscriptAggregate()
    prev = 0
    for cut in (*chunks_at, len(data)):
        agg.feed(data[prev:cut])
        prev = cut
    return agg


def state(agg: TranscriptAggregate) -> dict[str, object]:
    return {**agg.to_dict(), "pending": agg.pending}


# (version, n) -> the facts read off the fixture by hand (see FACTS.md §4).
EXPECTED = {
    ("v2.1.331", 1): dict(
        session_id="6656f299-72c7-4382-8647-f94b8f7faaf3",
        user_messages=9,
        assistant_messages=7,
        other_lines=49,
        model="claude-opus-5-5",
        version="2.1.331",
        first_ts="2026-11-24T19:33:32.597Z",
        last_ts="2026-11-24T19:33:56.508Z",
        # five API responses (7 assistant lines: two responses have text + tool_use lines)
        input_tokens=14169 + 14204 + 14295 + 14342 + 14440,
        output_tokens=12 + 51 + 15 + 53 + 20,
        cost_usd=0.41857600000000006,
        last_prompt="TOOL: touch created-by-tool.txt",
    ),
    ("v2.1.331", 2): dict(
        session_id="0bf7fcec-6527-4470-9385-92271deedb9b",
        user_messages=2,
        assistant_messages=0,
        model=None,
        first_ts="2026-11-24T19:34:02.196Z",
        last_ts="2026-11-24T19:34:02.397Z",
        input_tokens=0,
        cost_usd=0.0,
    ),
    ("v2.1.112", 1): dict(
        session_id="51e5eb10-e669-4e44-bda5-e8a14c0b5d05",
        user_messages=9,
        assistant_messages=7,
        other_lines=12,
        model="claude-sonnet-4-6",
        version="2.1.112",
        first_ts="2026-11-24T19:32:49.626Z",
        last_ts="2026-11-24T19:33:13.526Z",
        input_tokens=26108 + 26149 + 26241 + 26287 + 26385,
        output_tokens=12 + 51 + 15 + 53 + 20,
        cost_usd=None,  # no cost-state lines before 2.1.3xx
    ),
    ("v2.1.112", 2): dict(
        session_id="43958af4-11fd-4b9a-800f-9066948f4bbb",
        user_messages=5,
        assistant_messages=0,
        first_ts="2026-11-24T19:33:19.193Z",
        last_ts="2026-11-24T19:33:22.606Z",
    ),
}


@pytest.mark.parametrize(("version", "n"), sorted(EXPECTED))
def test_fixture_aggregate(version: str, n: int) -> None:
    agg = parse(fixture(version, n).read_bytes())
    for key, value in EXPECTED[(version, n)].items():
        assert getattr(agg, key) == value, key
    assert agg.cwd == "/home/user/project"
    assert agg.git_branch == "main"
    assert agg.malformed_lines == 0
    assert agg.cache_read_tokens == 0 and agg.cache_creation_tokens == 0
    assert agg.pending == b""


@pytest.mark.parametrize("version", ["v2.1.331", "v2.1.112"])
def test_last_assistant_text_is_the_final_answer(version: str) -> None:
    agg = parse(fixture(version, 1).read_bytes())
    assert agg.last_assistant_text == "ECHO: tool said: (Bash completed with no output)"
    assert agg.last_assistant_ts is not None


@pytest.mark.parametrize(("version", "n"), [("v2.1.331", 2), ("v2.1.112", 2)])
def test_every_two_piece_split_gives_the_same_aggregate(version: str, n: int) -> None:
    data = fixture(version, n).read_bytes()
    whole = state(parse(data))
    for cut in range(len(data) + 1):
        assert state(parse(data, cut)) == whole, cut


@pytest.mark.parametrize(("version", "n"), sorted(EXPECTED))
def test_byte_at_a_time_gives_the_same_aggregate(version: str, n: int) -> None:
    # One byte per feed() puts a chunk boundary at every split point of the file in one pass.
    data = fixture(version, n).read_bytes()
    agg = TranscriptAggregate()
    for i in range(len(data)):
        agg.feed(data[i : i + 1])
    assert state(agg) == state(parse(data))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=12))
def test_random_multi_splits_give_the_same_aggregate(fractions: list[float]) -> None:
    data = fixture("v2.1.331", 1).read_bytes()
    cuts = sorted(int(f * len(data)) for f in fractions)
    assert state(parse(data, *cuts)) == state(parse(data))


def test_half_written_last_line_is_kept_for_the_next_feed() -> None:
    data = fixture("v2.1.331", 1).read_bytes()
    lines = data.splitlines(keepends=True)
    head = b"".join(lines[:-1])
    last = lines[-1]
    agg = parse(head + last[:10])
    assert agg.pending_bytes == 10
    assert state(agg)["cost_usd"] is None  # the cost-state line is the unfinished one
    agg.feed(last[10:])
    assert agg.pending_bytes == 0
    assert state(agg) == state(parse(data))


def test_garbage_lines_are_counted_and_skipped() -> None:
    data = fixture("v2.1.112", 1).read_bytes()
    lines = data.splitlines(keepends=True)
    garbage = [b"not json at all\n", b"[1, 2, 3]\n", b'{"type": "user", "trunc\n', b"\xff\xfe\n"]
    mixed = b"".join(lines[:3] + garbage[:2] + lines[3:10] + garbage[2:] + lines[10:])
    agg = parse(mixed)
    clean = parse(data)
    assert agg.malformed_lines == 4
    agg.malformed_lines = 0
    assert state(agg) == state(clean)


def test_blank_lines_are_ignored() -> None:
    assert state(parse(b"\n\n  \n")) == state(TranscriptAggregate())


def _assistant(
    mid: str, inp: int, out: int, *, model: str = "m1", text: str | None = None
) -> bytes:
    content = [{"type": "text", "text": text}] if text else [{"type": "tool_use", "id": "t"}]
    line = {
        "type": "assistant",
        "sessionId": "s",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "message": {
            "id": mid,
            "model": model,
            "content": content,
            "usage": {
                "input_tokens": inp,
                "output_tokens": out,
                "cache_read_input_tokens": 7,
                "cache_creation_input_tokens": 3,
            },
        },
    }
    return json.dumps(line).encode() + b"\n"


def test_usage_counted_once_per_message_id() -> None:
    agg = parse(
        _assistant("a", 100, 5, text="hi")
        + _assistant("a", 100, 5)  # second content block of the same response
        + _assistant("b", 200, 9, text="done")
    )
    assert agg.assistant_messages == 3
    assert (agg.input_tokens, agg.output_tokens) == (300, 14)
    assert (agg.cache_read_tokens, agg.cache_creation_tokens) == (14, 6)
    assert agg.last_assistant_text == "done"


def test_a_later_usage_for_the_same_id_replaces_the_earlier_one() -> None:
    # Streaming can write the first block with a partial output count.
    agg = parse(_assistant("a", 100, 1, text="x") + _assistant("a", 100, 40))
    assert (agg.input_tokens, agg.output_tokens) == (100, 40)


def test_synthetic_model_does_not_replace_the_real_one() -> None:
    agg = parse(
        _assistant("a", 1, 1, model="claude-x") + _assistant("b", 0, 0, model="<synthetic>")
    )
    assert agg.model == "claude-x"


def test_timestamps_are_min_and_max_not_first_and_last() -> None:
    lines = [
        {"type": "system", "timestamp": "2026-01-01T00:00:05.000Z"},
        {"type": "system", "timestamp": "2026-01-01T00:00:09.000Z"},
        {"type": "user", "timestamp": "2026-01-01T00:00:01.000Z"},
        {"type": "user", "timestamp": "2026-01-01T00:00:07+00:00"},
        {"type": "user", "timestamp": "garbage"},
    ]
    agg = parse(b"".join(json.dumps(x).encode() + b"\n" for x in lines))
    assert agg.first_ts == "2026-01-01T00:00:01.000Z"
    assert agg.last_ts == "2026-01-01T00:00:09.000Z"


def test_round_trip_through_json_then_continue() -> None:
    data = fixture("v2.1.331", 1).read_bytes()
    half = data.rfind(b"\n", 0, len(data) // 2) + 1
    first = parse(data[:half])
    restored = TranscriptAggregate.from_dict(json.loads(json.dumps(first.to_dict())))
    assert restored.to_dict() == first.to_dict()
    restored.feed(data[half:])
    assert state(restored) == state(parse(data))


def test_from_dict_ignores_unknown_keys() -> None:
    d = TranscriptAggregate(session_id="x").to_dict() | {"from_the_future": 1}
    assert TranscriptAggregate.from_dict(d).session_id == "x"


def test_an_over_long_line_is_dropped_not_buffered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transcript_parse, "MAX_LINE_BYTES", 100)
    agg = TranscriptAggregate()
    agg.feed(b'{"type": "user", "pad": "' + b"x" * 150)
    assert agg.pending == b"" and agg.malformed_lines == 1
    agg.feed(b"y" * 500)  # still the same line
    assert agg.pending == b"" and agg.malformed_lines == 1
    agg.feed(b'"}\n{"type": "user"}\n')
    assert agg.malformed_lines == 1 and agg.user_messages == 1
