"""ccc_statusd.sessions, pure: the SessionRegistry (associate, aliases after /clear, ids moving
between keys, forget, detach), ``set_state``, ``state_after_hook``, ``hook_session_key`` and
``SessionInfo.to_public``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccc_statusd.sessions import (
    BUSY,
    ENDED,
    FAILED,
    IDLE,
    UNKNOWN,
    WAITING,
    DeliveryRecord,
    SessionInfo,
    SessionRegistry,
    hook_session_key,
    state_after_hook,
)

from .fixtures import VERSIONS, fixture_path

# --- associate / aliases -------------------------------------------------------------------


def test_associate_makes_a_session_under_the_key() -> None:
    reg = SessionRegistry()
    info, replaced = reg.associate("iid-1", "s1")
    assert replaced is None
    assert info.key == "iid-1" and info.session_id == "s1" and info.aliases == []
    assert reg.by_session_id("s1") is info
    assert reg.known_ids() == {"s1"}
    reg.check_consistent()


def test_associate_same_id_twice_changes_nothing() -> None:
    reg = SessionRegistry()
    reg.associate("iid-1", "s1")
    info, replaced = reg.associate("iid-1", "s1")
    assert replaced is None and info.aliases == [] and info.session_id == "s1"
    reg.check_consistent()


def test_clear_keeps_the_old_id_as_an_alias_that_still_routes() -> None:
    reg = SessionRegistry()
    reg.associate("iid-1", "s1")
    info, replaced = reg.associate("iid-1", "s2")  # /clear: a new id for the same process
    assert replaced == "s1"
    assert info.session_id == "s2" and info.aliases == ["s1"]
    assert info.all_ids == ["s1", "s2"]
    assert reg.by_session_id("s1") is info and reg.by_session_id("s2") is info
    reg.check_consistent()


def test_returning_to_an_alias_makes_it_current_again() -> None:
    reg = SessionRegistry()
    reg.associate("iid-1", "s1")
    reg.associate("iid-1", "s2")
    info, replaced = reg.associate("iid-1", "s1")  # /resume of the earlier conversation
    assert replaced == "s2"
    assert info.session_id == "s1" and info.aliases == ["s2"]
    reg.check_consistent()


def test_an_id_claimed_by_another_key_moves_there() -> None:
    reg = SessionRegistry()
    adopted, _ = reg.associate("pid-42", "s1")
    attached, _ = reg.associate("iid-9", "s1")  # the adopted session is now attached
    assert reg.by_session_id("s1") is attached
    # the old holder had nothing else and no connection: it is gone
    assert "pid-42" not in reg.sessions
    assert adopted.session_id is None
    reg.check_consistent()


def test_a_connected_holder_stays_after_losing_its_id() -> None:
    reg = SessionRegistry()
    old = reg.ensure("iid-old", connected=True)
    reg.associate("iid-old", "s1")
    reg.associate("iid-new", "s1")
    assert reg.sessions["iid-old"] is old and old.session_id is None
    assert reg.by_session_id("s1") is reg.sessions["iid-new"]
    reg.check_consistent()


def test_losing_the_current_id_falls_back_to_the_newest_alias() -> None:
    reg = SessionRegistry()
    reg.associate("iid-1", "s1")
    reg.associate("iid-1", "s2")
    reg.associate("iid-2", "s2")
    one = reg.sessions["iid-1"]
    assert one.session_id == "s1" and one.aliases == []
    assert reg.by_session_id("s1") is one
    reg.check_consistent()


def test_an_alias_claimed_elsewhere_leaves_the_alias_list() -> None:
    reg = SessionRegistry()
    reg.associate("iid-1", "s1")
    reg.associate("iid-1", "s2")
    reg.associate("iid-2", "s1")
    assert reg.sessions["iid-1"].aliases == [] and reg.sessions["iid-1"].session_id == "s2"
    assert reg.by_session_id("s1") is reg.sessions["iid-2"]
    reg.check_consistent()


def test_ensure_sets_only_given_attributes() -> None:
    reg = SessionRegistry()
    info = reg.ensure("iid-1", kind="pty", pid=7, cwd=None)
    assert (info.kind, info.pid, info.cwd) == ("pty", 7, None)
    again = reg.ensure("iid-1", cwd="/w", pid=None)
    assert again is info and (info.pid, info.cwd) == (7, "/w")


def test_forget_drops_the_session_and_all_its_ids() -> None:
    reg = SessionRegistry()
    reg.associate("iid-1", "s1")
    reg.associate("iid-1", "s2")
    reg.associate("iid-2", "s3")
    gone = reg.forget("iid-1")
    assert gone is not None and gone.all_ids == ["s1", "s2"]
    assert reg.known_ids() == {"s3"}
    assert reg.by_session_id("s1") is None and reg.by_session_id("s2") is None
    assert reg.forget("iid-1") is None
    reg.check_consistent()


def test_lookups_of_unknown_ids() -> None:
    reg = SessionRegistry()
    assert reg.by_session_id("nope") is None
    assert reg.known_ids() == set()


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["associate", "forget", "connect"]),
            st.sampled_from(["iid-1", "iid-2", "pid-3"]),
            st.sampled_from(["s1", "s2", "s3", "s4"]),
        ),
        max_size=30,
    )
)
def test_the_maps_always_agree(ops: list[tuple[str, str, str]]) -> None:
    reg = SessionRegistry()
    for op, key, sid in ops:
        if op == "associate":
            info, _ = reg.associate(key, sid)
            assert reg.by_session_id(sid) is info and info.session_id == sid
        elif op == "forget":
            reg.forget(key)
            assert key not in reg.sessions
        else:
            reg.ensure(key, connected=True)
        reg.check_consistent()
        for info in reg.sessions.values():
            assert len(set(info.all_ids)) == len(info.all_ids)


# --- set_state -----------------------------------------------------------------------------


def test_set_state_reports_changes_and_stamps_them() -> None:
    reg = SessionRegistry()
    info = reg.ensure("iid-1")
    assert info.state == UNKNOWN
    assert reg.set_state(info, BUSY, now=10.0) is True
    assert info.state_changed_wall == 10.0
    assert reg.set_state(info, BUSY, now=20.0) is False
    assert info.state_changed_wall == 10.0


def test_failed_keeps_its_error_and_a_new_error_is_a_change() -> None:
    reg = SessionRegistry()
    info = reg.ensure("iid-1")
    assert reg.set_state(info, FAILED, 1.0, error="rate limited")
    assert info.state_error == "rate limited"
    assert reg.set_state(info, FAILED, 2.0, error="rate limited") is False
    assert reg.set_state(info, FAILED, 3.0, error="overloaded") is True
    assert info.state_changed_wall == 3.0
    assert reg.set_state(info, IDLE, 4.0, error="ignored") is True
    assert info.state_error is None


# --- state_after_hook ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "payload", "state"),
    [
        ("SessionStart", {"source": "startup"}, IDLE),
        ("SessionStart", {"source": "clear"}, IDLE),
        ("Stop", {}, IDLE),
        ("UserPromptSubmit", {"prompt": "hi"}, BUSY),
        ("PreToolUse", {}, BUSY),
        ("PostToolUse", {}, BUSY),
        ("PreCompact", {}, BUSY),
        ("PermissionRequest", {}, WAITING),
        ("Notification", {"notification_type": "permission_prompt"}, WAITING),
        ("Notification", {"notification_type": "elicitation_dialog"}, WAITING),
        ("Notification", {"notification_type": "idle_prompt"}, None),
        ("Notification", {}, None),
        ("StopFailure", {"error": "x"}, FAILED),
        ("SessionEnd", {"reason": "clear"}, ENDED),
        ("SessionEnd", {"reason": "prompt_input_exit"}, ENDED),
        ("SubagentStop", {}, None),
        ("NoSuchEvent", {}, None),
        ("", {}, None),
    ],
)
def test_state_after_hook(event: str, payload: dict[str, Any], state: str | None) -> None:
    assert state_after_hook(event, payload) == state


@pytest.mark.parametrize("version", VERSIONS)
def test_state_after_each_captured_hook(version: str) -> None:
    expected = {
        "SessionStart": IDLE,
        "Stop": IDLE,
        "UserPromptSubmit": BUSY,
        "PreToolUse": BUSY,
        "PostToolUse": BUSY,
        "PreCompact": BUSY,
        "SessionEnd": ENDED,
        "SubagentStop": None,
    }
    seen = set()
    for path in sorted(fixture_path("hooks-Stop.json", version).parent.glob("hooks-*.json")):
        payload = json.loads(path.read_text())
        event = payload["hook_event_name"]
        seen.add(event)
        if event == "Notification":
            want = WAITING if payload["notification_type"] == "permission_prompt" else None
        else:
            want = expected[event]
        assert state_after_hook(event, payload) == want, path.name
    assert {"SessionStart", "Stop", "UserPromptSubmit", "Notification"} <= seen


# --- hook_session_key ----------------------------------------------------------------------


def test_hook_key_prefers_the_given_internal_id() -> None:
    env = {"CCC_INTERNAL_ID": "from-env", "CLAUDE_PID": "77"}
    assert hook_session_key({"session_id": "s"}, env, "given-1") == "given-1"


def test_hook_key_from_the_environment() -> None:
    assert hook_session_key({}, {"CCC_INTERNAL_ID": "iid-7"}, None) == "iid-7"


@pytest.mark.parametrize("bad", ["../etc", "", "-x", "a/b", "x" * 200])
def test_unsafe_internal_id_falls_through_to_the_pid(bad: str) -> None:
    env = {"CCC_INTERNAL_ID": bad, "CLAUDE_PID": "4242"}
    assert hook_session_key({}, env, None) == "pid-4242"
    assert hook_session_key({}, {"CLAUDE_PID": "4242"}, bad) == "pid-4242"


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"CLAUDE_PID": "10", "PPID_PARENT": "20", "PPID": "30"}, "pid-10"),
        ({"PPID_PARENT": "20", "PPID": "30"}, "pid-20"),
        ({"PPID": "30"}, "pid-30"),
        ({"CLAUDE_PID": "1", "PPID": "30"}, "pid-30"),  # init is nobody's Claude
        ({"CLAUDE_PID": "0", "PPID_PARENT": "x", "PPID": "-5"}, "sid-abc"),
        ({"CLAUDE_PID": " 12"}, "sid-abc"),
        ({}, "sid-abc"),
    ],
)
def test_hook_key_from_process_ids(env: dict[str, str], key: str) -> None:
    assert hook_session_key({"session_id": "abc"}, env, None) == key


@pytest.mark.parametrize("sid", [None, 5, "", "../x", "a b"])
def test_no_usable_key_at_all(sid: object) -> None:
    assert hook_session_key({"session_id": sid}, {}, None) is None


# --- SessionInfo.to_public ------------------------------------------------------------------


def test_to_public_leaves_out_unset_fields() -> None:
    info = SessionInfo(key="k", session_id="s1", state=IDLE, context={"used": 1})
    out = info.to_public()
    assert out == {
        "session_id": "s1",
        "aliases": [],
        "kind": "adopted",
        "connected": False,
        "state": IDLE,
        "context_window": {"used": 1},
    }


def test_to_public_shows_the_last_delivery_first_line() -> None:
    info = SessionInfo(key="k", session_id="s1")
    info.deliveries = [
        DeliveryRecord("old", 1.0, True),
        DeliveryRecord("  line one\nline two", 2.0, False),
    ]
    assert info.to_public()["last_delivery"] == {"text": "line one", "at": 2.0, "submitted": False}
    info.deliveries = [DeliveryRecord("   ", 3.0, True)]
    assert info.to_public()["last_delivery"]["text"] == ""
