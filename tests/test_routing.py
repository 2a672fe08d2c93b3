"""ccc_statusd.routing, pure: ``resolve_id`` (full id, prefix, ambiguous, too short, unknown),
every branch of ``decide``, and ``command_line``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccc_statusd.protocol import MIN_PREFIX_LEN
from ccc_statusd.routing import (
    Deliver,
    DeliverTmux,
    Queue,
    RoutingError,
    decide,
    resolve_id,
)
from ccc_statusd.sessions import BUSY, ENDED, FAILED, IDLE, UNKNOWN, WAITING, SessionInfo

KNOWN = {"abcd1234-0000", "abcd9999-0000", "ffff0000-1111"}

# --- resolve_id ----------------------------------------------------------------------------


def test_full_id_resolves_to_itself() -> None:
    assert resolve_id("abcd1234-0000", KNOWN) == "abcd1234-0000"


def test_full_id_wins_over_being_a_prefix_of_another() -> None:
    known = {"abcd", "abcd1234"}
    assert resolve_id("abcd", known) == "abcd"


def test_unique_prefix_resolves() -> None:
    assert resolve_id("ffff", KNOWN) == "ffff0000-1111"
    assert resolve_id("abcd1", KNOWN) == "abcd1234-0000"


def test_any_iterable_of_known_ids_works() -> None:
    assert resolve_id("ffff", sorted(KNOWN)) == "ffff0000-1111"
    assert resolve_id("ffff", iter(KNOWN)) == "ffff0000-1111"


def test_ambiguous_prefix_names_the_matches() -> None:
    with pytest.raises(RoutingError, match="ambiguous") as exc:
        resolve_id("abcd", KNOWN)
    assert "abcd1234-0000" in str(exc.value) and "abcd9999-0000" in str(exc.value)
    assert "more characters" in str(exc.value)


def test_ambiguous_prefix_shows_at_most_ten() -> None:
    known = {f"abcd{i:04d}" for i in range(15)}
    with pytest.raises(RoutingError) as exc:
        resolve_id("abcd", known)
    msg = str(exc.value)
    assert msg.count("abcd0") == 10 and msg.endswith("more characters")
    assert "…" in msg


def test_too_short_prefix_is_refused_even_when_unique() -> None:
    short = "f" * (MIN_PREFIX_LEN - 1)
    with pytest.raises(RoutingError, match="too short") as exc:
        resolve_id(short, KNOWN)
    assert f"at least {MIN_PREFIX_LEN} characters" in str(exc.value)
    assert "ccc sessions" in str(exc.value)


def test_short_full_id_is_still_found() -> None:
    assert resolve_id("ab", {"ab", "abcd"}) == "ab"


def test_unknown_prefix() -> None:
    with pytest.raises(RoutingError, match="no session matches") as exc:
        resolve_id("0000", KNOWN)
    assert "ccc sessions" in str(exc.value)


def test_nothing_known() -> None:
    with pytest.raises(RoutingError, match="no session matches"):
        resolve_id("abcd", set())


@given(st.sets(st.text("abcdef0123456789", min_size=1, max_size=8), max_size=20), st.data())
def test_resolve_id_is_a_unique_prefix_or_an_error(known: set[str], data: st.DataObject) -> None:
    target = data.draw(st.text("abcdef0123456789", max_size=9))
    try:
        got = resolve_id(target, known)
    except RoutingError:
        matches = [k for k in known if k.startswith(target)]
        assert target not in known
        assert len(target) < MIN_PREFIX_LEN or len(matches) != 1
    else:
        assert got in known
        assert got == target or (
            len(target) >= MIN_PREFIX_LEN and [k for k in known if k.startswith(target)] == [got]
        )


# --- decide --------------------------------------------------------------------------------


def info(state: str = IDLE, *, tmux_pane: str | None = None) -> SessionInfo:
    return SessionInfo(key="iid-1", session_id="sess-1", state=state, tmux_pane=tmux_pane)


@pytest.mark.parametrize("kind", ["prompt", "command", "eval"])
def test_known_but_not_live_is_an_error(kind: str) -> None:
    with pytest.raises(RoutingError, match="is not running") as exc:
        decide(kind, None, "sess-1", client_connected=False)
    assert "ccc run -- claude" in str(exc.value)


@pytest.mark.parametrize("kind", ["prompt", "command", "eval"])
@pytest.mark.parametrize("connected", [True, False])
def test_ended_session_is_an_error(kind: str, connected: bool) -> None:
    with pytest.raises(RoutingError, match="ended"):
        decide(kind, info(ENDED, tmux_pane="%1"), "sess-1", client_connected=connected)


@pytest.mark.parametrize("kind", ["prompt", "command"])
@pytest.mark.parametrize(("state", "why"), [(BUSY, "busy"), (WAITING, "waiting for its user")])
def test_busy_or_waiting_queues(kind: str, state: str, why: str) -> None:
    for connected, pane in [(True, None), (False, "%1"), (True, "%1")]:
        route = decide(kind, info(state, tmux_pane=pane), "sess-1", client_connected=connected)
        assert isinstance(route, Queue) and why in route.reason
        assert route.retry_s is None  # a hook decides when it may go


@pytest.mark.parametrize("kind", ["prompt", "command"])
@pytest.mark.parametrize("state", [IDLE, FAILED])
def test_settling_queues_with_a_retry_time(kind: str, state: str) -> None:
    route = decide(kind, info(state), "sess-1", client_connected=True, settling_s=0.7)
    assert route == Queue(
        "a message was just delivered to this session; it waits for that turn", retry_s=0.7
    )
    route = decide(kind, info(state, tmux_pane="%2"), "s", client_connected=False, settling_s=1)
    assert isinstance(route, Queue) and route.retry_s == 1


def test_settling_does_not_hold_a_session_without_hooks() -> None:
    # UNKNOWN: no hooks tell when a turn began, so no settle window applies.
    route = decide("prompt", info(UNKNOWN), "sess-1", client_connected=True, settling_s=5)
    assert route == Deliver("iid-1")


@pytest.mark.parametrize("state", [IDLE, FAILED, UNKNOWN])
def test_connected_idle_delivers_to_the_client(state: str) -> None:
    assert decide("prompt", info(state), "sess-1", client_connected=True) == Deliver("iid-1")
    # the client wins over the pane
    assert decide(
        "command", info(state, tmux_pane="%3"), "sess-1", client_connected=True
    ) == Deliver("iid-1")


@pytest.mark.parametrize("state", [IDLE, BUSY, WAITING, UNKNOWN])
def test_eval_is_never_queued(state: str) -> None:
    route = decide("eval", info(state), "sess-1", client_connected=True, settling_s=3)
    assert route == Deliver("iid-1")


@pytest.mark.parametrize("pane", [None, "%4"])
def test_eval_needs_a_client(pane: str | None) -> None:
    with pytest.raises(RoutingError, match="cannot evaluate code") as exc:
        decide("eval", info(IDLE, tmux_pane=pane), "sess-1", client_connected=False)
    assert "ccc run --inject -- claude" in str(exc.value)


@pytest.mark.parametrize("kind", ["prompt", "command"])
@pytest.mark.parametrize("state", [IDLE, FAILED, UNKNOWN])
def test_adopted_tmux_session_is_typed_into_its_pane(kind: str, state: str) -> None:
    route = decide(kind, info(state, tmux_pane="%7"), "sess-1", client_connected=False)
    assert route == DeliverTmux("%7")


@pytest.mark.parametrize("state", [IDLE, BUSY, WAITING, UNKNOWN])
def test_no_client_and_no_pane_is_an_error(state: str) -> None:
    # Not even busy queues: nothing could ever deliver it.
    with pytest.raises(RoutingError, match="not in a tmux pane") as exc:
        decide("prompt", info(state), "sess-1", client_connected=False)
    assert "ccc run -- claude" in str(exc.value)


# --- command_line (session.keys: the one builder of a typed command line) -------------------


@pytest.mark.parametrize(
    ("name", "args", "line"),
    [
        ("compact", None, "/compact"),
        ("compact", "", "/compact"),
        ("/compact", None, "/compact"),
        ("//compact", None, "/compact"),
        ("model", "opus", "/model opus"),
        ("/model", "opus now", "/model opus now"),
    ],
)
def test_command_line(name: str, args: str | None, line: str) -> None:
    from ccc_statusd.paste import command_line

    assert command_line(name, args) == line
