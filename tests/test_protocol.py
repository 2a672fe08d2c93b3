"""The wire protocol, pure: every message type round-trips, the framer cuts lines right at every
split point and at its byte limit, and every kind of bad input gets its own plain sentence."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccc_statusd import protocol
from ccc_statusd.protocol import LineFramer, LineTooLong, RemoteProtocolError

# --- strategies: valid values for every field -----------------------------------------------

safe_ids = st.from_regex(protocol.SAFE_ID_RE, fullmatch=True).filter(protocol.is_safe_id)
texts = st.text(max_size=200)
# JSON numbers that survive a round trip: finite floats, ints under the 4300-digit parse limit.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(texts, json_values, max_size=5)
timestamps = (
    st.none()
    | st.integers(min_value=0, max_value=2**53)
    | st.floats(min_value=0, max_value=1e12, allow_nan=False)
)
request_ids = st.none() | st.text(max_size=256)


def _common() -> dict[str, Any]:
    return {"request_id": request_ids, "timestamp": timestamps}


def _session_fields(required_sid: bool) -> dict[str, Any]:
    return {
        "session_id": safe_ids if required_sid else st.none() | safe_ids,
        "claude_config_dir": st.none() | texts,
        "transcript_path": st.none() | texts,
        "data": st.none() | json_objects,
    }


MESSAGE_STRATEGIES: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "register": st.fixed_dictionaries(
        {
            "type": st.just("register"),
            "internal_id": safe_ids,
            **_session_fields(False),
            **_common(),
        }
    ),
    "associate": st.fixed_dictionaries(
        {
            "type": st.just("associate"),
            "internal_id": safe_ids,
            **_session_fields(True),
            **_common(),
        }
    ),
    "heartbeat": st.fixed_dictionaries(
        {
            "type": st.just("heartbeat"),
            "internal_id": safe_ids,
            **_session_fields(False),
            **_common(),
        }
    ),
    "prompt": st.fixed_dictionaries(
        {
            "type": st.just("prompt"),
            "session_id": safe_ids,
            "text": texts,
            "internal_id": st.none() | safe_ids,
            "data": st.none() | json_objects,
            **_common(),
        }
    ),
    "command": st.fixed_dictionaries(
        {
            "type": st.just("command"),
            "session_id": safe_ids,
            "name": st.text(min_size=1, max_size=256),
            "text": st.none() | texts,
            "internal_id": st.none() | safe_ids,
            **_common(),
        }
    ),
    "eval": st.fixed_dictionaries(
        {"type": st.just("eval"), "session_id": safe_ids, "code": texts, **_common()}
    ),
    "ask": st.fixed_dictionaries(
        {
            "type": st.just("ask"),
            "session_id": safe_ids,
            "text": texts,
            "internal_id": st.none() | safe_ids,
            "data": st.none() | json_objects,
            **_common(),
        }
    ),
    "query": st.fixed_dictionaries(
        {
            "type": st.just("query"),
            "query": st.sampled_from(protocol.QUERY_NAMES) | st.text(min_size=1, max_size=64),
            "session_id": st.none() | safe_ids,
            "data": st.none() | json_objects,
            **_common(),
        }
    ),
    "hook": st.fixed_dictionaries(
        {
            "type": st.just("hook"),
            "data": json_objects,
            "internal_id": st.none() | safe_ids,
            "env": st.none() | st.dictionaries(texts, texts, max_size=4),
            **_common(),
        }
    ),
    "statusline": st.fixed_dictionaries(
        {
            "type": st.just("statusline"),
            "data": json_objects,
            "env": st.none() | st.dictionaries(texts, texts, max_size=4),
            **_common(),
        }
    ),
    "response": st.fixed_dictionaries(
        {
            "type": st.just("response"),
            "session_id": st.none() | safe_ids,
            "data": json_values,
            "error": st.none() | texts,
            "status": st.none() | st.sampled_from(["delivered", "queued", "not_idle"]),
            **_common(),
        }
    ),
}


def test_every_message_type_has_a_strategy() -> None:
    assert set(MESSAGE_STRATEGIES) == set(protocol.MESSAGE_TYPES)


@pytest.mark.parametrize("kind", protocol.MESSAGE_TYPES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_valid_message_round_trips(kind: str, data: st.DataObject) -> None:
    fields = data.draw(MESSAGE_STRATEGIES[kind])
    msg = protocol.MESSAGE_ADAPTER.validate_python(fields)
    line = protocol.encode(msg)
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # one message, one line
    assert protocol.decode(line[:-1]) == msg
    # The daemon's own fast path (plain dicts) agrees with the model path.
    as_dict = protocol.encode_dict(msg.model_dump(exclude_none=True))
    assert protocol.decode(as_dict[:-1]) == msg
    # A framer fed the line byte by byte hands back exactly that line.
    framer = LineFramer()
    got = [ln for i in range(len(line)) for ln in framer.feed(line[i : i + 1])]
    assert got == [line[:-1]]


@settings(max_examples=100, deadline=None)
@given(obj=MESSAGE_STRATEGIES["prompt"], extra=json_objects)
def test_unknown_fields_are_ignored(obj: dict[str, Any], extra: dict[str, Any]) -> None:
    noisy = {
        **{
            k: v for k, v in extra.items() if k not in obj and k not in protocol.Prompt.model_fields
        },
        **obj,
    }
    line = json.dumps(noisy).encode()
    assert protocol.decode(line) == protocol.MESSAGE_ADAPTER.validate_python(obj)


# --- the framer -----------------------------------------------------------------------------

STREAM = b'{"type":"query"}\n\nsecond\r\n   \nthird line\n{"a":1}\npartial'
STREAM_LINES = [b'{"type":"query"}', b"second", b"third line", b'{"a":1}']


@pytest.mark.parametrize("split", range(len(STREAM) + 1))
def test_framer_at_every_split_point(split: int) -> None:
    framer = LineFramer(64)
    lines = framer.feed(STREAM[:split]) + framer.feed(STREAM[split:])
    assert lines == STREAM_LINES
    assert framer.pending == len(b"partial")
    assert framer.feed(b"\n") == [b"partial"]
    assert framer.pending == 0


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=10),
)
def test_framer_any_chunking_gives_the_same_lines(lines: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(ln + b"\n" for ln in lines)
    framer = LineFramer(64)
    got: list[bytes] = []
    start = 0
    for cut in sorted(c for c in cuts if c <= len(stream)) + [len(stream)]:
        got += framer.feed(stream[start:cut])
        start = cut
    expected = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]
    assert got == [ln for ln in expected if ln.strip()]
    assert framer.pending == 0


LIMIT = 32


@pytest.mark.parametrize("size", [LIMIT - 1, LIMIT])
@pytest.mark.parametrize("chunk", [1, 7, LIMIT + 1, 4096])
def test_framer_accepts_lines_up_to_the_limit(size: int, chunk: int) -> None:
    framer = LineFramer(LIMIT)
    stream = b"x" * size + b"\n" + b"y" * size + b"\n"
    got: list[bytes] = []
    for i in range(0, len(stream), chunk):
        got += framer.feed(stream[i : i + chunk])
    assert got == [b"x" * size, b"y" * size]
    assert framer.pending == 0


@pytest.mark.parametrize("chunk", [1, 7, LIMIT + 1, 4096])
def test_framer_refuses_one_byte_over_the_limit(chunk: int) -> None:
    framer = LineFramer(LIMIT)
    stream = b"ok\n" + b"x" * (LIMIT + 1) + b"\n"
    got: list[bytes] = []
    with pytest.raises(LineTooLong) as info:
        for i in range(0, len(stream), chunk):
            got += framer.feed(stream[i : i + chunk])
    assert got == [b"ok"] or chunk == 4096  # a single big chunk raises before returning "ok"
    assert f"{LIMIT}-byte limit" in str(info.value) and "closed" in str(info.value)
    assert framer.pending == 0  # the garbage is dropped, not kept in memory


def test_framer_refuses_an_unterminated_line_as_soon_as_it_passes_the_limit() -> None:
    framer = LineFramer(LIMIT)
    assert framer.feed(b"x" * LIMIT) == []  # exactly the limit, newline still to come: fine
    with pytest.raises(LineTooLong):
        framer.feed(b"x")  # one more byte without a newline: no need to wait for the rest


def test_default_limit_is_one_mib() -> None:
    assert protocol.MAX_LINE_BYTES == 1024 * 1024
    framer = LineFramer()
    assert framer.feed(b"x" * protocol.MAX_LINE_BYTES + b"\n") == [b"x" * protocol.MAX_LINE_BYTES]
    with pytest.raises(LineTooLong):
        framer.feed(b"x" * (protocol.MAX_LINE_BYTES + 1) + b"\n")


# --- bad input: each kind gets its own sentence -----------------------------------------------

DEEP = b'{"type":"query","query":"ping","data":' + b"[" * 100_000 + b"]" * 100_000 + b"}"

BAD_INPUTS: list[tuple[str, bytes, list[str]]] = [
    ("non-UTF-8", b'{"type":"query","query":"p\xffing"}', ["not valid UTF-8", "offset 26"]),
    ("invalid JSON", b'{"type":"query",', ["not valid JSON", "one JSON object per line"]),
    ("a JSON array", b"[1,2]", ["must be a JSON object", "list"]),
    ("JSON null", b"null", ["must be a JSON object", "null"]),
    ("a JSON string", b'"ping"', ["must be a JSON object", "str"]),
    ("no type", b'{"query":"ping"}', ['no "type" string', "register"]),
    ("a non-string type", b'{"type":7}', ['no "type" string']),
    ("unknown type", b'{"type":"bogus"}', ["unknown message type 'bogus'", "prompt"]),
    (
        "missing field",
        b'{"type":"prompt","session_id":"abcd1234"}',
        ['field "text" is required', "expected e.g."],
    ),
    (
        "wrong field type",
        b'{"type":"prompt","session_id":"abcd1234","text":5}',
        ['field "text"', "string"],
    ),
    (
        "wrong request_id type",
        b'{"type":"query","query":"ping","request_id":[1]}',
        ['field "request_id"'],
    ),
    (
        "unsafe id ../x",
        b'{"type":"prompt","session_id":"../x","text":"t"}',
        ["'../x' is not a plain id"],
    ),
    ("unsafe id a/b", b'{"type":"register","internal_id":"a/b"}', ["'a/b' is not a plain id"]),
    (
        "unsafe id NUL",
        b'{"type":"associate","internal_id":"i1","session_id":"a\\u0000b"}',
        ["is not a plain id"],
    ),
    (
        "unsafe id 1000 chars",
        b'{"type":"prompt","text":"t","session_id":"' + b"a" * 1000 + b'"}',
        ["not a plain id", "at most 128"],
    ),
    ("deep nesting", DEEP, ["nested too deeply"]),
    (
        "a huge integer",
        b'{"type":"query","query":"ping","timestamp":' + b"9" * 5000 + b"}",
        ["not valid JSON", "digits"],
    ),
    (
        "an empty command name",
        b'{"type":"command","session_id":"abcd1234","name":""}',
        ['field "name"'],
    ),
]


@pytest.mark.parametrize(
    ("raw", "needles"),
    [
        *[(r, n) for _, r, n in BAD_INPUTS],
        pytest.param(
            b'{"type":"query"}',
            ['field "query" is required'],
        ),
    ],
    ids=[*[k for k, _, _ in BAD_INPUTS], "missing query of a query"],
)
def test_each_bad_input_gets_a_clear_sentence(raw: bytes, needles: list[str]) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        protocol.decode(raw)
    text = str(info.value)
    for needle in needles:
        assert needle in text, text
    assert "\n" not in text and len(text) < 600  # one sentence, safe to send back on one line
    # And it is what the daemon puts on the wire: one response line with that error.
    wire = protocol.encode_dict(protocol.response(error=text))
    assert json.loads(wire) == {"type": "response", "error": text}


def test_request_id_survives_into_error_replies_when_usable() -> None:
    assert protocol.request_id_of({"request_id": "r1"}) == "r1"
    assert protocol.request_id_of({"request_id": 5}) is None
    assert protocol.request_id_of({"request_id": "x" * 257}) is None


def test_huge_and_non_finite_numbers_in_free_fields_are_accepted() -> None:
    for raw in (b"1e400", b"-1e400", b"NaN", b"9" * 4000):
        msg = protocol.decode(b'{"type":"query","query":"ping","timestamp":' + raw + b"}")
        assert isinstance(msg, protocol.Query)


# --- lone surrogates (issue 14 item 1) --------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "field"),
    [
        (
            rb'{"type":"statusline","data":{"workspace":{"current_dir":"/tmp/\ud800"}}}',
            "data.workspace.current_dir",
        ),
        (
            rb'{"type":"register","internal_id":"i1","claude_config_dir":"\udfff"}',
            "claude_config_dir",
        ),
        (rb'{"type":"heartbeat","internal_id":"i1","data":{"cwd":"x\uD800"}}', "data.cwd"),
        (rb'{"type":"hook","data":{"list":["ok","\ud800"]}}', "data.list.[1]"),
        (rb'{"type":"hook","data":{"\ud800":1}}', "data.\\ud800"),
    ],
)
def test_lone_surrogate_is_refused_naming_the_field(line: bytes, field: str) -> None:
    with pytest.raises(RemoteProtocolError) as exc:
        protocol.decode(line)
    text = str(exc.value)
    assert f'field "{field}"' in text and "surrogate" in text, text
    text.encode("utf-8")  # the error itself can be sent


def test_surrogate_pairs_and_escaped_backslashes_are_fine() -> None:
    msg = protocol.decode(rb'{"type":"prompt","session_id":"abcd","text":"\ud83d\ude00 \\ud800"}')
    assert isinstance(msg, protocol.Prompt)
    assert msg.text == "\U0001f600 \\ud800"


_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text())
_json = st.recursive(
    _json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(data=st.dictionaries(st.text(), _json, max_size=5))
@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=200)
def test_decoded_objects_are_always_encodable(data: dict[str, Any]) -> None:
    """Whatever JSON arrives (``st.text`` produces lone surrogates), what decode_object returns
    can be encoded as UTF-8 everywhere, or it was refused with a protocol error."""
    raw = json.dumps({"type": "hook", "data": data}).encode()  # ensure_ascii: \\udxxx escapes
    try:
        obj = protocol.decode_object(raw)
    except RemoteProtocolError as exc:
        assert "surrogate" in str(exc)
        return
    json.dumps(obj, ensure_ascii=False).encode("utf-8")
