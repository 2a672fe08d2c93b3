"""A hypothesis state machine of the protocol against a live daemon (SPEC §4, §8).

The daemon runs for real on its own thread (``ThreadedDaemon``); the machine drives it through
blocking Unix sockets: session clients register, associate, heartbeat and vanish; senders route
prompts, commands and evals to them (answered, refused, or abandoned mid-request), send
malformed lines, pipeline pings and run queries. A small model mirrors the seed's two maps
(which internal id each session id routes to, and each session's current id and aliases).

Invariants after every step: each request got exactly one reply, in order (every reply is
matched by ``request_id``); ``active_sessions`` is the model's connected set with the model's
ids; the registry's maps are consistent and equal to the model's; the daemon's open fds and
Trio tasks are its baseline plus two per open connection (no leaks).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ccc_statusd.config import DaemonConfig
from ccc_statusd.paths import Paths

from .helpers import wait_until_sync
from .test_bad_input import BlockingClient, ThreadedDaemon, fd_count, short_cache_dir

RUNS = itertools.count(1)
POOL = 4  # internal ids and session ids per run: small, so they collide and move around
SETTLE_S = 3.0  # how long the daemon may take to notice a closed connection (it is ~instant)

BAD_LINES = [
    b"{\n",
    b"\xff\xfe\n",
    b'{"type":"nope"}\n',
    b'{"type":"prompt","session_id":"../x","text":"t"}\n',
    b'{"type":"prompt","session_id":"abcd1234"}\n',
    b"[1,2]\n",
    b'{"type":"heartbeat","internal_id":"not-mine-0001"}\n',
]


def wait_until(check: Callable[[], bool], what: Callable[[], str]) -> None:
    wait_until_sync(check, limit_s=SETTLE_S, interval_s=0.002, what=what)


def quiet_fd_count() -> int:
    """The fd count without the daemon's short-lived ones (a cache file being written by the
    metadata flusher's thread): the least seen over a few milliseconds."""
    return min(fd_count() for _ in range(25) if time.sleep(0.002) is None)


class ProtocolMachine(RuleBasedStateMachine):
    def __init__(self, daemon: ThreadedDaemon) -> None:
        super().__init__()
        self.d = daemon
        self.run = next(RUNS)
        self.rids = itertools.count(1)
        self.conns: dict[str, BlockingClient] = {}  # internal id → its live session client
        # The model of the registry: session id → key, and each key's current id and aliases.
        self.owner: dict[str, str] = {}
        self.current: dict[str, str | None] = {}
        self.aliases: dict[str, list[str]] = {}
        self.ever: set[str] = set()
        wait_until(
            lambda: self._daemon_conns() == 0,
            lambda: "connections of an earlier run are still open",
        )
        self.base_fds = quiet_fd_count()
        self.base_tasks = self.d.task_count()
        self.sender = BlockingClient(self.d.socket_path)

    # --- naming and model helpers -------------------------------------------------------------

    def iid(self, k: int) -> str:
        return f"r{self.run}-iid-{k}"

    def sid(self, k: int) -> str:
        return f"r{self.run}-sess-{k}"

    def rid(self) -> str:
        return f"q{next(self.rids)}"

    def _daemon_conns(self) -> int:
        hub = self.d.hub
        assert hub is not None and hub.server is not None
        return int(self.d.call(lambda: len(hub.server.conns)))  # type: ignore[union-attr]

    def _claim(self, key: str, sid: str) -> None:
        """registry.associate: ``sid`` becomes ``key``'s current id; it leaves its old owner."""
        self.current.setdefault(key, None)
        self.aliases.setdefault(key, [])
        old = self.owner.get(sid)
        if old is not None and old != key:
            self._detach(old, sid)
        self.owner[sid] = key
        self.ever.add(sid)
        prev = self.current[key]
        if prev == sid:
            return
        if prev is not None and prev not in self.aliases[key]:
            self.aliases[key].append(prev)
        if sid in self.aliases[key]:
            self.aliases[key].remove(sid)
        self.current[key] = sid

    def _detach(self, key: str, sid: str) -> None:
        if key not in self.current:
            return
        if self.current[key] == sid:
            self.current[key] = self.aliases[key].pop() if self.aliases[key] else None
        elif sid in self.aliases[key]:
            self.aliases[key].remove(sid)
        if self.current[key] is None and key not in self.conns:
            self._forget(key)

    def _forget(self, key: str) -> None:
        ids = [*self.aliases.pop(key, []), self.current.pop(key, None)]
        for sid in ids:
            if sid is not None and self.owner.get(sid) == key:
                del self.owner[sid]

    def _gone(self, key: str) -> None:
        """hub.on_disconnect: unmapped, and forgotten (with every id it had) once persisted by
        the next metadata flush; its ids stay known (they resolve, but nothing answers)."""
        self.conns.pop(key).close()
        self._forget(key)

    # --- session clients ----------------------------------------------------------------------

    @rule(k=st.integers(0, POOL - 1), s=st.none() | st.integers(0, POOL - 1))
    def register(self, k: int, s: int | None) -> None:
        key = self.iid(k)
        old = self.conns.pop(key, None)
        c = BlockingClient(self.d.socket_path)
        rid = self.rid()
        msg: dict[str, Any] = {"type": "register", "internal_id": key, "request_id": rid}
        if s is not None:
            msg["session_id"] = self.sid(s)
        reply = c.request(msg)
        assert reply.get("error") is None and reply["request_id"] == rid, reply
        if old is not None:
            # SPEC §4.6: the older connection is told why, then closed.
            last = old.read_to_eof()
            assert len(last) == 1 and "replaced" in last[0]["error"], last
            old.close()
        if s is not None:
            holder = self.owner.get(self.sid(s))
            if holder is not None and holder != key and holder in self.conns:
                # SPEC §4.6: a session id held by another live client is taken over; that
                # client is told why and closed.
                last = self.conns[holder].read_to_eof()
                assert any("replaced" in (m.get("error") or "") for m in last), last
                self._gone(holder)
        self.conns[key] = c
        self.current.setdefault(key, None)
        self.aliases.setdefault(key, [])
        if s is not None:
            self._claim(key, self.sid(s))
        assert reply.get("session_id") == self.current[key], (reply, self.current[key])

    @precondition(lambda self: self.conns)
    @rule(data=st.data(), s=st.integers(0, POOL - 1))
    def associate(self, data: st.DataObject, s: int) -> None:
        key = data.draw(st.sampled_from(sorted(self.conns)))
        rid = self.rid()
        reply = self.conns[key].request(
            {"type": "associate", "internal_id": key, "session_id": self.sid(s), "request_id": rid}
        )
        assert reply.get("error") is None and reply["request_id"] == rid, reply
        self._claim(key, self.sid(s))
        assert reply["session_id"] == self.sid(s)

    @precondition(lambda self: self.conns)
    @rule(data=st.data(), s=st.none() | st.integers(0, POOL - 1))
    def heartbeat(self, data: st.DataObject, s: int | None) -> None:
        key = data.draw(st.sampled_from(sorted(self.conns)))
        rid = self.rid()
        msg: dict[str, Any] = {"type": "heartbeat", "internal_id": key, "request_id": rid}
        if s is not None:
            msg["session_id"] = self.sid(s)
        reply = self.conns[key].request(msg)
        assert reply == {"type": "response", "request_id": rid}, reply
        if s is not None and self.sid(s) != self.current.get(key):
            self._claim(key, self.sid(s))

    @precondition(lambda self: self.conns)
    @rule(data=st.data())
    def associate_from_another_connection(self, data: st.DataObject) -> None:
        """SPEC §4.6: the seed's hooks send ``associate`` from their own process."""
        key = data.draw(st.sampled_from(sorted(self.conns)))
        rid = self.rid()
        reply = self.sender.request(
            {"type": "associate", "internal_id": key, "session_id": self.sid(0), "request_id": rid}
        )
        assert reply.get("error") is None and reply["request_id"] == rid, reply
        self._claim(key, self.sid(0))

    @rule()
    def associate_an_unregistered_client(self) -> None:
        rid = self.rid()
        reply = self.sender.request(
            {
                "type": "associate",
                "internal_id": f"r{self.run}-nobody",
                "session_id": self.sid(0),
                "request_id": rid,
            }
        )
        assert "is not registered" in reply["error"] and reply["request_id"] == rid

    @precondition(lambda self: self.conns)
    @rule(data=st.data())
    def disconnect(self, data: st.DataObject) -> None:
        self._gone(data.draw(st.sampled_from(sorted(self.conns))))

    # --- senders ------------------------------------------------------------------------------

    @rule(
        kind=st.sampled_from(["prompt", "command", "eval"]),
        to=st.integers(0, POOL),  # POOL itself stands for an id nobody ever had
        outcome=st.sampled_from(["ok", "error", "vanish"]),
    )
    def route(self, kind: str, to: int, outcome: str) -> None:
        sid = self.sid(to) if to < POOL else f"r{self.run}-nobody"
        rid = self.rid()
        msg: dict[str, Any] = {"type": kind, "session_id": sid, "request_id": rid}
        msg.update(
            {
                "prompt": {"text": f"hello {rid}\nline two"},
                "command": {"name": "/compact", "text": rid},
                "eval": {"code": f"'{rid}'"},
            }[kind]
        )
        self.sender.send(msg)
        key = self.owner.get(sid)
        if sid not in self.ever:
            expect = "no session matches"
        elif key is None:
            expect = "is not running"
        elif key not in self.conns:
            expect = "cannot evaluate code" if kind == "eval" else "not connected to the daemon"
        else:
            session = self.conns[key]
            routed = session.recv()
            assert (
                routed["type"] == kind and routed["session_id"] == sid and routed["request_id"]
            ), routed
            body = {
                "prompt": ("text", msg.get("text")),
                "command": ("name", "compact"),
                "eval": ("code", msg.get("code")),
            }[kind]
            assert routed[body[0]] == body[1], routed
            if outcome == "ok":
                session.send(
                    {"type": "response", "request_id": routed["request_id"], "data": {"echo": rid}}
                )
                reply = self.sender.recv()
                assert reply == {
                    "type": "response",
                    "request_id": rid,
                    "session_id": sid,
                    "status": "delivered" if kind == "eval" else "typed",
                    "data": {"echo": rid},
                }, reply
                return
            if outcome == "error":
                session.send(
                    {"type": "response", "request_id": routed["request_id"], "error": "no thanks"}
                )
                expect = "answered with an error: no thanks"
            else:
                self._gone(key)
                expect = "disconnected before confirming"
        reply = self.sender.recv()
        assert reply["request_id"] == rid and expect in reply.get("error", ""), (expect, reply)

    @rule(data=st.data(), line=st.sampled_from(BAD_LINES))
    def malformed(self, data: st.DataObject, line: bytes) -> None:
        who = data.draw(st.sampled_from(["sender", *sorted(self.conns)]))
        c = self.sender if who == "sender" else self.conns[who]
        reply = c.request(line)
        assert reply["type"] == "response" and reply["error"], reply

    @rule(
        name=st.sampled_from(
            ["ping", "status", "active_sessions", "active_connections", "list_sessions"]
        )
    )
    def query(self, name: str) -> None:
        rid = self.rid()
        reply = self.sender.request({"type": "query", "query": name, "request_id": rid})
        assert reply.get("error") is None and reply["request_id"] == rid and "data" in reply, reply

    @rule(n=st.integers(1, 40))
    def pipelined(self, n: int) -> None:
        rids = [self.rid() for _ in range(n)]
        self.sender.send(
            b"".join(
                b'{"type":"query","query":"ping","request_id":"%s"}\n' % r.encode() for r in rids
            )
        )
        assert [self.sender.recv()["request_id"] for _ in rids] == rids

    # --- invariants ---------------------------------------------------------------------------

    def _open(self) -> int:
        return 1 + len(self.conns)

    @invariant()
    def invariants(self) -> None:
        # In this order: the daemon must have seen the model's disconnects before the rest.
        self.connections_and_resources_match()
        self.active_sessions_are_the_connected_set()
        self.maps_are_consistent_and_match_the_model()

    def connections_and_resources_match(self) -> None:
        want = self._open()
        wait_until(
            lambda: self._daemon_conns() == want,
            lambda: f"daemon has {self._daemon_conns()} connections, model {want}",
        )
        # Each open connection is one fd here and one in the daemon (same process), and one
        # daemon task once its writes are done (the writer exists only while writing);
        # nothing else may stay behind.
        wait_until(
            lambda: fd_count() == self.base_fds + 2 * want,
            lambda: f"{fd_count()} fds, expected {self.base_fds} + 2 × {want}",
        )
        wait_until(
            lambda: self.d.task_count() == self.base_tasks + want,
            lambda: f"{self.d.task_count()} tasks, expected {self.base_tasks} + {want}",
        )

    def active_sessions_are_the_connected_set(self) -> None:
        rid = self.rid()
        reply = self.sender.request(
            {"type": "query", "query": "active_sessions", "request_id": rid}
        )
        assert reply["request_id"] == rid
        got = {s["internal_id"]: s.get("session_id") for s in reply["data"]}
        assert got == {k: self.current.get(k) for k in self.conns}, (got, self.current)

    def maps_are_consistent_and_match_the_model(self) -> None:
        hub = self.d.hub
        assert hub is not None and hub.server is not None

        def snapshot() -> tuple[dict[str, str], dict[str, tuple[str | None, list[str]]], set[str]]:
            hub.registry.check_consistent()
            mine = f"r{self.run}-"
            s2i = {s: k for s, k in hub.registry.session_to_internal.items() if s.startswith(mine)}
            infos = {
                k: (i.session_id, list(i.aliases))
                for k, i in hub.registry.sessions.items()
                if k.startswith(mine)
            }
            clients = {k for k in hub.clients.by_key if k.startswith(mine)}  # type: ignore[union-attr]
            return s2i, infos, clients

        self.d.run(hub.flush_metadata)  # what the flusher does within 250 ms, now
        s2i, infos, clients = self.d.call(snapshot)
        assert s2i == self.owner
        assert infos == {k: (self.current[k], self.aliases[k]) for k in self.current}
        assert clients == set(self.conns)

    def teardown(self) -> None:
        try:
            # Nothing stray is waiting on any connection: the next line is the answer to this.
            for c in [self.sender, *self.conns.values()]:
                assert (
                    c.request({"type": "query", "query": "ping", "request_id": "last"})[
                        "request_id"
                    ]
                    == "last"
                )
        finally:
            for c in [self.sender, *self.conns.values()]:
                c.close()
        self.conns.clear()
        wait_until(
            lambda: self._daemon_conns() == 0, lambda: "connections left open after teardown"
        )
        wait_until(
            lambda: fd_count() == self.base_fds,
            lambda: f"fd leak: {fd_count()} open, baseline {self.base_fds}",
        )
        wait_until(lambda: self.d.task_count() == self.base_tasks, lambda: "task leak")
        self.d.check_alive()


@pytest.fixture(scope="module")
def live() -> Iterator[ThreadedDaemon]:
    import shutil

    d = short_cache_dir()
    cfg = DaemonConfig(
        paths=Paths(d), enable_watchers=False, allow_eval=True, request_timeout_s=5.0
    )
    try:
        with ThreadedDaemon(cfg) as daemon:
            yield daemon
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_protocol_state_machine(live: ThreadedDaemon) -> None:
    run_state_machine_as_test(
        lambda: ProtocolMachine(live),
        settings=settings(
            max_examples=30,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    live.check_alive()
    assert live.errors.messages() == []
