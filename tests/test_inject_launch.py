"""`ccc run --inject` (ccc_statusd/session/inject_launch.py) against the real daemon in-process:
the pty host runs on a real pty with a real child, and the injection (inject.cjs under real
`node`, in tests/node_standin.js) registers under the pty host's internal id.

Checked: the injection registers and the pty host stays off the socket (eval returns a value
and an error, a prompt is pushed into the child's stdin); a child that does not load it (`cat`)
gets the pty host's own link after the wait, and prompts still work; an injection that dies is
replaced by the pty link after the grace period; a late injection takes the session over from
the pty link once, without a tug of war. Plus the option quoting that Node and Bun each accept.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from ccc_statusd import hookcmd
from ccc_statusd.config import DaemonConfig
from ccc_statusd.hub import Hub
from ccc_statusd.paths import Paths
from ccc_statusd.session.inject_launch import bun_option, inject_env, inject_script, node_option

from .helpers import wait_until
from .session_fakes import REPO, STEP_TIMEOUT_S, Terminal, read_records, stop_process

SENT = ("typed", "submitted")  # a prompt or command the session client typed

NODE = shutil.which("node")
STANDIN = REPO / "tests" / "node_standin.js"
PY_STANDIN = REPO / "tests" / "standin_tui.py"  # no Node: the injection never loads
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")


@pytest.fixture
def config(paths: Paths) -> DaemonConfig:
    return DaemonConfig(
        paths=paths,
        enable_watchers=False,
        request_timeout_s=5.0,
        scheduler_retry_s=0.2,
        allow_eval=True,
    )


class Run:
    """One `python -m ccc_statusd.session.pty_host --inject ...` on a pty the test holds."""

    def __init__(
        self, term: Terminal, proc: trio.Process, iid: str, cache_dir: Path, record: Path
    ) -> None:
        self.term = term
        self.proc = proc
        self.iid = iid
        self.log = cache_dir / f"run-{iid}.log"
        self.record = record

    def log_text(self) -> str:
        try:
            return self.log.read_text()
        except OSError:
            return ""

    async def wait_log(self, text: str) -> None:
        await wait_until(
            lambda: text in self.log_text(), limit_s=STEP_TIMEOUT_S, what=f"the log says {text!r}"
        )

    async def wait_record(self, pred: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((row for row in read_records(self.record) if pred(row)), None)

        row: dict[str, Any] = await wait_until(found, limit_s=STEP_TIMEOUT_S)
        return row


_count = iter(range(1, 10**6))


@pytest.fixture
async def ccc_run(nursery: trio.Nursery, paths: Paths) -> AsyncIterator[Callable[..., Any]]:
    runs: list[Run] = []

    async def start(
        child: list[str], *, wait_s: float = 5.0, grace_s: float = 15.0, quiet_s: float = 0.2
    ) -> Run:
        term = Terminal()
        term.set_size(24, 80)
        iid = f"inj-{os.getpid()}-{next(_count)}"
        record = paths.cache_dir / f"record-{iid}.jsonl"
        cmd = [sys.executable, "-m", "ccc_statusd.session.pty_host", "--cache-dir", str(paths.cache_dir),
               "--internal-id", iid, "--log", str(paths.cache_dir / f"run-{iid}.log"), "--quiet", str(quiet_s),
               "--typing-grace", "0.3", "--delivery-guard", "0.3", "--screen-settle", "0.05", "--inject", "--inject-wait", str(wait_s),
               "--inject-grace", str(grace_s), "--", *[a.replace("{record}", str(record)) for a in child]]  # fmt: skip
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CCC_", "NODE_OPTIONS", "BUN_OPTIONS"))
        }
        env["CCC_INJECT_TARGET"] = "node_standin.js"  # the stand-in is not cli.js
        env["CCC_INJECT_HEARTBEAT_MS"] = "500"
        proc = await trio.lowlevel.open_process(cmd, stdin=term.slave, stdout=term.slave, stderr=term.slave,
                                                start_new_session=True, cwd=str(REPO), env=env)  # fmt: skip
        nursery.start_soon(term.pump)
        run = Run(term, proc, iid, paths.cache_dir, record)
        runs.append(run)
        return run

    yield start
    for r in runs:
        await stop_process(r.proc)
        r.term.close()


def holder(hub: Hub, iid: str) -> str | None:
    """The kind of client holding ``iid`` on the daemon now ("inject", "pty"), or None."""
    assert hub.server is not None
    if iid not in hub.clients.by_key:
        return None
    info = hub.registry.sessions.get(iid)
    return info.kind if info else None


async def wait_holder(hub: Hub, iid: str, kind: str, timeout_s: float = STEP_TIMEOUT_S) -> None:
    await wait_until(
        lambda: holder(hub, iid) == kind, limit_s=timeout_s, what=f"{iid} is held by {kind}"
    )


async def associate(paths: Paths, iid: str, sid: str) -> None:
    """Run `ccc hook` (its real code) for a SessionStart of session ``sid`` in client ``iid``:
    it tells the daemon, and writes the id where the pty host finds it for its registrations."""
    payload = {
        "hook_event_name": "SessionStart",
        "session_id": sid,
        "cwd": str(REPO),
        "source": "startup",
    }
    env = {"CCC_INTERNAL_ID": iid, "CCC_CACHE_DIR": str(paths.cache_dir)}
    await trio.to_thread.run_sync(hookcmd.main, io.BytesIO(json.dumps(payload).encode()), env)


async def send(connect: Any, msg: dict[str, Any]) -> dict[str, Any]:
    client = await connect()
    reply: dict[str, Any] = await client.request(msg)
    return reply


# --- the environment ------------------------------------------------------------------------


def test_env_loads_the_real_script_for_both_runtimes_and_keeps_user_options(tmp_path: Path) -> None:
    env = inject_env({"NODE_OPTIONS": "--max-old-space-size=512", "PATH": "/bin"}, socket_path="/tmp/s.sock",
                     internal_id="abc", debug_log=tmp_path / "run.log")  # fmt: skip
    real = str(inject_script())
    assert Path(real).is_file() and real == os.path.realpath(real)
    assert env["NODE_OPTIONS"] == f"--max-old-space-size=512 --require={real}"
    assert env["BUN_OPTIONS"] == f"--preload={real}"
    assert (env["CCC_SOCKET"], env["CCC_INTERNAL_ID"], env["PATH"]) == (
        "/tmp/s.sock",
        "abc",
        "/bin",
    )
    assert env["CCC_INJECT_DEBUG"] == str(tmp_path / "run.log")
    # Twice (a nested `ccc run --inject`): loaded once.
    again = inject_env(env, socket_path="/tmp/s.sock", internal_id="abc")
    assert (
        again["NODE_OPTIONS"] == env["NODE_OPTIONS"] and again["BUN_OPTIONS"] == env["BUN_OPTIONS"]
    )


def test_options_quote_paths_with_spaces_the_way_each_runtime_reads_them() -> None:
    assert node_option("/a b/inject.cjs") == '--require="/a b/inject.cjs"'
    assert (
        bun_option("/a b/inject.cjs") == "--preload /a\\ b/inject.cjs"
    )  # Bun takes quotes literally


@needs_node
def test_node_loads_a_preload_whose_path_has_a_space(cache_dir: Path) -> None:
    script = cache_dir / "dir with space" / "pre.cjs"
    script.parent.mkdir()
    script.write_text("process.stdout.write('LOADED ');\n")
    env = dict(os.environ, NODE_OPTIONS=f"--no-warnings {node_option(str(script))}")
    out = subprocess.run([NODE, "-e", "process.stdout.write('main')"], env=env, capture_output=True,  # type: ignore[list-item]
                         text=True, timeout=30)  # fmt: skip
    assert out.stdout == "LOADED main", out.stderr


def test_missing_script_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="reinstall"):
        inject_env({}, socket_path="/s", internal_id="x", script=tmp_path / "nope.cjs")


# --- with the real daemon -------------------------------------------------------------------


@needs_node
async def test_injection_registers_and_answers_eval_and_prompts(
    daemon: Hub, connect: Any, ccc_run: Any, paths: Paths
) -> None:
    run: Run = await ccc_run([NODE, str(STANDIN), "{record}"])
    ready = await run.wait_record(lambda r: r.get("ready"))
    await wait_holder(daemon, run.iid, "inject")
    await associate(paths, run.iid, "sess-inject-1")
    sessions = await send(connect, {"type": "query", "query": "list_sessions"})
    rec = next(s for s in sessions["data"] if s.get("internal_id") == run.iid)
    assert rec["kind"] == "inject" and rec["connected"] is True

    reply = await send(
        connect, {"type": "eval", "session_id": "sess-inject-1", "code": "process.pid"}
    )
    assert reply.get("error") is None, reply
    assert reply["data"]["result"] == ready["pid"]  # evaluated inside the child, not the pty host
    reply = await send(
        connect, {"type": "eval", "session_id": "sess-inject-1", "code": "null.boom"}
    )
    assert "TypeError" in reply["error"], reply

    # The injection forwards the prompt to the pty host, which checks the screen and types it.
    reply = await send(
        connect, {"type": "prompt", "session_id": "sess-inject-1", "text": "through the host"}
    )
    assert reply.get("error") is None and reply["status"] == "submitted", reply
    assert reply["data"] == {"delivered_via": "pty", "confirmed": True}
    await run.wait_record(lambda r: "through the host" in r.get("text", ""))
    # The pty host waited, saw the injection, and never registered itself.
    await run.wait_log("standing by")
    assert "registered (connection" not in run.log_text()
    assert holder(daemon, run.iid) == "inject"


@needs_node
async def test_injection_never_types_over_a_draft(
    daemon: Hub, connect: Any, ccc_run: Any, paths: Paths
) -> None:
    """Issue 15: the sender was told "queued", then ~1 s later the injection typed anyway. Now
    the host's screen check holds it until the user clears the draft, then it arrives once."""
    run: Run = await ccc_run([NODE, str(STANDIN), "{record}"])
    await run.wait_record(lambda r: r.get("ready"))
    await wait_holder(daemon, run.iid, "inject")
    await associate(paths, run.iid, "sess-draft-1")
    await run.term.type(b"my draft")
    await run.wait_record(lambda r: "my draft" in r.get("text", ""))
    await trio.sleep(0.4)  # past the typing grace: the draft on screen alone must hold it
    reply = await send(
        connect, {"type": "prompt", "session_id": "sess-draft-1", "text": "routed prompt"}
    )
    assert reply["status"] == "queued", reply
    assert "draft" in reply["data"]["reason"], reply
    await trio.sleep(1.5)
    texts = "".join(r.get("text", "") for r in read_records(run.record))
    assert "routed prompt" not in texts  # not typed, not merged
    await run.term.type(b"\x15")  # the user clears the draft
    await run.wait_record(lambda r: "routed prompt" in r.get("text", ""))
    await trio.sleep(1.0)
    texts = "".join(r.get("text", "") for r in read_records(run.record))
    assert texts.count("routed prompt") == 1 and "my draftrouted" not in texts


async def test_child_without_the_injection_gets_the_pty_link_and_prompts_work(
    daemon: Hub, connect: Any, ccc_run: Any, paths: Paths
) -> None:
    run: Run = await ccc_run([sys.executable, str(PY_STANDIN), "--record", "{record}"], wait_s=0.5)
    await wait_holder(daemon, run.iid, "pty")
    assert "did not register within 0.5 s" in run.log_text()
    assert b"did not register" not in bytes(run.term.output)  # the log never reaches the terminal
    await associate(paths, run.iid, "sess-cat-1")
    sessions = await send(connect, {"type": "query", "query": "list_sessions"})
    assert next(s for s in sessions["data"] if s.get("internal_id") == run.iid)["kind"] == "pty"

    reply = await send(
        connect, {"type": "prompt", "session_id": "sess-cat-1", "text": "typed by the pty"}
    )
    assert reply.get("error") is None and reply["status"] in SENT, reply
    assert reply["data"]["delivered_via"] == "pty"
    await run.term.wait_output(b"typed by the pty")
    reply = await send(connect, {"type": "eval", "session_id": "sess-cat-1", "code": "1"})
    assert "ccc run --inject" in reply["error"]


@needs_node
async def test_pty_link_takes_over_when_the_injection_is_gone_for_the_grace_period(
    daemon: Hub, connect: Any, ccc_run: Any, paths: Paths
) -> None:
    # No quiet-terminal wait after the takeover (test_session_pty covers that rule): the prompt
    # must be typed by the pty link at once.
    run: Run = await ccc_run([NODE, str(STANDIN), "{record}"], grace_s=0.5, quiet_s=0.0)
    await wait_holder(daemon, run.iid, "inject")
    await run.wait_log("standing by")  # the pty host has seen it (else it just times out its wait)
    await associate(paths, run.iid, "sess-gone-1")
    # Make the injection unable to reconnect, then drop its connection: it is gone for good.
    code = "require('net').createConnection = () => { throw new Error('disabled by the test') }; 1"
    reply = await send(connect, {"type": "eval", "session_id": "sess-gone-1", "code": code})
    assert reply.get("error") is None, reply
    assert daemon.server is not None
    daemon.clients.by_key[run.iid].close("test: the injection goes away")
    await wait_holder(daemon, run.iid, "pty")
    assert "takes over" in run.log_text()
    reply = await send(
        connect, {"type": "prompt", "session_id": "sess-gone-1", "text": "after takeover"}
    )
    assert reply.get("error") is None and reply["status"] in SENT, reply
    assert reply["data"]["delivered_via"] == "pty"


@needs_node
async def test_late_injection_takes_the_session_over_once(
    daemon: Hub, connect: Any, ccc_run: Any, paths: Paths
) -> None:
    # The child loads the injection only after the pty host stopped waiting.
    run: Run = await ccc_run(["sh", "-c", f"sleep 1; exec {NODE} {STANDIN} {{record}}"], wait_s=0.3)
    await wait_holder(daemon, run.iid, "pty")
    await wait_holder(daemon, run.iid, "inject")
    await associate(paths, run.iid, "sess-late-1")
    # A tug of war would show as the pty link registering again while the injection keeps
    # heartbeating (every 0.5 s here): let three heartbeats pass.
    beats: set[float] = set()

    def three_heartbeats() -> bool:
        info = daemon.registry.sessions.get(run.iid)
        if info is not None and info.last_heartbeat_trio is not None:
            beats.add(info.last_heartbeat_trio)
        return len(beats) >= 3

    await wait_until(three_heartbeats, limit_s=STEP_TIMEOUT_S)
    assert holder(daemon, run.iid) == "inject"
    assert run.log_text().count("registered (connection") == 1, run.log_text()
    assert "holds the session again; standing by" in run.log_text()
    reply = await send(
        connect, {"type": "eval", "session_id": "sess-late-1", "code": "process.argv[1]"}
    )
    assert reply.get("error") is None and reply["data"]["result"].endswith("node_standin.js"), reply
