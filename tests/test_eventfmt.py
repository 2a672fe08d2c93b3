"""Event lines: one label per session, no raw JSON, no repeats, honest states."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from ccc_statusd.eventfmt import EventFormatter, ago, pct, scalar

SID = "6656f299-72c7-4382-8647-f94b8f7faaf3"
NEW = "0bf7fcec-6527-4470-9385-92271deedb9b"


def ev(event: str, /, **fields: Any) -> dict[str, Any]:
    return {"type": "event", "event": event, "time": 1_700_000_000.0, **fields}


def facts(fmt: EventFormatter, events: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        f = fmt.fact(e)
        if f is not None:
            out.append(f"{f[0]} {f[1]}")
    return out


def test_one_label_per_session_even_before_association() -> None:
    fmt = EventFormatter()
    got = facts(
        fmt,
        [
            ev("connected", key="iid-1", internal_id="iid-1", kind="pty"),
            ev("associated", session_id=SID, key="iid-1", internal_id="iid-1"),
            ev("state", session_id=SID, key="iid-1", internal_id="iid-1", state="idle"),
            ev("disconnected", key="iid-1", internal_id="iid-1"),
        ],
    )
    assert got == [
        "client iid-1 client connected (pty)",
        "6656f299 new session",
        "6656f299 is idle",
        "6656f299 client disconnected",
    ]


def test_names_from_list_sessions_and_events_win() -> None:
    fmt = EventFormatter([{"session_id": SID, "internal_id": "iid-1", "name": "api"}])
    assert facts(fmt, [ev("state", key="iid-1", internal_id="iid-1", state="busy")]) == [
        "api is busy"
    ]
    assert facts(fmt, [ev("state", session_id=SID, state="idle", name="web")]) == ["web is idle"]


def test_no_raw_json() -> None:
    fmt = EventFormatter()
    got = facts(
        fmt,
        [
            ev("branch", session_id=SID, branch="main"),
            ev("pane_gone", session_id=SID, pane="%3"),
            ev("mystery", session_id=SID, extra={"a": 1}, flag=True),
        ],
    )
    assert got == [
        "6656f299 branch → main",
        "6656f299 tmux pane %3 is gone",
        "6656f299 mystery: extra a 1, flag yes",
    ]
    assert not any("{" in line or '"' in line for line in got)


def test_repeated_facts_are_dropped() -> None:
    fmt = EventFormatter()
    got = facts(
        fmt,
        [
            ev("context", session_id=SID, used_percentage=3.0),
            ev("hook", session_id=SID, hook="PreToolUse", payload={"tool_name": "Bash"}),
            ev("context", session_id=SID, used_percentage=3.0),
            ev("context", session_id=SID, used_percentage=3.0),
            ev("context", session_id=NEW, used_percentage=3.0),  # another session: said
            ev("hook", session_id=SID, hook="SessionEnd", payload={"reason": "exit"}),
            ev("hook", session_id=SID, hook="SessionEnd", payload={"reason": "exit"}),
            ev("context", session_id=SID, used_percentage=4.5),
        ],
    )
    assert got == [
        "6656f299 context 3% used",
        "6656f299 hook PreToolUse Bash",
        "0bf7fcec context 3% used",
        "6656f299 hook SessionEnd exit",
        "6656f299 context 4.5% used",
    ]


def test_two_tool_calls_are_two_lines() -> None:
    fmt = EventFormatter()
    pre = {"tool_name": "Bash"}
    got = facts(
        fmt,
        [
            ev("hook", session_id=SID, hook="PreToolUse", payload={**pre, "tool_use_id": "1"}),
            ev("hook", session_id=SID, hook="PreToolUse", payload={**pre, "tool_use_id": "2"}),
        ],
    )
    assert len(got) == 2


def test_hook_folded_into_its_state_line() -> None:
    fmt = EventFormatter()
    got = facts(
        fmt,
        [
            ev("state", session_id=SID, state="idle", hook="Stop"),
            ev("hook", session_id=SID, hook="Stop", payload={}),
            ev("state", session_id=SID, state="waiting", hook="Notification"),
            ev(
                "hook",
                session_id=SID,
                hook="Notification",
                payload={"notification_type": "permission_prompt"},
            ),
        ],
    )
    assert got == [
        "6656f299 is idle after Stop",
        "6656f299 is waiting for its user after Notification",
    ]


def test_clear_is_not_busy_after_session_end() -> None:
    fmt = EventFormatter()
    got = facts(
        fmt,
        [
            ev("state", session_id=SID, key="iid-1", state="busy", hook="SessionEnd"),
            ev("associated", session_id=NEW, key="iid-1", previous=SID),
            ev("state", session_id=NEW, key="iid-1", state="idle", hook="SessionStart"),
        ],
    )
    assert got[0] == "6656f299 cleared (/clear): a new session id follows"
    assert "busy" not in got[0]
    assert got[1] == f"0bf7fcec is now session {NEW} (was 6656f299)"


def test_delivery_states_are_honest_in_either_order() -> None:
    fmt = EventFormatter()
    got = facts(
        fmt,
        [
            ev("delivered", session_id=SID, kind="prompt", text="run the tests"),
            ev("submitted", session_id=SID, text="run the tests"),
            # the hook overtook the delivery's acknowledgement (adopted sessions)
            ev("submitted", session_id=NEW, text="hi"),
            ev("delivered", session_id=NEW, kind="prompt", text="hi"),
        ],
    )
    assert got == [
        "6656f299 prompt delivered: run the tests",
        "6656f299 prompt submitted: run the tests",
        "0bf7fcec prompt delivered and submitted: hi",
    ]


def test_every_kind_has_a_sentence() -> None:
    fmt = EventFormatter()
    for e in [
        ev("queued", session_id=SID, id="m1", reason="busy", text="a\nb"),
        ev("scheduled_fired", session_id=SID, id="m1", status="delivered"),
        ev("scheduled_failed", session_id=SID, id="m2", attempts=2, error="no client"),
        ev("state", session_id=SID, state="failed", error="rate limit", hook="StopFailure"),
        ev("state", session_id=SID, state="idle", hook="transcript"),
        ev("ping"),
    ]:
        line = fmt.line(e)
        assert line is not None and "{" not in line, e
    assert fmt.line(ev("state", session_id=SID, state="idle", hook="transcript")) is None


def test_control_characters_never_reach_the_terminal() -> None:
    fmt = EventFormatter()
    line = fmt.line(ev("queued", session_id=SID, id="m", text="\x1b[2Jwipe", reason="a\nb"))
    assert line is not None and "\x1b" not in line and "\n" not in line


def test_colour_and_helpers() -> None:
    fmt = EventFormatter()
    line = fmt.line(ev("state", session_id=SID, state="busy"), colour=True)
    assert line is not None and "\x1b[33mbusy\x1b[0m" in line
    assert fmt.fact({"type": "response"}) is None
    assert pct(41.25) == "41.2%" and pct(None) == "?%" and pct(True) == "?%"
    assert scalar([1, "a"]) == "1, a" and scalar(None) == "-"
    assert ago(30) == "30s" and ago(3700) == "1h01m" and ago(90000) == "1d1h"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "type",
                "event",
                "time",
                "session_id",
                "key",
                "internal_id",
                "name",
                "state",
                "hook",
                "payload",
                "text",
                "id",
                "previous",
                "used_percentage",
                "branch",
                "kind",
            ]
        ),
        _json,
    )
)
@example({"event": "x", "time": float("nan"), "session_id": "abcd"})
@example({"event": "x", "time": 1e300, "session_id": "abcd", "state": float("inf")})
@example({"event": "queued", "time": 1, "session_id": "abcd", "id": [1], "text": {"a": 1}})
def test_any_event_dict_formats_without_raising(event: dict[str, Any]) -> None:
    from ccc_statusd.board import Board

    fmt = EventFormatter([{"session_id": 3}, event])
    line = fmt.line(event)
    assert line is None or not any(ord(c) < 0x20 or ord(c) == 0x7F for c in line)
    Board().apply(event)
