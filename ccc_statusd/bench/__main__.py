"""``python -m ccc_statusd.bench [--quick] [--json PATH]``: run the benchmark, print one table.

Theory of operation: the real daemon (``ccc-statusd --cache-dir <short /tmp dir>
--no-watchers``) and the baselines run as subprocesses; this process is the Trio load
generator. Each phase measures ours and its baseline back to back (same machine, same minute),
and each row of the table is: figure, ours, baseline, ratio, target, pass/fail. The machine is
shared and noisy, so only the ratios mean anything; absolute targets (ms, MiB) are the issue's.
The last phase (``index.py``) starts its own daemon with watchers on, over a generated history.

Every phase is bounded in count and time; the whole run stays under ~5 minutes (``--quick``:
under 60 s). The exit status is 0 whenever the table was produced: figures are for people,
thresholds live in the pass/fail column (CI runs ``--quick`` as a smoke test).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import trio

from . import coldstart, index, load, screencheck
from . import top as top_bench

STARTUP_DEADLINE_S = 10.0  # a target that does not accept within this is reported, not awaited
SETTLE_DEADLINE_S = 10.0  # how long we wait for fds/connections to return to baseline
WARMUP_S = 0.5


@dataclass(frozen=True)
class Size:
    name: str
    startups: int  # exec → accepting, per target
    single_s: float  # 1 sender, per target
    load_s: float  # 10×10 and 100 senders, per target
    newconn_s: float
    max_requests: int  # per load run
    idle_n: int
    idle_probe_s: float
    churn_workers: int
    churn_s: float
    storm_sessions: int
    storm_s: float
    mute_sessions: int
    mute_timeout_s: float
    cli_runs: int
    index_files: int  # generated transcripts for the index phase
    index_mb: int  # their total size, MB


FULL = Size(
    "full", 5, 5.0, 5.0, 3.0, 2_000_000, 10_000, 3.0, 20, 10.0, 100, 10.0, 10, 2.0, 30, 1000, 200
)
QUICK = Size("quick", 2, 1.5, 1.5, 1.0, 500_000, 1_000, 1.0, 20, 2.0, 100, 2.0, 5, 1.0, 20, 200, 20)


# --- the table -----------------------------------------------------------------------------


@dataclass
class Row:
    figure: str
    ours: str
    baseline: str = "—"
    ratio: float | None = None
    target: str = "info"
    result: str = "info"  # pass, FAIL, n/a, info
    details: dict[str, Any] = field(default_factory=dict)


def judge(ok: bool | None) -> str:
    return "n/a" if ok is None else ("pass" if ok else "FAIL")


def fmt_ms(x: float) -> str:
    return (
        "nan"
        if math.isnan(x)
        else f"{x:.2f} ms"
        if x < 10
        else f"{x:.1f} ms"
        if x < 100
        else f"{x:.0f} ms"
    )


def ratio(a: float, b: float) -> float | None:
    if b == 0 or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def print_table(rows: list[Row], out: Any = sys.stdout) -> None:
    headers = ("figure", "ours", "baseline", "ratio", "target", "pass/fail")
    cells = [
        (
            r.figure,
            r.ours,
            r.baseline,
            "—" if r.ratio is None else f"{r.ratio:.2f}×",
            r.target,
            r.result,
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    print(line, file=out)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|", file=out)
    for c in cells:
        print(
            "| " + " | ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)) + " |", file=out
        )


# --- target processes ----------------------------------------------------------------------


class Target:
    """A process under test (the daemon or a baseline) listening on a Unix socket."""

    def __init__(
        self,
        name: str,
        cmd: list[str],
        socket_path: str,
        log_path: str,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.cmd = cmd
        self.socket = socket_path
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> float:
        """Start the process; seconds from exec to the socket accepting a connection."""
        # Blocking open/Popen on purpose: nothing else runs yet, and the clock must start at exec.
        with open(self.log_path, "ab") as log:  # noqa: ASYNC230
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(  # noqa: ASYNC220
                self.cmd, stdout=log, stderr=log, env=self.env, start_new_session=True
            )
        deadline = t0 + STARTUP_DEADLINE_S
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.socket)
                elapsed = time.perf_counter() - t0
                return elapsed
            except OSError:
                pass
            finally:
                s.close()
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} at start-up; see {self.log_path}"
                )
            if time.perf_counter() > deadline:
                raise RuntimeError(
                    f"{self.name} did not accept within {STARTUP_DEADLINE_S:g} s; see {self.log_path}"
                )
            await trio.sleep(0.0005)

    async def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        with trio.move_on_after(5):
            while self.proc.poll() is None:  # noqa: ASYNC110 - a Popen has nothing to await
                await trio.sleep(0.01)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def sample(self) -> load.ProcSample:
        return load.proc_sample(self.pid)


async def query(path: str, name: str) -> dict[str, Any]:
    c = await load.LineConn.open(path)
    try:
        with trio.fail_after(5):
            reply = await c.request({"type": "query", "query": name})
    finally:
        await c.aclose()
    return reply.get("data") or {}


# --- the run -------------------------------------------------------------------------------


@dataclass
class Run:
    size: Size
    root: Path
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(
            f"  {row.figure}: {row.ours} (baseline {row.baseline}) → {row.result}",
            file=sys.stderr,
            flush=True,
        )


def daemon_target(cache_dir: Path, timeout_s: float) -> Target:
    cache_dir.mkdir(mode=0o700, exist_ok=True)
    env = dict(os.environ)
    # Asks the daemon to expose loop stats in `status` (see the report for the hook); a daemon
    # without the hook ignores it and the stall row says n/a.
    env["CCC_BENCH_INSTRUMENT"] = "1"
    cmd = [
        str(coldstart.venv_bin() / "ccc-statusd"),
        "--cache-dir",
        str(cache_dir),
        "--no-watchers",
        "--request-timeout",
        f"{timeout_s:g}",
        # The load generator is one process holding up to 10,000 connections.
        "--max-per-peer",
        "100000",
    ]
    return Target(
        "ccc-statusd", cmd, str(cache_dir / "daemon.sock"), str(cache_dir / "bench-stderr.log"), env
    )


def baseline_target(root: Path, kind: str) -> Target:
    cmd = [
        str(coldstart.venv_bin() / "python"),
        "-m",
        "ccc_statusd.bench.baselines",
        kind,
        str(root / f"{kind}.sock"),
    ]
    return Target(kind, cmd, str(root / f"{kind}.sock"), str(root / f"{kind}.log"))


def pingpong_client(path: str, duration_s: float, max_requests: int) -> load.Stats:
    """Blocking one-line echo round trips, in a worker thread: the raw socket floor."""
    stats = load.Stats()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    line = b'{"type":"query","query":"ping","request_id":"1"}\n'
    start = time.perf_counter()
    end = start + duration_s
    try:
        for _ in range(max_requests):
            t0 = time.perf_counter()
            if t0 > end:
                break
            s.sendall(line)
            got = b""
            while not got.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    raise EOFError("ping-pong server closed")
                got += chunk
            stats.ok(time.perf_counter() - t0)
    finally:
        s.close()
    stats.elapsed_s = time.perf_counter() - start
    return stats


async def measured(target: Target, fn: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``await fn()``; also return the target's CPU seconds spent meanwhile."""
    before = target.sample().cpu_s
    result = await fn()
    return result, target.sample().cpu_s - before


async def bench(size: Size, root: Path) -> Run:
    run = Run(size, root)
    timeout_s = size.mute_timeout_s
    dcache = root / "d"
    daemon = daemon_target(dcache, timeout_s)
    relay = baseline_target(root, "relay")
    pingpong = baseline_target(root, "pingpong")
    try:
        await _startup(run, daemon, relay)
        await _routing(run, daemon, relay, pingpong)
        await _daemon_only(run, daemon)
    finally:
        for t in (daemon, relay, pingpong):
            await t.stop()
    await _index(run)
    await _remote(run)
    await _top(run)
    for row in screencheck.screen_rows(size.name == "quick"):  # issue 15: the screen check
        run.add(Row(**row))
    return run


async def _remote(run: Run) -> None:
    """``ccc --host`` next to local, over a loopback sshd (bench/remote.py; n/a without one)."""
    from . import remote

    runs = 3 if run.size.name == "quick" else 10  # each remote call costs a login: keep it short
    rows = await trio.to_thread.run_sync(remote.measure, run.root, runs)
    for row in rows:
        run.add(Row(**row))


async def _top(run: Run) -> None:
    """`ccc top`'s CPU, idle and while 100 sessions change state (top.py)."""
    seconds = 2.0 if run.size.name == "quick" else 5.0
    rows = await trio.to_thread.run_sync(
        partial(top_bench.run_top_bench, run.root, idle_s=seconds, churn_s=seconds)
    )
    for row in rows:
        run.add(Row(**row))


async def _index(run: Run) -> None:
    """Initial transcript index and list-after-restart over a generated history (index.py)."""
    size = run.size
    root = run.root / "ix"
    root.mkdir()
    try:
        result = await index.run_index_bench(
            root,
            size.index_files,
            size.index_mb * index.MB,
            index_deadline_s=max(30.0, size.index_mb * 0.5),  # gives up below 2 MB/s
            restart_deadline_s=max(3.0, size.index_files * 0.015),
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)  # the history: up to a few hundred MB
    for row in index.index_rows(result):
        run.add(Row(**row))


async def _startup(run: Run, daemon: Target, relay: Target) -> None:
    size = run.size
    d_times, r_times = [], []
    for _ in range(size.startups):
        d_times.append(await daemon.start())
        r_times.append(await relay.start())
        await daemon.stop()
        await relay.stop()
    d_ms, r_ms = statistics.median(d_times) * 1000, statistics.median(r_times) * 1000
    run.add(
        Row(
            f"idle daemon: exec → socket accepting (median of {size.startups})",
            fmt_ms(d_ms),
            f"{fmt_ms(r_ms)} (Trio relay)",
            ratio(d_ms, r_ms),
            "≤ 300 ms",
            judge(d_ms <= 300),
            {"daemon_ms": [t * 1000 for t in d_times], "relay_ms": [t * 1000 for t in r_times]},
        )
    )
    await daemon.start()
    await relay.start()
    await query(daemon.socket, "ping")
    await trio.sleep(0.5)
    d_rss, r_rss = daemon.sample().rss_kib, relay.sample().rss_kib
    bare_rss = await trio.to_thread.run_sync(bare_python_rss_kib)
    run.add(
        Row(
            "idle daemon: RSS",
            f"{d_rss / 1024:.1f} MiB",
            f"{r_rss / 1024:.1f} MiB (Trio relay)",
            ratio(d_rss, r_rss),
            "≤ 40 MiB",
            judge(d_rss <= 40 * 1024),
        )
    )
    run.add(
        Row(
            "idle daemon: RSS vs a bare interpreter",
            f"{d_rss / 1024:.1f} MiB",
            f"{bare_rss / 1024:.1f} MiB (python -c, sleeping)",
            ratio(d_rss, bare_rss),
            "info",
            "info",
        )
    )


def bare_python_rss_kib() -> int:
    """RSS of the bench's interpreter doing nothing (``python -c 'import time; time.sleep()'``)."""
    proc = subprocess.Popen(
        [str(coldstart.venv_bin() / "python"), "-c", "import sys, time; print(); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # started: the interpreter is up and idle
        return load.proc_sample(proc.pid).rss_kib
    finally:
        proc.kill()
        proc.wait()


SESSIONS = [f"bench-{i:02d}" for i in range(10)]


async def _routing(run: Run, daemon: Target, relay: Target, pingpong: Target) -> None:
    size = run.size
    results: dict[str, dict[str, Any]] = {"relay": {}, "daemon": {}}
    cpu: dict[str, dict[str, float]] = {"relay": {}, "daemon": {}}
    async with trio.open_nursery() as sessions:
        for t in (relay, daemon):
            await load.start_sessions(sessions, t.socket, SESSIONS)
        phases: list[tuple[str, dict[str, Any], float]] = [
            ("single", {"targets": SESSIONS[:1], "senders": 1}, size.single_s),
            ("ping", {"targets": SESSIONS[:1], "senders": 1, "ping": True}, size.single_s / 2),
            ("10x10", {"targets": SESSIONS, "senders": 10}, size.load_s),
            ("100", {"targets": SESSIONS, "senders": 100}, size.load_s),
            (
                "newconn",
                {"targets": SESSIONS[:1], "senders": 1, "new_connection": True},
                size.newconn_s,
            ),
        ]
        for t in (relay, daemon):  # warm both (imports, allocator, page cache)
            await load.run_senders(
                t.socket, SESSIONS, senders=10, duration_s=WARMUP_S, max_requests=size.max_requests
            )
        for phase, kwargs, duration in phases:
            for name, t in (("relay", relay), ("daemon", daemon)):
                stats, cpu_s = await measured(
                    t,
                    partial(
                        load.run_senders,
                        t.socket,
                        duration_s=duration,
                        max_requests=size.max_requests,
                        **kwargs,
                    ),
                )
                summary = stats.summary()
                summary["cpu_us_per_op"] = (
                    cpu_s / summary["count"] * 1e6 if summary["count"] else float("nan")
                )
                results[name][phase] = summary
                cpu[name][phase] = summary["cpu_us_per_op"]
        storm_rows = Run(size, run.root)  # its rows go after the routing rows
        await _storm(storm_rows, daemon, relay)
        run.details.update(storm_rows.details)
        sessions.cancel_scope.cancel()
    await pingpong.start()
    raw = (
        await trio.to_thread.run_sync(
            pingpong_client, pingpong.socket, size.single_s / 2, size.max_requests
        )
    ).summary()
    await pingpong.stop()
    run.details["routing"] = results
    run.details["raw_pingpong"] = raw
    d, r = results["daemon"], results["relay"]

    def errs(s: dict[str, Any]) -> int:
        return int(s["errors"] + s["timeouts"])

    for q, limit in (("p50", 1.5), ("p99", 2.0)):
        x = ratio(d["single"][f"{q}_ms"], r["single"][f"{q}_ms"])
        run.add(
            Row(
                f"prompt round trip, 1 sender, {q}",
                fmt_ms(d["single"][f"{q}_ms"]),
                f"{fmt_ms(r['single'][f'{q}_ms'])} (Trio relay)",
                x,
                f"≤ {limit:g}× relay",
                judge(x is not None and x <= limit and errs(d["single"]) == 0),
            )
        )
    x = ratio(d["ping"]["p50_ms"], raw["p50_ms"])
    run.add(
        Row(
            "ping query round trip, 1 client, p50 / p99",
            f"{fmt_ms(d['ping']['p50_ms'])} / {fmt_ms(d['ping']['p99_ms'])}",
            f"{fmt_ms(raw['p50_ms'])} / {fmt_ms(raw['p99_ms'])} (raw socket ping-pong)",
            x,
            "info",
            "info",
        )
    )
    x = ratio(d["ping"]["throughput_per_s"], raw["throughput_per_s"])
    run.add(
        Row(
            "ping round trips/s, 1 client",
            f"{d['ping']['throughput_per_s']:,.0f}/s",
            f"{raw['throughput_per_s']:,.0f}/s (raw socket ping-pong)",
            x,
            "info",
            "info",
        )
    )
    x = ratio(d["10x10"]["throughput_per_s"], r["10x10"]["throughput_per_s"])
    run.add(
        Row(
            "routed round trips/s, 10 senders × 10 sessions",
            f"{d['10x10']['throughput_per_s']:,.0f}/s, {errs(d['10x10'])} errors",
            f"{r['10x10']['throughput_per_s']:,.0f}/s (Trio relay)",
            x,
            "≥ 0.7× relay, 0 errors",
            judge(x is not None and x >= 0.7 and errs(d["10x10"]) == 0),
        )
    )
    x = ratio(cpu["daemon"]["10x10"], cpu["relay"]["10x10"])
    run.add(
        Row(
            "daemon CPU per routed round trip (10 × 10)",
            f"{cpu['daemon']['10x10']:.0f} µs",
            f"{cpu['relay']['10x10']:.0f} µs (Trio relay)",
            x,
            "info",
            "info",
        )
    )
    x = ratio(d["100"]["p99_ms"], r["100"]["p99_ms"])
    run.add(
        Row(
            "100 senders × 10 sessions: p99, errors",
            f"{fmt_ms(d['100']['p99_ms'])}, {errs(d['100'])} errors ({d['100']['throughput_per_s']:,.0f}/s)",
            f"{fmt_ms(r['100']['p99_ms'])} ({r['100']['throughput_per_s']:,.0f}/s, Trio relay)",
            x,
            "0 errors, p99 ≤ 3× relay",
            judge(x is not None and x <= 3.0 and errs(d["100"]) == 0),
        )
    )
    x = ratio(d["newconn"]["p50_ms"], r["newconn"]["p50_ms"])
    run.add(
        Row(
            "prompt, new connection per request, p50 / p99",
            f"{fmt_ms(d['newconn']['p50_ms'])} / {fmt_ms(d['newconn']['p99_ms'])}, {errs(d['newconn'])} errors",
            f"{fmt_ms(r['newconn']['p50_ms'])} / {fmt_ms(r['newconn']['p99_ms'])} (Trio relay)",
            x,
            "info",
            "info" if errs(d["newconn"]) == 0 else "FAIL",
        )
    )
    run.rows.extend(storm_rows.rows)


async def _hostile(run: Run, daemon: Target) -> None:
    """Non-reading clients, orphaned asks and a subscriber flood at once (hostile.py)."""
    from . import hostile

    for row in await hostile.run_hostile(daemon.socket, lambda: daemon.sample().rss_kib):
        run.add(Row(**row))


async def _daemon_only(run: Run, daemon: Target) -> None:
    async with trio.open_nursery() as sessions:
        await load.start_sessions(sessions, daemon.socket, SESSIONS)
        await _never_answer(run, daemon)
        await _churn(run, daemon)
        await _cli(run, daemon)
        await _mcp(run, daemon)
        await _hostile(run, daemon)
        await _launcher(run, daemon)
        await _idle(run, daemon)
        sessions.cancel_scope.cancel()


async def _never_answer(run: Run, daemon: Target) -> None:
    size = run.size
    timeout_s = size.mute_timeout_s
    per = 5
    with trio.move_on_after(timeout_s * 4 + 20):
        stats, got = await load.run_never_answer(
            daemon.socket, sessions=size.mute_sessions, senders_per_session=per, timeout_s=timeout_s
        )
    s = stats.summary()
    expected = size.mute_sessions * per
    worst_s = s["max_ms"] / 1000
    ok = (
        got == expected and stats.errors == 0 and stats.timeouts == 0 and worst_s <= timeout_s * 1.1
    )
    run.add(
        Row(
            f"never-answering sessions: {expected} senders get the timeout error",
            f"{got}/{expected} in ≤ {worst_s:.3f} s",
            f"timeout {timeout_s:g} s",
            ratio(worst_s, timeout_s),
            "all, within timeout + 10 %",
            judge(ok),
            s,
        )
    )
    conns = await query(daemon.socket, "active_connections")
    pending = sum(int(c.get("pending", 0)) for c in conns) if isinstance(conns, list) else -1
    run.add(
        Row(
            "never-answering sessions: pending requests left after",
            str(pending),
            "0",
            None,
            "no pending-request leak",
            judge(pending == 0),
        )
    )


def _loop_stats(status: dict[str, Any]) -> dict[str, Any] | None:
    loop = status.get("loop")
    return loop if isinstance(loop, dict) else None


async def _storm(run: Run, daemon: Target, relay: Target) -> None:
    """Back-to-back heartbeats from many sessions while one sender probes prompt latency; the
    relay takes the same storm as a baseline (it answers heartbeats and stores nothing)."""
    size = run.size

    def storm(t: Target) -> Any:
        return load.run_heartbeat_storm(
            t.socket,
            sessions=size.storm_sessions,
            duration_s=size.storm_s,
            probe_target=SESSIONS[0],
            max_heartbeats=5_000_000,
        )

    hb_r, probe_r = await storm(relay)
    before = await query(daemon.socket, "status")  # also resets the daemon's max-stall window
    started_wall = int(time.time())
    (hb, probe), cpu_s = await measured(daemon, lambda: storm(daemon))
    after = await query(daemon.socket, "status")
    hs, ps = hb.summary(), probe.summary()
    hr, pr = hb_r.summary(), probe_r.summary()
    run.details["storm"] = {
        "heartbeats": hs,
        "probe": ps,
        "cpu_s": cpu_s,
        "relay_heartbeats": hr,
        "relay_probe": pr,
    }
    run.add(
        Row(
            f"heartbeat storm, {size.storm_sessions} sessions back to back: prompt p99",
            f"{fmt_ms(ps['p99_ms'])} at {hs['throughput_per_s']:,.0f} hb/s, {ps['errors'] + ps['timeouts'] + hs['errors']} errors",
            f"{fmt_ms(pr['p99_ms'])} at {hr['throughput_per_s']:,.0f} hb/s (Trio relay)",
            ratio(ps["p99_ms"], pr["p99_ms"]),
            "≤ 50 ms",
            judge(ps["p99_ms"] <= 50 and ps["errors"] + ps["timeouts"] + hs["errors"] == 0),
        )
    )
    cpu_us = cpu_s / hs["count"] * 1e6 if hs["count"] else float("nan")
    run.add(Row("daemon CPU per heartbeat (storm)", f"{cpu_us:.0f} µs", "—", None, "info", "info"))
    # Persisted: every storm session has a session_metadata row written during the storm.
    await trio.sleep(0.5)  # one flush interval's grace
    persisted = await trio.to_thread.run_sync(
        _count_persisted, Path(daemon.socket).parent / "scheduled.db", started_wall
    )
    run.add(
        Row(
            "heartbeat storm: sessions persisted to session_metadata",
            f"{persisted}/{size.storm_sessions}",
            "—",
            None,
            "all",
            judge(persisted == size.storm_sessions),
        )
    )
    loop = _loop_stats(after)
    if loop is None:
        run.add(
            Row(
                "loop stall max during the storm (store writes off the loop)",
                "n/a (daemon hook missing: CCC_BENCH_INSTRUMENT)",
                "—",
                None,
                "≤ 5 ms",
                "n/a",
            )
        )
    else:
        stall = float(loop.get("max_step_ms", float("nan")))
        run.add(
            Row(
                "loop stall max during the storm (store writes off the loop)",
                f"{fmt_ms(stall)} ({loop.get('max_step_task', '?')})",
                "—",
                None,
                "≤ 5 ms",
                judge(stall <= 5),
                loop,
            )
        )
    del before


def _count_persisted(db: Path, since: int) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute(
            "SELECT COUNT(*) FROM session_metadata WHERE session_id LIKE 'storm-%' AND last_seen >= ?",
            [since],
        ).fetchone()
        return int(row[0])
    finally:
        conn.close()


async def _settle(
    daemon: Target, want_fds: int, want_conns: int
) -> tuple[load.ProcSample, dict[str, Any]]:
    """Wait (bounded) until the daemon's fds and connections are back to the wanted counts."""
    deadline = trio.current_time() + SETTLE_DEADLINE_S
    while True:
        sample = daemon.sample()
        status = await query(daemon.socket, "status")
        if (
            sample.fds <= want_fds and status.get("connections", 0) <= want_conns
        ) or trio.current_time() > deadline:
            return sample, status
        await trio.sleep(0.1)


async def _churn(run: Run, daemon: Target) -> None:
    size = run.size
    # The baseline: the steady state before any churn (the fake sessions and our query).
    base = daemon.sample()
    st_base = await query(daemon.socket, "status")
    # Warm-up: the first reconnects allocate the churn sessions' registry entries once; RSS
    # growth is measured from after it.
    await load.run_churn(
        daemon.socket,
        workers=size.churn_workers,
        duration_s=WARMUP_S,
        target=SESSIONS[1],
        max_cycles=100_000,
    )
    before, st_before = await _settle(daemon, base.fds, st_base.get("connections", 0))
    stats = await load.run_churn(
        daemon.socket,
        workers=size.churn_workers,
        duration_s=size.churn_s,
        target=SESSIONS[1],
        max_cycles=2_000_000,
    )
    after, st_after = await _settle(daemon, base.fds, st_base.get("connections", 0))
    s = stats.summary()
    run.details["churn"] = s
    errors = s["errors"] + s["timeouts"]
    run.add(
        Row(
            f"churn, {size.churn_workers} workers × {size.churn_s:g} s: errors",
            f"{s['count']:,} cycles, {errors} errors",
            "—",
            None,
            "0 errors",
            judge(errors == 0 and s["count"] > 0),
            s,
        )
    )
    lb, la = _loop_stats(st_base), _loop_stats(st_after)
    tasks = (
        f", tasks {lb.get('live_tasks')}→{la.get('live_tasks')}"
        if lb and la
        else ", tasks n/a (hook missing)"
    )
    # A leak is growth; a connection's writer task exists only while it writes, so the
    # baseline sample can hold one more transient task than the quiet state after.
    tasks_ok = (int(la.get("live_tasks", 0)) <= int(lb.get("live_tasks", 0))) if lb and la else True
    conns_b, conns_a = int(st_base.get("connections", -1)), int(st_after.get("connections", -1))
    run.add(
        Row(
            "churn: fds, connections, tasks back to baseline",
            f"fds {base.fds}→{after.fds}, connections {conns_b}→{conns_a}{tasks}",
            "—",
            None,
            "back to baseline",
            judge(after.fds <= base.fds and conns_a <= conns_b and tasks_ok),
        )
    )
    growth = after.rss_kib - before.rss_kib
    run.add(
        Row(
            "churn: RSS growth",
            f"{growth / 1024:+.2f} MiB ({before.rss_kib / 1024:.1f}→{after.rss_kib / 1024:.1f})",
            "—",
            None,
            "≤ 2 MiB",
            judge(growth <= 2048),
        )
    )


async def _cli(run: Run, daemon: Target) -> None:
    size = run.size
    why = coldstart.cli_built()
    names = [
        ("`ccc prompt` cold, daemon up", "≤ 2.0× python -I -c pass"),
        ("`ccc statusline` cold, daemon up", "≤ 2.0× python -I -c pass"),
        ("`ccc statusline` cold, daemon down", "≤ 2.0× python -I -c pass"),
        ("`ccc statusline` cold, daemon hung (max)", "never above 250 ms"),
        ("`ccc hook` cold", "≤ 2.0× python -I -c pass"),
    ]
    if why is not None:
        for figure, target in names:
            run.add(Row(figure + f" (median of {size.cli_runs})", why, "—", None, target, "n/a"))
        return
    up = coldstart.cli_env(str(Path(daemon.socket).parent))
    down_dir = run.root / "down"
    down_dir.mkdir(mode=0o700)
    hung_dir = run.root / "hung"
    hung_dir.mkdir(mode=0o700)
    sl = coldstart.statusline_stdin()
    cases: list[tuple[str, str, list[str], dict[str, str], bytes | None]] = [
        (names[0][0], names[0][1], coldstart.ccc("prompt", SESSIONS[2], "bench"), up, None),
        (names[1][0], names[1][1], coldstart.ccc("statusline"), up, sl),
        (
            names[2][0],
            names[2][1],
            coldstart.ccc("statusline"),
            coldstart.cli_env(str(down_dir)),
            sl,
        ),
        (names[4][0], names[4][1], coldstart.ccc("hook"), up, coldstart.hook_stdin()),
    ]
    cli_details: dict[str, Any] = {}
    for figure, target, cmd, env, stdin in cases:
        ours, base = await trio.to_thread.run_sync(
            partial(coldstart.interleaved, cmd, runs=size.cli_runs, env=env, stdin=stdin)
        )
        o, b = ours.median_s * 1000, base.median_s * 1000
        x = ratio(o, b)
        cli_details[figure] = {"ours": ours.summary(), "python -I -c pass": base.summary()}
        failed = f", {ours.failures} failed" if ours.failures else ""
        run.add(
            Row(
                f"{figure} (median of {size.cli_runs})",
                f"{fmt_ms(o)}{failed}",
                f"{fmt_ms(b)} (python -I -c pass)",
                x,
                target,
                judge(x is not None and x <= 2.0 and ours.failures == 0),
                cli_details[figure],
            )
        )
    async with trio.open_nursery() as nursery:
        await nursery.start(load.hung_listener, str(hung_dir / "daemon.sock"))
        ours, base = await trio.to_thread.run_sync(
            lambda: coldstart.interleaved(
                coldstart.ccc("statusline"),
                runs=size.cli_runs,
                env=coldstart.cli_env(str(hung_dir)),
                stdin=sl,
            )
        )
        nursery.cancel_scope.cancel()
    worst = ours.max_s * 1000
    cli_details["hung"] = {"ours": ours.summary(), "python -I -c pass": base.summary()}
    run.add(
        Row(
            f"{names[3][0]} (of {size.cli_runs})",
            f"{fmt_ms(worst)} (median {fmt_ms(ours.median_s * 1000)})",
            f"{fmt_ms(base.median_s * 1000)} (python -I -c pass)",
            ratio(worst, base.median_s * 1000),
            names[3][1],
            judge(worst <= 250 and ours.failures == 0),
            cli_details["hung"],
        )
    )
    run.details["cli"] = cli_details


async def _mcp(run: Run, daemon: Target) -> None:
    """``ccc mcp`` start-up and tool calls next to the CLI (mcp.py)."""
    from . import mcp

    size = run.size
    for row in await mcp.mcp_rows(
        daemon.socket,
        SESSIONS[3],
        startups=size.startups,
        calls=size.cli_runs,
        cli_runs=max(5, size.cli_runs // 3),
    ):
        run.add(Row(**row))


async def _launcher(run: Run, daemon: Target) -> None:
    """``ccc hook`` / ``ccc statusline`` as Claude Code runs them, from a venv made as the
    README says: pip's console script (whatever that pip generates) and the command
    ``ccc install`` writes (install.ccc_argv), against that venv's ``python -I -c pass``."""
    from .. import install

    size = run.size
    bin_dir, how = await trio.to_thread.run_sync(
        partial(
            coldstart.readme_venv,
            build=size.name != "quick",
        )
    )
    figures = [
        (sub, kind)
        for sub in ("hook", "statusline")
        for kind in ("pip's console script", "as `ccc install` writes it")
    ]
    if bin_dir is None:
        for sub, kind in figures:
            run.add(
                Row(f"`ccc {sub}` cold, README venv, {kind}", how, target="≤ 1.5×", result="n/a")
            )
        return
    launcher = await trio.to_thread.run_sync(install.ccc_argv, str(bin_dir / "ccc"))
    up = coldstart.cli_env(str(Path(daemon.socket).parent))
    stdin = {"hook": coldstart.hook_stdin(), "statusline": coldstart.statusline_stdin()}
    details: dict[str, Any] = {"venv": how, "launcher": list(launcher)}
    for sub, kind in figures:
        cmd = [str(bin_dir / "ccc"), sub] if kind.startswith("pip") else [*launcher, sub]
        ours, base = await trio.to_thread.run_sync(
            partial(
                coldstart.interleaved,
                cmd,
                runs=size.cli_runs,
                env=up,
                stdin=stdin[sub],
                python=bin_dir / "python",
            )
        )
        o, b = ours.median_s * 1000, base.median_s * 1000
        oc, bc = ours.median_cpu_s * 1000, base.median_cpu_s * 1000
        # Judged on CPU time (user + system of the process): on a shared, busy machine the
        # wall-clock median mostly measures the scheduler. Both are shown.
        x = ratio(oc, bc)
        details[f"{sub}, {kind}"] = {"ours": ours.summary(), "python -I -c pass": base.summary()}
        failed = f", {ours.failures} failed" if ours.failures else ""
        installed = not kind.startswith("pip")
        run.add(
            Row(
                f"`ccc {sub}` cold, daemon up, README venv ({how}), {kind}: CPU time (median of {size.cli_runs})",
                f"{fmt_ms(oc)} CPU ({fmt_ms(o)} wall){failed}",
                f"{fmt_ms(bc)} CPU ({fmt_ms(b)} wall), that venv's python -I -c pass",
                x,
                "≤ 1.5× python -I -c pass" if installed else "info",
                judge(x is not None and x <= 1.5 and ours.failures == 0) if installed else "info",
                details[f"{sub}, {kind}"],
            )
        )
    run.details["launcher"] = details


async def _idle(run: Run, daemon: Target) -> None:
    size = run.size
    n = size.idle_n
    free = await load.run_senders(
        daemon.socket,
        SESSIONS[:1],
        senders=1,
        duration_s=size.idle_probe_s,
        max_requests=size.max_requests,
    )
    before, st_before = await _settle(daemon, 10**9, 10**9)
    with trio.move_on_after(180):
        conns, registered = await load.open_idle(daemon.socket, n, prefix="idle", time_limit_s=150)
    try:
        await trio.sleep(0.5)
        full = daemon.sample()
        st_full = await query(daemon.socket, "status")
        probe = await load.run_senders(
            daemon.socket,
            SESSIONS[:1],
            senders=1,
            duration_s=size.idle_probe_s,
            max_requests=size.max_requests,
        )
    finally:
        await load.close_all(conns)
    after, st_after = await _settle(daemon, before.fds, st_before.get("connections", 0))
    fs, ps = free.summary(), probe.summary()
    run.details["idle"] = {
        "registered": registered,
        "free_probe": fs,
        "idle_probe": ps,
        "rss_kib": [before.rss_kib, full.rss_kib, after.rss_kib],
        "fds": [before.fds, full.fds, after.fds],
        "status_full": {k: st_full.get(k) for k in ("connections", "session_clients", "sessions")},
    }
    run.add(
        Row(
            f"{n:,} idle session connections: registered",
            f"{registered:,}/{n:,}",
            "—",
            None,
            "all",
            judge(registered == n),
        )
    )
    per_conn = (full.rss_kib - before.rss_kib) / max(1, registered)
    run.add(
        Row(
            f"{n:,} idle session connections: daemon RSS each",
            f"{per_conn:.1f} KiB ({before.rss_kib / 1024:.0f}→{full.rss_kib / 1024:.0f} MiB)",
            "—",
            None,
            "≤ 10 KiB",
            judge(per_conn <= 10),
        )
    )
    x = ratio(ps["p99_ms"], fs["p99_ms"])
    run.add(
        Row(
            f"{n:,} idle session connections: probe round trip p99",
            f"{fmt_ms(ps['p99_ms'])}, {ps['errors'] + ps['timeouts']} errors",
            f"{fmt_ms(fs['p99_ms'])} (idle-free)",
            x,
            "≤ 2× idle-free",
            judge(x is not None and x <= 2.0 and ps["errors"] + ps["timeouts"] == 0),
        )
    )
    sc_b, sc_a = int(st_before.get("session_clients", -1)), int(st_after.get("session_clients", -1))
    c_b, c_a = int(st_before.get("connections", -1)), int(st_after.get("connections", -1))
    run.add(
        Row(
            f"{n:,} idle session connections: after close",
            f"session clients {sc_b}→{st_full.get('session_clients')}→{sc_a}, connections {c_b}→{c_a}, fds {before.fds}→{full.fds}→{after.fds}",
            "—",
            None,
            "back to baseline",
            judge(sc_a <= sc_b and c_a <= c_b and after.fds <= before.fds),
            {
                "sessions_in_registry": [
                    st_before.get("sessions"),
                    st_full.get("sessions"),
                    st_after.get("sessions"),
                ]
            },
        )
    )


# --- entry point ---------------------------------------------------------------------------


def raise_fd_limit() -> None:
    """The idle phase holds one socket per idle session in this process too."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m ccc_statusd.bench", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--quick", action="store_true", help="the CI smoke size: under 60 s")
    p.add_argument(
        "--json", type=Path, metavar="PATH", help="also write the table (and details) as JSON here"
    )
    p.add_argument(
        "--idle",
        type=int,
        metavar="N",
        help="idle session connections to open (default 10000; --quick 1000)",
    )
    args = p.parse_args(argv)
    size = QUICK if args.quick else FULL
    if args.idle is not None:
        size = Size(**{**asdict(size), "idle_n": args.idle})
    raise_fd_limit()
    root = Path(tempfile.mkdtemp(prefix="cccb-", dir="/tmp"))  # AF_UNIX paths must stay short
    t0 = time.perf_counter()
    print(f"ccc-statusd bench ({size.name}) in {root}", file=sys.stderr, flush=True)
    try:
        run = trio.run(bench, size, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    elapsed = time.perf_counter() - t0
    print()
    print_table(run.rows)
    print(
        f"\n{size.name} run, {elapsed:.0f} s, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; "
        "ratios are ours / baseline measured in the same run."
    )
    if args.json:
        doc = {
            "size": size.name,
            "elapsed_s": round(elapsed, 1),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "rows": [asdict(r) for r in run.rows],
            "details": run.details,
        }
        args.json.write_text(
            json.dumps(doc, indent=2, default=_json_default, allow_nan=True) + "\n"
        )
    return 0


def _json_default(obj: Any) -> Any:
    return str(obj)


if __name__ == "__main__":
    sys.exit(main())
