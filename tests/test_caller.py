"""peers: who is calling, the sender header, name resolution, the per-caller send limit."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccc_statusd.caller import (
    DEFAULT_ASK_HEADER,
    DEFAULT_PROMPT_HEADER,
    Caller,
    RateLimited,
    RateLimiter,
    TokenBucket,
    ancestors,
    find_caller,
    find_row,
    name_header,
    parent_pid,
    resolve_name,
    sender_header,
)

A = "16c0e150-1111-4382-8647-f94b8f7faaf3"
B = "2b2b2b2b-2222-4382-8647-f94b8f7faaf3"
ROWS = [
    {"session_id": A, "internal_id": "iid-a", "pid": 100, "state": "idle", "connected": True},
    {"session_id": B, "pid": 200, "state": "busy", "name": "api", "aliases": ["old-b-id"]},
]


def test_caller_by_internal_id_first() -> None:
    c = find_caller(ROWS, {"CCC_INTERNAL_ID": "iid-a", "CLAUDE_CODE_SESSION_ID": B}, [200])
    assert c.session_id == A and c.how == "internal_id" and c.is_row(ROWS[0])


def test_caller_by_nearest_ancestor_pid() -> None:
    c = find_caller(ROWS, {}, [999, 200, 100])
    assert c.session_id == B and c.name == "api" and c.how == "pid"
    assert c.who == f"api · {B[:8]}"


def test_ended_rows_are_not_matched_by_pid() -> None:
    rows = [{**ROWS[1], "state": "ended"}]
    assert not find_caller(rows, {}, [200]).known


def test_caller_by_claude_session_env_then_unknown() -> None:
    c = find_caller(ROWS, {"CLAUDE_CODE_SESSION_ID": "old-b-id"}, [])
    assert c.session_id == B and c.how == "env"
    # Not in any row yet (no hook so far): still known by its ids.
    c = find_caller([], {"CCC_INTERNAL_ID": "iid-new"}, [])
    assert c.known and c.internal_id == "iid-new" and c.asker_fields() == {"internal_id": "iid-new"}
    assert not find_caller(ROWS, {}, [1234]).known
    assert find_caller(ROWS, {}, []).who == "an unidentified session"


def test_asker_fields_carry_both_ids() -> None:
    c = find_caller(ROWS, {"CCC_INTERNAL_ID": "iid-a"}, [])
    assert c.asker_fields() == {"internal_id": "iid-a", "session_id": A}


def test_ancestors_walks_up_and_stops() -> None:
    tree = {50: 40, 40: 30, 30: 1}
    assert ancestors(50, parent=tree.get) == [50, 40, 30]
    assert ancestors(50, depth=2, parent=tree.get) == [50, 40]
    loop = {7: 8, 8: 7}
    assert ancestors(7, parent=loop.get) == [7, 8]
    assert parent_pid(os.getpid()) == os.getppid()
    assert parent_pid(2**22 + 12345) is None  # no such process


def test_names_and_rows() -> None:
    assert resolve_name("api", ROWS) == B
    assert resolve_name(" 16c0 ", ROWS) == "16c0"  # ids and prefixes: the daemon resolves them
    assert find_row("api", ROWS) is ROWS[1]
    assert find_row("old-b-id", ROWS) is ROWS[1]
    assert find_row(A[:6], ROWS) is ROWS[0]
    assert find_row("16c", ROWS) is None  # prefixes need 4 characters
    assert find_row("", ROWS) is None


def test_sender_header() -> None:
    c = find_caller(ROWS, {}, [200])
    assert sender_header(DEFAULT_PROMPT_HEADER, c).startswith(f"[from api · {B[:8]} via ccc;")
    assert f"session {B[:8]}]" in sender_header(DEFAULT_PROMPT_HEADER, c)
    assert sender_header(DEFAULT_ASK_HEADER, c).endswith("returned to it]\n")
    assert sender_header("", c) == ""
    assert sender_header("<{name}|{id}|{unknown}> ", c) == f"<api|{B[:8]}|{{unknown}}> "
    assert sender_header("{0} {", c) == "{0} {"  # a broken template is used as written
    assert sender_header("[{who}] ", Caller()) == "[an unidentified session] "
    unknown = sender_header(DEFAULT_PROMPT_HEADER, Caller())
    assert unknown == "[from an unidentified session via ccc]\n"
    assert name_header(" ci-bot ") == "[from ci-bot via ccc]\n"


@given(st.text(max_size=80))
def test_any_template_gives_a_string(template: str) -> None:
    assert isinstance(sender_header(template, find_caller(ROWS, {}, [100])), str)


def test_token_bucket_on_a_fake_clock() -> None:
    now = [0.0]
    bucket = TokenBucket(per_minute=6, capacity=2, clock=lambda: now[0])
    bucket.take()
    bucket.take()
    with pytest.raises(RateLimited, match=r"wait 10 s"):
        bucket.take()
    now[0] = 10.0  # one token back (6 a minute = one per 10 s)
    bucket.take()
    with pytest.raises(RateLimited):
        bucket.take()
    now[0] = 1000.0  # never more than the capacity
    bucket.take()
    bucket.take()
    with pytest.raises(RateLimited):
        bucket.take()
    with pytest.raises(ValueError):
        TokenBucket(per_minute=0, capacity=1, clock=lambda: 0.0)


def test_rate_limiter_keeps_one_budget_per_caller() -> None:
    limiter = RateLimiter(per_minute=1, capacity=1, clock=lambda: 0.0)
    limiter.take("a")
    limiter.take("b")
    with pytest.raises(RateLimited, match="rate limit"):
        limiter.take("a")
