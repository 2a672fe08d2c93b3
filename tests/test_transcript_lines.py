"""The fast line decoder (transcript_lines, msgspec) against the reference path (json.loads per
line, ``TranscriptAggregate.feed_line``): same aggregate on any bytes, whatever the chunking.

This is the guarantee behind the fast path and its raw-byte pre-checks (ASCII, UTF-8, skipped
keys): no line the reference parse would use is dropped or read differently.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ccc_statusd.watchers import transcript_lines as tl
from ccc_statusd.watchers.transcript_parse import TranscriptAggregate

from .fixtures import FIXTURES_DIR, VERSIONS


def reference(data: bytes, start: TranscriptAggregate | None = None) -> dict[str, Any]:
    """The aggregate of ``data`` the slow way: every complete line through ``feed_line``."""
    agg = start or TranscriptAggregate()
    *complete, rest = data.split(b"\n")
    for raw in complete:
        agg.feed_line(raw)
    return {**agg.to_dict(), "pending": rest}


def fast(data: bytes, cuts: list[int], start: TranscriptAggregate | None = None) -> dict[str, Any]:
    agg = start or TranscriptAggregate()
    prev = 0
    for cut in [*sorted(cuts), len(data)]:
        agg.feed(data[prev:cut])
        prev = cut
    return {**agg.to_dict(), "pending": agg.pending}


# --- lines: well-formed objects with every key the aggregate reads, in good and bad shapes -----

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
STAMPS = st.one_of(
    st.sampled_from(
        [
            "2026-01-01T00:00:00.000Z",
            "2026-01-01T00:00:09.500Z",
            "2025-12-31T23:59:59.999Z",
            "2026-01-01T00:00:07+00:00",
            "2026-01-01T00:00:07",
            "xxxxxxxxxxxxxxxxxxxxxxxZ",
            "garbage",
            "",
        ]
    ),
    st.datetimes().map(lambda d: d.isoformat(timespec="milliseconds") + "Z"),
    SCALARS,
)
KINDS = st.one_of(
    st.sampled_from(["user", "assistant"]),
    st.sampled_from(["system", "attachment", "cost-state", "last-prompt", "summary", ""]),
    SCALARS,
    st.lists(st.text(max_size=3), max_size=2),
)
TEXT_BLOCK = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "tool_use", "tool_result", "thinking"])},
    optional={
        "text": st.one_of(
            st.text(max_size=20), st.just("[Request interrupted by user for tool use]"), SCALARS
        ),
        "input": st.dictionaries(st.text(max_size=4), SCALARS, max_size=3),
        "content": st.one_of(st.text(max_size=20), st.lists(SCALARS, max_size=3)),
    },
)
CLEAN_CONTENT = st.one_of(
    st.text(max_size=30),
    st.just("  [Request interrupted by user]"),
    st.lists(TEXT_BLOCK, max_size=3),
)
CONTENT = st.one_of(
    CLEAN_CONTENT,
    st.lists(st.one_of(TEXT_BLOCK, SCALARS), max_size=3),  # a non-object block: reference path
    SCALARS,
)
USAGE = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            k: st.one_of(st.integers(0, 10**6), SCALARS)
            for k in (
                "input_tokens",
                "output_tokens",
                "cache_read_input_tokens",
                "cache_creation_input_tokens",
            )
        },
    ),
    SCALARS,
)


def message(content: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "id": st.one_of(st.sampled_from(["msg_a", "msg_b", "msg_c", ""]), SCALARS),
            "model": st.one_of(st.sampled_from(["claude-x", "<synthetic>", ""]), SCALARS),
            "usage": USAGE,
            "content": content,
            "role": st.sampled_from(["user", "assistant"]),
        },
    )


def line_object(message: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"type": KINDS},
        optional={
            "sessionId": st.one_of(st.sampled_from(["s-1", "s-2", ""]), SCALARS),
            "timestamp": STAMPS,
            "cwd": st.one_of(st.sampled_from(["/w", "/x", ""]), SCALARS),
            "gitBranch": st.one_of(st.sampled_from(["main", "dev", ""]), SCALARS),
            "version": st.one_of(st.sampled_from(["2.1.331", ""]), SCALARS),
            "isSidechain": st.one_of(st.booleans(), SCALARS),
            "isMeta": st.one_of(st.booleans(), SCALARS),
            "message": message,
            "totalCostUSD": st.one_of(st.floats(allow_nan=False, allow_infinity=False), SCALARS),
            "lastPrompt": st.one_of(st.text(max_size=10), SCALARS),
            "toolUseResult": st.dictionaries(st.text(max_size=5), SCALARS, max_size=4),
        },
    )


# Objects the fast path takes (message an object, content blocks objects): exercises the
# batched path. Any object: also the per-line fallback.
CLEAN_OBJECT = line_object(message(CLEAN_CONTENT))
OBJECT = line_object(st.one_of(message(CONTENT), SCALARS, st.lists(SCALARS, max_size=2)))


@st.composite
def encoded(draw: st.DrawFn, obj: Any) -> bytes:
    compact = draw(st.booleans())
    text = json.dumps(
        obj,
        ensure_ascii=draw(st.booleans()),
        separators=(",", ":") if compact else (", ", ": "),
    )
    return text.encode("utf-8", "surrogatepass")


GARBAGE = st.one_of(
    st.binary(max_size=30),
    st.sampled_from(
        [
            b"",
            b"   ",
            b"\t\r",
            b"\x0c",
            b"not json",
            b"[1, 2]",
            b'"a string"',
            b"null",
            b'{"type": "user"} {"type": "user"}',
            b'{"type": "user"}{"type": "assistant"}',
            b'{"type": "user",',
            b'"cwd": "/z"}',
            b'{"type": "user", "x": NaN}',
            b'{"type": "user", "x": "\\ud800"}',
            b'{"type": "user", "x": "\xff"}',
            b'{"type": "user", "x": "\xed\xa0\x80"}',
            b'{"type": "user", "x": "\xc0\x80"}',
            b'{"type": "user", "x": "a\tb"}',
            b'{"type": 1e999}',
            b'{"type": "cost-state", "totalCostUSD": 1e999}',
            b'{"type": "user", "message": {"content": [1]}}',
            b'{"type": "assistant", "message": "text"}',
            b"\xef\xbb\xbf" + b'{"type": "user", "cwd": "/bom"}',
            b'{"type": "user", "deep": ' + b"[" * 3000 + b"]" * 3000 + b"}",
            b'{"type":"user","type":"assistant","message":{"id":"d","usage":{"input_tokens":5}}}',
        ]
    ),
)
LINE = st.one_of(OBJECT.flatmap(encoded), OBJECT.flatmap(encoded), GARBAGE)
CLEAN_LINE = CLEAN_OBJECT.flatmap(encoded)
# A conversation: mostly user/assistant lines with real stamps, where the order of lines decides
# (turn mark, last text, min/max stamps, usage per message id).
TURN_LINE = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["user", "assistant", "assistant", "cost-state", "last-prompt"]),
        "timestamp": st.one_of(
            st.datetimes().map(lambda d: d.isoformat(timespec="milliseconds") + "Z"), STAMPS
        ),
        "message": message(CLEAN_CONTENT),
    },
    optional={
        "isSidechain": st.booleans(),
        "isMeta": st.booleans(),
        "totalCostUSD": st.floats(allow_nan=False, allow_infinity=False),
        "lastPrompt": st.text(max_size=10),
        "cwd": st.sampled_from(["/w", "/x", ""]),
    },
).flatmap(encoded)
LINES = st.one_of(
    st.lists(CLEAN_LINE, max_size=12),
    st.lists(TURN_LINE, max_size=12),
    st.lists(LINE, max_size=12),
)


def joined(lines: list[bytes], tail: bytes) -> bytes:
    # A "line" of garbage may hold newlines itself: it is then several lines, in both paths.
    return b"".join(x + b"\n" for x in lines) + tail


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix=st.lists(LINE, max_size=4),
    lines=LINES,
    tail=st.sampled_from([b"", b'{"type": "us']),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=4),
)
@example(prefix=[], lines=[b'{"type":"user","cwd":"/a"}'], tail=b"", cuts=[])
@example(
    prefix=[], lines=[b'{"type": "user", "x": "\xff"}', b'{"type": "user"}'], tail=b"", cuts=[]
)
@example(
    prefix=[],
    lines=[
        b'{"type": "user", "timestamp": "2026-01-01T00:00:00.000Z"}',
        b'{"type": "user", "timestamp": "2026-01-01T00:00:05.000Z"}',
    ],
    tail=b"",
    cuts=[],
)
def test_fast_path_equals_reference(
    prefix: list[bytes], lines: list[bytes], tail: bytes, cuts: list[int]
) -> None:
    data = joined(lines, tail)
    # A state built by earlier feeds (first/last stamps, recent message ids, session id, ...).
    start_ref, start_fast = TranscriptAggregate(), TranscriptAggregate()
    for raw in prefix:
        start_ref.feed_line(raw.replace(b"\n", b" "))
    start_fast.feed(b"".join(raw.replace(b"\n", b" ") + b"\n" for raw in prefix))
    assert start_fast.to_dict() == start_ref.to_dict()
    cuts = [c for c in cuts if c <= len(data)]
    assert fast(data, cuts, start_fast) == reference(data, start_ref)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=20), min_size=1, max_size=20))
def test_utf8_check_of_joined_lines_is_the_check_of_each(texts: list[str]) -> None:
    raws = [t.encode("utf-8", "surrogatepass") for t in texts]
    broken = [r[:-1] if not r.isascii() else r for r in raws]
    for group in (raws, broken):
        each = all(tl.valid_utf8(r) for r in group)
        assert tl.valid_utf8(b"\n".join(group)) == each


def test_a_deeply_nested_line_is_malformed_not_fatal() -> None:
    agg = TranscriptAggregate()
    agg.feed(b'{"type": "user", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n")
    agg.feed(b'{"type": "user"}\n')
    assert (agg.malformed_lines, agg.user_messages) == (1, 1)


def test_skipped_keys_are_still_validated() -> None:
    # msgspec skips "attachment" without building it, but a broken one makes the line malformed.
    agg = TranscriptAggregate()
    agg.feed(b'{"type": "attachment", "attachment": {"a": [1, 2,]}}\n')
    agg.feed(b'{"type": "attachment", "attachment": "\xff\xfe"}\n')
    assert (agg.malformed_lines, agg.other_lines) == (2, 0)


@pytest.mark.parametrize("version", VERSIONS)
def test_fixture_takes_the_fast_path_entirely(version: str) -> None:
    found = sorted((FIXTURES_DIR / version).glob("transcript-*.jsonl"))
    assert found, f"no transcript fixtures under {FIXTURES_DIR / version}"
    for path in found:
        raws = path.read_bytes().split(b"\n")[:-1]
        assert tl.decode_lines(raws) is not None, path.name
