"""The transcript-index phase of the bench: a generated Claude Code history, indexed by the daemon.

Owns the synthetic history generator (:func:`generate_history`), the plain-Python measuring stick
(:func:`count_lines`), and the phase itself (:func:`run_index_bench` → :class:`IndexResult`,
turned into table rows by :func:`index_rows`).

Theory of operation:

* The history is ``<root>/config/projects/<encoded-cwd>/<session-uuid>.jsonl``, built by
  repeating the real transcript fixture (``shared/fixtures/claude-code/<version>/transcript-*``,
  or a small built-in one when the fixtures are absent) as "blocks": every UUID, message/request/
  tool id and the date-hour of every timestamp is a slot, refilled per block (fresh ids, one hour
  later per block), the session id and cwd per file. The fixture is tokenised once; a block is a
  ``str.join`` of literals and slot values, a file one ``write``: 200 MB takes a few seconds.
  File sizes are skewed (log-normal block counts), like a real history: many short sessions,
  a few long ones.
* Initial index: the real daemon (``ccc-statusd --cache-dir <fresh> --config-dir <root>/config``,
  watchers on, ``HOME`` pointed at an empty dir so the user's own ``~/.claude`` stays out) is
  timed from exec until ``list_sessions`` returns every generated session → MB/s. A
  ``list_sessions`` of 1,000 sessions costs the daemon tens of ms, so it is asked when the
  per-session cache files (a scandir every 10 ms) say everything is there, and anyway every
  0.5 s or ten times its last duration (10,000 sessions: seconds each). The measuring
  stick is a plain ``for line in f`` line count over the same files in the same run (warm page
  cache for both); a ``json.loads`` per line over a sample is recorded in the details only.
* Restart: SIGTERM, start again on the same cache dir, time exec → all sessions listed. Which
  transcripts the restarted daemon opened is told by their access times: before the restart every
  file's atime is set just before its mtime, so (under ``relatime``, checked on a probe file) any
  read moves it past the mtime. ``/proc/<pid>/io`` ``rchar`` goes in the details (it also counts
  imports and the database). Then a few ``list_sessions`` round trips on the warm daemon.
* The daemon runs with ``CCC_BENCH_INSTRUMENT=1``; its longest event-loop step during the initial
  index (``status`` → ``loop``) is reported too: parsing must run off the loop.
* Every wait is bounded (``index_deadline_s``, ``restart_deadline_s``); a daemon that never lists
  everything shows up as a count in the table, not as a hung bench. The caller deletes ``root``.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import trio

from . import coldstart, load

MB = 1_000_000  # the table's MB are decimal, like the "200 MB"
POLL_ACCEPT_S = 0.005  # socket connect polling while the daemon starts
POLL_HINT_S = 0.01  # cache-dir polling for "all listed yet?": a scandir, nothing for the daemon
LIST_FALLBACK_S = 0.5  # list_sessions at least this often anyway (or 10x its last duration)
LIST_REQUEST_DEADLINE_S = 60.0  # one list_sessions may queue behind the whole initial scan
STOP_DEADLINE_S = 10.0
JSON_SAMPLE_BYTES = 20 * MB  # the json.loads reference (details only) reads at most this much
WARM_LIST_RUNS = 10  # list_sessions round trips on the warm daemon

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_API_ID = r"\b(?:msg|req|toolu|srvtoolu)_[A-Za-z0-9_]{8,}"
_HOUR = r"\d{4}-\d{2}-\d{2}T\d{2}(?=:\d{2}:\d{2})"

# Used when the real fixtures are not on this machine: the same line kinds, much less detail.
_BUILTIN_TEMPLATE = "\n".join(
    json.dumps(obj, separators=(", ", ": "))
    for obj in [
        {"type": "mode", "mode": "normal", "sessionId": "00000000-0000-4000-8000-000000000001"},
        {
            "parentUuid": None,
            "isSidechain": False,
            "type": "user",
            "message": {"role": "user", "content": "Refactor the parser and run the tests."},
            "uuid": "00000000-0000-4000-8000-000000000002",
            "timestamp": "2026-11-24T19:00:01.000Z",
            "userType": "external",
            "cwd": "/home/user/project",
            "sessionId": "00000000-0000-4000-8000-000000000001",
            "version": "2.1.331",
            "gitBranch": "main",
        },
        {
            "parentUuid": "00000000-0000-4000-8000-000000000002",
            "isSidechain": False,
            "type": "attachment",
            "attachment": {"type": "hook_success", "content": "ok " * 40},
            "uuid": "00000000-0000-4000-8000-000000000003",
            "timestamp": "2026-11-24T19:00:02.000Z",
            "cwd": "/home/user/project",
            "sessionId": "00000000-0000-4000-8000-000000000001",
            "version": "2.1.331",
            "gitBranch": "main",
        },
        {
            "parentUuid": "00000000-0000-4000-8000-000000000003",
            "isSidechain": False,
            "type": "assistant",
            "message": {
                "id": "msg_builtin_000000000000",
                "model": "claude-opus-4-5",
                "role": "assistant",
                "content": [{"type": "text", "text": "Done: the parser is split in two. " * 8}],
                "usage": {
                    "input_tokens": 1200,
                    "output_tokens": 350,
                    "cache_read_input_tokens": 24000,
                    "cache_creation_input_tokens": 800,
                },
            },
            "requestId": "req_builtin_000000000000",
            "uuid": "00000000-0000-4000-8000-000000000004",
            "timestamp": "2026-11-24T19:00:09.000Z",
            "cwd": "/home/user/project",
            "sessionId": "00000000-0000-4000-8000-000000000001",
            "version": "2.1.331",
            "gitBranch": "main",
        },
        {
            "parentUuid": "00000000-0000-4000-8000-000000000004",
            "isSidechain": False,
            "type": "system",
            "subtype": "stop_hook_summary",
            "uuid": "00000000-0000-4000-8000-000000000005",
            "timestamp": "2026-11-24T19:00:10.000Z",
            "cwd": "/home/user/project",
            "sessionId": "00000000-0000-4000-8000-000000000001",
            "gitBranch": "main",
        },
    ]
)


# --- the generator -------------------------------------------------------------------------


def fixture_transcripts() -> list[Path]:
    """The newest fixture version's ``transcript-*.jsonl`` (``$CCC_FIXTURES`` overrides the
    ``../shared/fixtures/claude-code`` next to the repo, else the copy vendored in
    ``tests/data/claude-code``); empty when there are none."""
    env = os.environ.get("CCC_FIXTURES")
    repo = Path(__file__).resolve().parents[2]
    shared = repo.parent / "shared" / "fixtures" / "claude-code"
    vendored = repo / "tests" / "data" / "claude-code"
    base = Path(env) if env else shared if shared.is_dir() else vendored
    try:
        versions = sorted((d for d in base.iterdir() if d.is_dir()), reverse=True)
    except OSError:
        return []
    for d in versions:
        found = sorted(d.glob("transcript-*.jsonl"))
        if found:
            return found
    return []


@dataclass(frozen=True)
class Template:
    """A transcript tokenised into literals and slots (``parts[i]``, slot, ``parts[i+1]`` ...)."""

    parts: list[str]
    slots: list[int]  # per slot: index into the per-block value list
    n_hours: int
    hour_offsets: list[int]  # per distinct template hour: hours after the earliest
    n_uuids: int
    api_ids: list[str]  # per distinct API id: its prefix (msg, req, toolu, ...)
    size: int  # bytes of one block (ASCII-dominated; exact after encoding per file)

    # Value list layout per block: [session id, cwd, *hours, *uuids, *api ids].

    @classmethod
    def parse(cls, text: str) -> Template:
        if not text.endswith("\n"):
            text += "\n"
        sessions = set(re.findall(r'"session_?[iI]d":\s*"(' + _UUID + ')"', text))
        cwds = re.findall(r'"cwd":\s*"([^"]+)"', text)
        cwd = max(set(cwds), key=cwds.count) if cwds else None
        kinds = ["uuid", "api", "hour"]
        alts = [_UUID, _API_ID, _HOUR]
        if cwd:
            kinds.insert(0, "cwd")
            alts.insert(0, re.escape(cwd))
        pattern = re.compile("|".join(f"({a})" for a in alts))
        hours: dict[str, int] = {}
        uuids: dict[str, int] = {}
        api: dict[str, int] = {}
        parts: list[str] = []
        raw_slots: list[tuple[str, int]] = []
        pos = 0
        for m in pattern.finditer(text):
            parts.append(text[pos : m.start()])
            tok, kind = m.group(0), kinds[(m.lastindex or 1) - 1]
            if kind == "cwd":
                raw_slots.append(("cwd", 0))
            elif kind == "uuid":
                if tok in sessions:
                    raw_slots.append(("session", 0))
                else:
                    raw_slots.append(("uuid", uuids.setdefault(tok, len(uuids))))
            elif kind == "hour":
                raw_slots.append(("hour", hours.setdefault(tok, len(hours))))
            else:
                raw_slots.append(("api", api.setdefault(tok, len(api))))
            pos = m.end()
        parts.append(text[pos:])
        n_hours = len(hours)
        base = {"session": 0, "cwd": 1, "hour": 2, "uuid": 2 + n_hours}
        base["api"] = base["uuid"] + len(uuids)
        slots = [base[kind] + i for kind, i in raw_slots]
        parsed = {h: datetime.strptime(h, "%Y-%m-%dT%H") for h in hours}
        first = min(parsed.values()) if parsed else datetime(2026, 1, 1)
        offsets = [0] * n_hours
        for h, i in hours.items():
            offsets[i] = int((parsed[h] - first).total_seconds() // 3600)
        return cls(
            parts=parts,
            slots=slots,
            n_hours=n_hours,
            hour_offsets=offsets,
            n_uuids=len(uuids),
            api_ids=[tok.split("_", 1)[0] for tok in api],
            size=len(text.encode()),
        )

    def render(self, session_id: str, cwd: str, when: datetime, rng: random.Random) -> str:
        """One block: fresh ids, timestamps moved to the hour ``when`` (plus the template's
        own hour offsets), this session and cwd."""
        salt = f"{rng.getrandbits(64):016x}"
        u = f"{salt[:8]}-{salt[8:12]}-4{salt[13:16]}-a{salt[1:4]}-"
        values = [session_id, cwd]
        values += [(when + timedelta(hours=h)).strftime("%Y-%m-%dT%H") for h in self.hour_offsets]
        values += [f"{u}{i:012x}" for i in range(self.n_uuids)]
        values += [f"{p}_bench{salt}{i:04x}" for i, p in enumerate(self.api_ids)]
        out = [""] * (2 * len(self.parts) - 1)
        out[0::2] = self.parts
        out[1::2] = [values[i] for i in self.slots]
        return "".join(out)


def load_template() -> tuple[Template, str]:
    """The block template and where it came from (a fixture file, or "built-in")."""
    files = fixture_transcripts()
    if files:
        # The richest fixture (the most bytes) has every line kind: user, assistant with usage,
        # system, attachment, snapshots, api-request ...
        best = max(files, key=lambda p: p.stat().st_size)
        return Template.parse(best.read_text()), str(best)
    return Template.parse(_BUILTIN_TEMPLATE), "built-in"


def encode_cwd(cwd: str) -> str:
    """Claude Code's project dir name for a cwd: every non-alphanumeric character becomes ``-``."""
    return re.sub(r"[^A-Za-z0-9]", "-", cwd)


@dataclass
class History:
    config_dir: Path
    session_ids: set[str]
    files: list[Path]
    total_bytes: int
    lines: int
    source: str
    generate_s: float


def generate_history(
    config_dir: Path, files: int, total_bytes: int, *, seed: int = 5, projects: int | None = None
) -> History:
    """Write ``files`` transcripts totalling at least ``total_bytes`` under ``config_dir/projects``."""
    t0 = time.perf_counter()
    rng = random.Random(seed)
    template, source = load_template()
    blocks_total = max(files, math.ceil(total_bytes / template.size))
    # Skewed sizes: log-normal weights, at least one block per file, then top up to the total.
    weights = [rng.lognormvariate(0.0, 1.0) for _ in range(files)]
    scale = (blocks_total - files) / sum(weights)
    counts = [1 + int(w * scale) for w in weights]
    for _ in range(blocks_total - sum(counts)):
        counts[rng.randrange(files)] += 1
    n_projects = projects or max(1, files // 25)
    cwds = [f"/home/user/src/project-{k:03d}" for k in range(n_projects)]
    start = datetime(2026, 1, 1)
    paths: list[Path] = []
    sids: set[str] = set()
    written = 0
    for i, count in enumerate(counts):
        cwd = cwds[i % n_projects]
        project_dir = config_dir / "projects" / encode_cwd(cwd)
        project_dir.mkdir(parents=True, exist_ok=True)
        sid = f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-4{rng.getrandbits(12):03x}-8{rng.getrandbits(12):03x}-{i:012x}"
        when = start + timedelta(hours=rng.randrange(24 * 300))
        gap = template.hour_offsets and max(template.hour_offsets) + 1 or 1
        body = "".join(
            template.render(sid, cwd, when + timedelta(hours=b * gap), rng) for b in range(count)
        ).encode()
        path = project_dir / f"{sid}.jsonl"
        with open(path, "wb") as f:
            f.write(body)
        written += len(body)
        paths.append(path)
        sids.add(sid)
    lines = sum(counts) * template_lines(template)
    return History(config_dir, sids, paths, written, lines, source, time.perf_counter() - t0)


def template_lines(template: Template) -> int:
    return sum(p.count("\n") for p in template.parts)


# --- the measuring sticks ------------------------------------------------------------------


def count_lines(paths: list[Path]) -> tuple[int, int, float]:
    """A plain ``for line in f`` over every file: (lines, bytes, seconds)."""
    t0 = time.perf_counter()
    lines = size = 0
    for p in paths:
        with open(p, "rb") as f:
            for line in f:
                lines += 1
                size += len(line)
    return lines, size, time.perf_counter() - t0


def json_loads_rate(paths: list[Path], max_bytes: int = JSON_SAMPLE_BYTES) -> float:
    """MB/s of ``json.loads`` per line over the first ``max_bytes`` of the history (details)."""
    t0 = time.perf_counter()
    size = 0
    for p in paths:
        with open(p, "rb") as f:
            for line in f:
                json.loads(line)
                size += len(line)
        if size >= max_bytes:
            break
    return size / MB / (time.perf_counter() - t0)


# --- the daemon under test -----------------------------------------------------------------


@dataclass
class Start:
    """One daemon start: when it accepted, when it listed every session, what it read."""

    accept_s: float = float("nan")
    listed_s: float = float("nan")
    listed: int = 0  # generated sessions seen in the last list_sessions reply
    polls: int = 0
    cpu_s: float = float("nan")
    rchar: int = -1  # bytes the daemon read through read(2)-like calls, /proc/<pid>/io
    read_bytes: int = -1  # bytes fetched from the block device
    rss_kib: int = -1
    loop: dict[str, Any] | None = None  # status["loop"] right after the listing, if exposed
    error: str | None = None


def read_proc_io(pid: int) -> dict[str, int]:
    try:
        with open(f"/proc/{pid}/io") as f:
            return {k: int(v) for k, v in (line.split(":") for line in f)}
    except (OSError, ValueError):
        return {}


class Daemon:
    """``ccc-statusd`` watching one extra config dir, with its own ``HOME``."""

    def __init__(self, cache_dir: Path, config_dir: Path, home: Path) -> None:
        cache_dir.mkdir(mode=0o700, exist_ok=True)
        home.mkdir(mode=0o700, exist_ok=True)
        self.cache_dir = cache_dir
        self.socket = str(cache_dir / "daemon.sock")
        self.cmd = [
            str(coldstart.venv_bin() / "ccc-statusd"),
            "--cache-dir",
            str(cache_dir),
            "--config-dir",
            str(config_dir),
        ]
        self.env = {k: v for k, v in os.environ.items() if k != "CLAUDE_CONFIG_DIR"}
        # Only the generated history counts: the user's ~/.claude is not this bench's.
        self.env["HOME"] = str(home)
        self.env["CCC_BENCH_INSTRUMENT"] = "1"  # loop-stall figures in `status`
        self.log_path = cache_dir / "bench-stderr.log"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start_and_list(self, want: set[str], deadline_s: float) -> Start:
        """Exec, then poll until ``list_sessions`` shows every id in ``want`` (bounded)."""
        st = Start()
        with open(self.log_path, "ab") as log:  # noqa: ASYNC230 - the clock starts at exec
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(  # noqa: ASYNC220
                self.cmd, stdout=log, stderr=log, env=self.env, start_new_session=True
            )
        end = t0 + deadline_s
        try:
            while True:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.connect(self.socket)
                    st.accept_s = time.perf_counter() - t0
                    break
                except OSError:
                    pass
                finally:
                    s.close()
                self._check_alive()
                if time.perf_counter() > end:
                    raise TimeoutError(f"did not accept within {deadline_s:g} s")
                await trio.sleep(POLL_ACCEPT_S)
            conn = await load.LineConn.open(self.socket)
            try:
                # Answered on the loop (no store): resets the loop-stall window, so the figure
                # read after the listing covers the index, not the start-up.
                with trio.fail_after(5):
                    await conn.request({"type": "query", "query": "status", "request_id": "s"})
                last_list = -math.inf
                fallback_s = LIST_FALLBACK_S
                while True:
                    # list_sessions of 1,000 sessions costs the daemon tens of ms: polling it
                    # every few ms would slow the index it measures. The per-session cache
                    # files (written right after a session is listed) say when to ask.
                    now = time.perf_counter()
                    if now - last_list < fallback_s and await trio.to_thread.run_sync(
                        self._cached, want
                    ) < len(want):
                        if now > end:
                            raise TimeoutError(
                                f"listed {st.listed}/{len(want)} sessions after {deadline_s:g} s"
                            )
                        self._check_alive()
                        await trio.sleep(POLL_HINT_S)
                        continue
                    st.polls += 1
                    last_list = time.perf_counter()
                    with trio.fail_after(max(1.0, end - time.perf_counter())):
                        records = await _list(conn)
                    # At most ~10 % of the daemon's time goes to these listings.
                    fallback_s = max(LIST_FALLBACK_S, 10 * (time.perf_counter() - last_list))
                    st.listed = sum(1 for r in records if r.get("session_id") in want)
                    if st.listed >= len(want):
                        st.listed_s = time.perf_counter() - t0
                        with trio.fail_after(5):
                            status = await conn.request(
                                {"type": "query", "query": "status", "request_id": "s"}
                            )
                        loop = (status.get("data") or {}).get("loop")
                        st.loop = loop if isinstance(loop, dict) else None
                        break
                    self._check_alive()
                    if time.perf_counter() + POLL_HINT_S > end:
                        raise TimeoutError(
                            f"listed {st.listed}/{len(want)} sessions after {deadline_s:g} s"
                        )
                    await trio.sleep(POLL_HINT_S)
            finally:
                await conn.aclose()
        except (TimeoutError, trio.TooSlowError, OSError, EOFError, RuntimeError) as exc:
            st.error = str(exc) or type(exc).__name__
        if self.proc.poll() is None:
            sample = load.proc_sample(self.proc.pid)
            st.cpu_s, st.rss_kib = sample.cpu_s, sample.rss_kib
            io = read_proc_io(self.proc.pid)
            st.rchar, st.read_bytes = io.get("rchar", -1), io.get("read_bytes", -1)
        return st

    def _cached(self, want: set[str]) -> int:
        """How many of ``want`` have a cache file (a hint only: list_sessions decides)."""
        try:
            names = {e.name for e in os.scandir(self.cache_dir)}
        except OSError:
            return 0
        return sum(1 for sid in want if f"{sid}.json" in names)

    def _check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"ccc-statusd exited with {self.proc.returncode}; see {self.log_path}"
            )

    async def list_round_trips(self, runs: int) -> tuple[list[float], list[float], int]:
        """``list_sessions`` and ``ping`` round-trip seconds on one connection, interleaved."""
        lists: list[float] = []
        pings: list[float] = []
        n = 0
        conn = await load.LineConn.open(self.socket)
        try:
            with trio.fail_after(LIST_REQUEST_DEADLINE_S):
                for _ in range(runs):
                    t0 = time.perf_counter()
                    n = len(await _list(conn))
                    lists.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    await conn.request({"type": "query", "query": "ping", "request_id": "p"})
                    pings.append(time.perf_counter() - t0)
        finally:
            await conn.aclose()
        return lists, pings, n

    async def stop(self) -> float:
        """SIGTERM and wait (bounded; SIGKILL after); seconds until it exited."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        t0 = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        with trio.move_on_after(STOP_DEADLINE_S):
            while self.proc.poll() is None:  # noqa: ASYNC110 - a Popen has nothing to await
                await trio.sleep(0.01)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        return time.perf_counter() - t0


async def _list(conn: load.LineConn) -> list[dict[str, Any]]:
    # History included: the indexed transcripts are what this phase times.
    reply = await conn.request(
        {"type": "query", "query": "list_sessions", "request_id": "l", "data": {"all": True}}
    )
    if reply.get("error"):
        raise RuntimeError(f"list_sessions failed: {reply['error']}")
    data = reply.get("data")
    return data if isinstance(data, list) else []


# --- which files a daemon opened ------------------------------------------------------------


def age_atimes(paths: list[Path]) -> None:
    """Set each file's atime 60 s before its mtime (mtime unchanged): the next read moves it."""
    for p in paths:
        st = os.stat(p)
        os.utime(p, ns=(st.st_mtime_ns - 60 * 10**9, st.st_mtime_ns))


def opened_since_aged(paths: list[Path]) -> tuple[int, int]:
    """(files, bytes) of the files read since :func:`age_atimes`."""
    files = size = 0
    for p in paths:
        st = os.stat(p)
        if st.st_atime_ns > st.st_mtime_ns:
            files += 1
            size += st.st_size
    return files, size


def atime_works(probe: Path) -> bool:
    """True when a read updates an aged atime here (not on a ``noatime`` mount)."""
    probe.write_bytes(b"probe\n")
    age_atimes([probe])
    with open(probe, "rb") as f:
        f.read()
    return opened_since_aged([probe])[0] == 1


# --- the phase -----------------------------------------------------------------------------


@dataclass
class IndexResult:
    history: History
    baseline_lines: int
    baseline_s: float
    json_mb_s: float
    first: Start
    stop_s: float
    restart: Start
    reread_files: int  # -1: could not tell (noatime)
    reread_bytes: int
    warm_list_s: list[float] = field(default_factory=list)
    warm_ping_s: list[float] = field(default_factory=list)
    warm_listed: int = 0
    db_bytes: int = 0

    @property
    def history_mb(self) -> float:
        return self.history.total_bytes / MB

    def details(self) -> dict[str, Any]:
        h = self.history
        return {
            "files": len(h.files),
            "bytes": h.total_bytes,
            "lines": h.lines,
            "template": h.source,
            "generate_s": round(h.generate_s, 3),
            "line_count_s": round(self.baseline_s, 3),
            "json_loads_mb_s": round(self.json_mb_s, 1),
            "first": self.first.__dict__,
            "stop_s": round(self.stop_s, 3),
            "restart": self.restart.__dict__,
            "reread_files": self.reread_files,
            "reread_bytes": self.reread_bytes,
            "warm_list_ms": [round(x * 1000, 3) for x in self.warm_list_s],
            "warm_ping_ms": [round(x * 1000, 3) for x in self.warm_ping_s],
            "db_bytes": self.db_bytes,
        }


async def run_index_bench(
    root: Path,
    files: int,
    total_bytes: int,
    *,
    index_deadline_s: float,
    restart_deadline_s: float,
    warm_runs: int = WARM_LIST_RUNS,
) -> IndexResult:
    """Generate the history under ``root``, index it, restart, list; ``root`` is left for the
    caller to delete (it holds the history, the cache dirs and the daemons' logs)."""
    history = await trio.to_thread.run_sync(generate_history, root / "config", files, total_bytes)
    # Twice, the faster one: both sides then read from a warm page cache.
    counts = [await trio.to_thread.run_sync(count_lines, history.files) for _ in range(2)]
    lines, _, base_s = min(counts, key=lambda r: r[2])
    json_mb_s = await trio.to_thread.run_sync(json_loads_rate, history.files)
    daemon = Daemon(root / "ix", history.config_dir, root / "home")
    try:
        first = await daemon.start_and_list(history.session_ids, index_deadline_s)
        stop_s = await daemon.stop()
        can_tell = await trio.to_thread.run_sync(atime_works, root / "atime-probe")
        if can_tell:
            await trio.to_thread.run_sync(age_atimes, history.files)
        restart = await daemon.start_and_list(history.session_ids, restart_deadline_s)
        warm: tuple[list[float], list[float], int] = ([], [], 0)
        if restart.error is None:
            warm = await daemon.list_round_trips(warm_runs)
    finally:
        await daemon.stop()
    reread = (
        await trio.to_thread.run_sync(opened_since_aged, history.files) if can_tell else (-1, 0)
    )
    db = daemon.cache_dir / "scheduled.db"
    db_bytes = sum(p.stat().st_size for p in db.parent.glob(db.name + "*") if p.is_file())
    return IndexResult(
        history=history,
        baseline_lines=lines,
        baseline_s=base_s,
        json_mb_s=json_mb_s,
        first=first,
        stop_s=stop_s,
        restart=restart,
        reread_files=reread[0],
        reread_bytes=reread[1],
        warm_list_s=warm[0],
        warm_ping_s=warm[1],
        warm_listed=warm[2],
        db_bytes=db_bytes,
    )


def _ms(x: float) -> str:
    if math.isnan(x):
        return "nan"
    return (
        f"{x * 1000:.2f} ms"
        if x < 0.01
        else f"{x * 1000:.1f} ms"
        if x < 0.1
        else f"{x * 1000:.0f} ms"
    )


def _ratio(a: float, b: float) -> float | None:
    return None if b == 0 or math.isnan(a) or math.isnan(b) else a / b


def index_rows(r: IndexResult) -> list[dict[str, Any]]:
    """The table rows (``Row`` keyword arguments) of the index phase."""
    h = r.history
    n = len(h.files)
    mb = r.history_mb
    rows: list[dict[str, Any]] = []
    base_mb_s = mb / r.baseline_s if r.baseline_s > 0 else float("nan")
    f = r.first
    if f.error is None:
        ours_mb_s = mb / f.listed_s
        cpu = f", {mb / f.cpu_s:.0f} MB per CPU-s" if f.cpu_s > 0 else ""
        ours = f"{ours_mb_s:.1f} MB/s ({f.listed_s:.1f} s exec → {n:,} listed{cpu})"
    else:
        ours_mb_s = float("nan")
        ours = f"{f.listed}/{n:,} listed: {f.error}"
    rows.append(
        {
            "figure": f"transcript index, initial: {n:,} files, {mb:.0f} MB (exec → all listed)",
            "ours": ours,
            "baseline": f"{base_mb_s:.0f} MB/s (plain Python line count)",
            "ratio": _ratio(ours_mb_s, base_mb_s),
            "target": "info",
            "result": "info" if f.error is None else "FAIL",
            "details": r.details(),
        }
    )
    loop = f.loop
    if loop is not None:
        stall = float(loop.get("max_step_ms", float("nan")))
        rows.append(
            {
                "figure": "transcript index, initial: longest event-loop step (parsing off the loop)",
                "ours": f"{stall:.1f} ms ({loop.get('max_step_task') or '?'})",
                "target": "info",
                "result": "info",
            }
        )
    s = r.restart
    if s.error is None:
        ours = f"{_ms(s.listed_s)} exec → {n:,} listed ({s.polls} polls)"
    else:
        ours = f"{s.listed}/{n:,} listed: {s.error}"
    rows.append(
        {
            "figure": "transcript index, restart with the history indexed: exec → all listed",
            "ours": ours,
            "baseline": f"{_ms(s.accept_s)} (exec → socket accepting, same start)",
            "ratio": _ratio(s.listed_s, s.accept_s),
            "target": f"all {n:,} listed",
            "result": "pass" if s.error is None else "FAIL",
        }
    )
    if r.reread_files >= 0:
        rows.append(
            {
                "figure": "transcript index, restart: history re-read",
                "ours": f"{r.reread_files:,}/{n:,} files opened ({r.reread_bytes / MB:.1f} MB)",
                "baseline": f"{mb:.0f} MB read by the initial index",
                "ratio": r.reread_bytes / h.total_bytes if h.total_bytes else None,
                "target": "0 files (offsets persist)",
                "result": "pass" if r.reread_files == 0 else "FAIL",
            }
        )
    else:
        rows.append(
            {
                "figure": "transcript index, restart: history re-read",
                "ours": "n/a (reads do not update atime here: noatime)",
                "target": "0 files (offsets persist)",
                "result": "n/a",
            }
        )
    if r.warm_list_s:
        lst, png = statistics.median(r.warm_list_s), statistics.median(r.warm_ping_s)
        rows.append(
            {
                "figure": f"list_sessions round trip, {r.warm_listed:,} sessions, warm daemon (median of {len(r.warm_list_s)})",
                "ours": _ms(lst),
                "baseline": f"{_ms(png)} (ping query, same connection)",
                "ratio": _ratio(lst, png),
                "target": "info",
                "result": "info",
            }
        )
    return rows
