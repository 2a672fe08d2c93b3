"""The transcript index and its watcher: every ``<config_dir>/projects/*/<session-id>.jsonl``.

Owns the ``transcript_index`` table (one row per transcript file: where it was read up to, and the
:class:`~ccc_statusd.watchers.transcript_parse.TranscriptAggregate` so far, as JSON), the sync
:class:`TranscriptIndex` that updates it, and the trio task :func:`run_transcript_watcher`.

Theory of operation:

* :class:`TranscriptIndex` is plain sync code on the daemon's single store worker: each public
  call reads what it needs, then writes in one transaction. It reads only the bytes appended since
  the stored ``offset`` (the start of the first incomplete line), so a restart re-reads nothing
  already indexed. A file whose inode changed, that shrank below the offset, or whose first bytes
  no longer match (``head_hash``) is re-read from 0. A vanished file loses its row and is
  reported once with ``removed=True``.
* :func:`run_transcript_watcher` does a full scan, then watches every existing ``projects/`` dir
  recursively with ``watchfiles.awatch`` (anyio-based; runs under trio, see its tests) for low
  latency, and every ``rescan_interval_s`` re-evaluates the config dirs and rescans them all
  (stat-only for unchanged files). The rescan picks up new config dirs and ``projects/`` dirs
  (restarting the watch over the new set) and anything a notification missed, so watchfiles is an
  accelerator, never the only source of truth.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import stat
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import anyio
import sqlite_utils
import trio
import watchfiles

from ..safeio import open_regular
from ..store import TRANSCRIPT_INDEX_COLUMNS, m005_transcript_index, write_transaction
from .transcript_parse import TranscriptAggregate

log = logging.getLogger(__name__)

T = TypeVar("T")

TABLE = "transcript_index"

# Bytes read per read() call: bounds memory per file while keeping syscalls few.
READ_CHUNK_BYTES = 1024 * 1024

# How many leading bytes are fingerprinted to detect a file rewritten in place (same inode, same
# or larger size). 4 KiB always covers the first line's start, and costs one small read per change.
HEAD_FINGERPRINT_BYTES = 4096

# Default seconds between full rescans (new config dirs, missed notifications).
RESCAN_INTERVAL_S = 5.0

# watchfiles groups changes that arrive within this window (ms) into one batch; short, because a
# transcript append should show in `ccc sessions` quickly, and each batch is one store call.
WATCH_DEBOUNCE_MS = 200

# How often (ms) the watch thread checks the stop event: bounds shutdown/restart latency.
WATCH_STEP_MS = 50


def ensure_schema(db: sqlite_utils.Database) -> None:
    """Create ``transcript_index`` (and its indexes) if missing; idempotent. The schema is the
    store's migration ``m005_transcript_index``: a database opened with ``open_db`` has it
    already; this covers one opened without migrations."""
    have = {row[1] for row in db.execute(f"PRAGMA table_info([{TABLE}])")}
    if have >= {name for name, _ in TRANSCRIPT_INDEX_COLUMNS}:
        return
    with write_transaction(db):
        m005_transcript_index(db)


def iter_transcripts(config_dir: Path) -> list[Path]:
    """Every ``<config_dir>/projects/*/*.jsonl`` that is a regular file, sorted."""
    projects = config_dir / "projects"
    found: list[Path] = []
    try:
        project_entries = list(os.scandir(projects))
    except (FileNotFoundError, NotADirectoryError):
        return found
    for project in project_entries:
        if not project.is_dir():
            continue
        try:
            entries = list(os.scandir(project.path))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            if entry.name.endswith(".jsonl") and entry.is_file():
                found.append(Path(entry.path))
    found.sort()
    return found


def _fingerprint(head: bytes) -> str:
    return hashlib.blake2b(head, digest_size=16).hexdigest()


@dataclass
class ScanJob:
    """One file to scan, as planned from its stat and its row (see TranscriptIndex.plan).

    ``aggregate`` is None for a file read from 0 (new, replaced, truncated); ``removed`` is set
    (the last known aggregate) for a known file that is gone.
    """

    path: Path
    config_dir: Path
    size: int = 0  # st_size at plan time: read up to here, never further
    inode: int = 0
    mtime: float = 0.0
    offset: int = 0  # the stored offset (0: from the start)
    head_hash: str | None = None  # the stored fingerprint of the first bytes
    row_config_dir: str | None = None
    aggregate: TranscriptAggregate | None = None
    removed: TranscriptAggregate | None = None


# (aggregate to report or None, row to upsert or None: delete ``aggregate.path``)
ScanResult = tuple[TranscriptAggregate | None, dict[str, Any] | None]


def read_job(job: ScanJob) -> ScanResult | None:
    """Read a planned file's new bytes; no database. None: nothing to write (it vanished
    between the stat and the open: the next scan reports the removal)."""
    if job.removed is not None:
        return job.removed, None
    path, config_dir = job.path, job.config_dir
    restart = job.aggregate is None
    try:
        # safeio: non-blocking, and fstat must say "regular file" (a FIFO swapped in after
        # the plan's stat is refused, not read)
        with os.fdopen(open_regular(path), "rb") as f:
            if not restart and job.offset > 0:
                head = f.read(min(job.offset, HEAD_FINGERPRINT_BYTES))
                restart = _fingerprint(head) != job.head_hash
            if restart or job.aggregate is None:
                agg = TranscriptAggregate(session_id=path.stem)
                start = 0
            else:
                agg = job.aggregate
                start = job.offset
            agg.path = str(path)
            agg.config_dir = str(config_dir)
            f.seek(start)
            # Read up to the size seen by stat: bytes appended meanwhile come next scan, so
            # the stored size never claims bytes that were not read.
            remaining = job.size - start
            while remaining > 0:
                chunk = f.read(min(READ_CHUNK_BYTES, remaining))
                if not chunk:
                    break
                agg.feed(chunk)
                remaining -= len(chunk)
            read_to = job.size - remaining
            offset = read_to - agg.pending_bytes
            f.seek(0)
            head_hash = _fingerprint(f.read(min(offset, HEAD_FINGERPRINT_BYTES)))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        # One bad file (unreadable, a FIFO, a name that cannot be encoded) must not keep the
        # others of its batch from being indexed.
        log.warning("transcript %r skipped: %s", str(path), exc)
        return None
    reported = restart or offset != job.offset or str(config_dir) != job.row_config_dir
    row = {
        "path": str(path),
        "session_id": agg.session_id or path.stem,
        "config_dir": str(config_dir),
        "inode": job.inode,
        "offset": offset,
        "size": read_to,
        "mtime": job.mtime,
        "head_hash": head_hash,
        "aggregate": json.dumps(agg.to_dict(), separators=(",", ":")),
        "_report": reported,
    }
    return agg, row


_FILE_COLUMNS = "path, session_id, config_dir, inode, offset, size, mtime, head_hash"
# Bytes to read in one scan above which the reading and parsing run in their own thread
# instead of on the store worker.
OFFLOAD_MIN_BYTES = 1024 * 1024
# Files per store call in a scan: the database worker is shared (heartbeats, schedules,
# queries), so a big first index is done in slices that other calls can run between.
SCAN_CHUNK_FILES = 50


class TranscriptIndex:
    """The persisted index of transcripts, on a sqlite-utils database the caller owns.

    Sync and not thread-safe: call it only from the store worker. Every method is one
    transaction at most.
    """

    def __init__(self, db: sqlite_utils.Database, *, now: Callable[[], float] = time.time) -> None:
        self.db = db
        self._now = now
        ensure_schema(db)

    # ----------------------------------------------------------------- scanning

    def scan_file(self, path: Path, config_dir: Path | None = None) -> TranscriptAggregate | None:
        """Read the new bytes of one transcript and persist the result.

        Returns the aggregate if it changed (new complete lines, a new or restarted file), the
        last known aggregate with ``removed=True`` if a known file vanished (its row is
        deleted), and None if nothing changed or the file is unknown and absent.
        ``config_dir`` defaults to the stored one, else to ``path``'s grandparent's parent.
        """
        return next(iter(self.scan_paths([(Path(path), config_dir)])), None)

    def scan_config_dir(self, config_dir: Path) -> list[TranscriptAggregate]:
        """Scan every transcript under ``config_dir/projects``; return the changed aggregates.

        Known files of this config dir that are gone are reported with ``removed=True``.
        A config dir without ``projects/`` (yet) is fine: nothing is returned.
        """
        return self.scan_paths(self.config_dir_items(config_dir))

    def config_dir_items(self, config_dir: Path) -> list[tuple[Path, Path | None]]:
        """Every transcript to look at for ``config_dir``: on disk, plus known ones (to notice
        deletions). Cheap: a directory walk and one indexed column, no file is read."""
        config_dir = Path(config_dir)
        paths: dict[Path, Path | None] = {p: config_dir for p in iter_transcripts(config_dir)}
        for row in self.db.table(TABLE).rows_where(
            "config_dir = ?", [str(config_dir)], select="path"
        ):
            paths.setdefault(Path(row["path"]), config_dir)
        return sorted(paths.items())

    def scan_paths(self, items: Iterable[tuple[Path, Path | None]]) -> list[TranscriptAggregate]:
        """Scan several ``(path, config_dir or None)`` at once, committing in one transaction."""
        return self.commit([read_job(job) for job in self.plan(items)])

    # The three steps of a scan, for callers that parse elsewhere (run_transcript_watcher):
    # plan and commit touch the database (store worker); read_job only the files (any thread).

    def plan(self, items: Iterable[tuple[Path, Path | None]]) -> list[ScanJob]:
        """What each path needs: nothing (unchanged: left out), a read from some offset, or a
        removal. Stats the files; reads only the database."""
        items = [(Path(p), None if c is None else Path(c)) for p, c in items if _usable(p, c)]
        rows = self._rows_for([p for p, _ in items])
        jobs: list[ScanJob] = []
        for path, config_dir in items:
            job = self._plan_one(path, config_dir, rows.get(str(path)))
            if job is not None:
                jobs.append(job)
        return jobs

    def commit(self, results: Iterable[ScanResult | None]) -> list[TranscriptAggregate]:
        """Persist what :func:`read_job` found, in one transaction; the changed aggregates."""
        changed: list[TranscriptAggregate] = []
        upserts: list[dict[str, Any]] = []
        deletes: list[str] = []
        for result in results:
            if result is None:
                continue
            agg, new_row = result
            if new_row is None:
                if agg is not None:
                    deletes.append(agg.path or "")
                    changed.append(agg)
                continue
            reported = new_row.pop("_report", True)
            new_row["updated_at"] = int(self._now())
            upserts.append(new_row)
            if reported and agg is not None:
                changed.append(agg)
        if upserts or deletes:
            with write_transaction(self.db):
                table = self.db.table(TABLE)
                if upserts:
                    table.upsert_all(upserts, pk="path")
                for p in deletes:
                    table.delete_where("path = ?", [p])
        return changed

    def _rows_for(self, paths: list[Path]) -> dict[str, dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        table = self.db.table(TABLE)
        keys = [str(p) for p in paths]
        # SQLite caps host parameters (32766 on modern builds); stay well below.
        for i in range(0, len(keys), 500):
            batch = keys[i : i + 500]
            marks = ",".join("?" * len(batch))
            # Not the aggregate JSON: most rows are unchanged, and it is the bulk of the table.
            for row in table.rows_where(f"path in ({marks})", batch, select=_FILE_COLUMNS):
                rows[row["path"]] = row
        return rows

    def _aggregate_of(self, path: str) -> TranscriptAggregate:
        row = self.db.execute(f"SELECT aggregate FROM {TABLE} WHERE path = ?", [path]).fetchone()
        return TranscriptAggregate.from_dict(json.loads(row[0]))

    def _plan_one(
        self, path: Path, config_dir: Path | None, row: dict[str, Any] | None
    ) -> ScanJob | None:
        try:
            st = os.stat(path)
            regular = stat.S_ISREG(st.st_mode)
        except (FileNotFoundError, NotADirectoryError):
            regular = False
        if not regular:
            if row is None:
                return None
            gone = self._aggregate_of(str(path))
            gone.path = str(path)
            gone.removed = True
            return ScanJob(path, Path(row["config_dir"]), removed=gone)

        if config_dir is None:
            config_dir = Path(row["config_dir"]) if row is not None else path.parent.parent.parent
        restart = row is None or row["inode"] != st.st_ino or st.st_size < row["offset"]
        if (
            not restart
            and row is not None
            and st.st_size == row["size"]
            and st.st_mtime == row["mtime"]
            and str(config_dir) == row["config_dir"]
        ):
            return None
        job = ScanJob(path, config_dir, size=st.st_size, inode=st.st_ino, mtime=st.st_mtime)
        if not restart and row is not None:
            job.offset = row["offset"]
            job.head_hash = row["head_hash"]
            job.row_config_dir = row["config_dir"]
            job.aggregate = self._aggregate_of(str(path))
        return job

    # ----------------------------------------------------------------- queries

    def all(self) -> list[dict[str, Any]]:
        """Every indexed transcript: the aggregate's fields plus the file columns
        (``path``, ``config_dir``, ``offset``, ``size``, ``mtime``, ``updated_at``), newest first."""
        return [self._row_dict(r) for r in self.db.table(TABLE).rows_where(order_by="mtime desc")]

    def aggregates(self) -> list[TranscriptAggregate]:
        """Every indexed aggregate, newest file first."""
        return [
            TranscriptAggregate.from_dict(json.loads(r["aggregate"]))
            for r in self.db.table(TABLE).rows_where(order_by="mtime desc", select="aggregate")
        ]

    def for_session(self, session_id: str) -> dict[str, Any] | None:
        """The most recently modified transcript of ``session_id`` (as :meth:`all`), if any."""
        for r in self.db.table(TABLE).rows_where(
            "session_id = ?", [session_id], order_by="mtime desc", limit=1
        ):
            return self._row_dict(r)
        return None

    @staticmethod
    def _row_dict(row: dict[str, Any]) -> dict[str, Any]:
        d = json.loads(row["aggregate"])
        for key in ("path", "session_id", "config_dir", "offset", "size", "mtime", "updated_at"):
            d[key] = row[key]
        return d


# --------------------------------------------------------------------- the trio task


def _usable(path: Path | str, config_dir: Path | str | None) -> bool:
    """A path that can be stored and reported: valid UTF-8. A file name with other bytes (read
    from disk as surrogate escapes) or a lone surrogate would fail the whole batch's
    transaction, for ever; it cannot name a session anyway (ids are plain ASCII)."""
    for p in (path, config_dir):
        if p is None:
            continue
        try:
            str(p).encode("utf-8")
        except UnicodeEncodeError:
            log.warning("transcript path %r is not valid UTF-8; skipped", str(p))
            return False
    return True


async def _maybe_await(result: Awaitable[None] | None) -> None:
    if inspect.isawaitable(result):
        await result


def _dedupe_dirs(dirs: Iterable[Path]) -> dict[Path, Path]:
    """Config dirs by their real path (``~/.claude`` and ``$CLAUDE_CONFIG_DIR`` may be one dir);
    the first spelling wins, sorted for a stable choice."""
    out: dict[Path, Path] = {}
    for d in sorted(Path(x).expanduser() for x in dirs):
        try:
            real = d.resolve()
        except (OSError, RuntimeError):
            real = d
        except ValueError as exc:  # a name that cannot be encoded: not a dir we can watch
            log.warning("config dir %r cannot be used as a path (%s); not watched", d, exc)
            continue
        out.setdefault(real, d)
    return {v: real for real, v in out.items()}


async def run_transcript_watcher(
    index: TranscriptIndex,
    config_dirs: Callable[[], Iterable[Path]],
    call_store: Callable[..., Awaitable[Any]],
    on_change: Callable[[list[TranscriptAggregate]], Awaitable[None] | None],
    *,
    rescan_interval_s: float = RESCAN_INTERVAL_S,
    use_watchfiles: bool = True,
    debounce_ms: int = WATCH_DEBOUNCE_MS,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Keep ``index`` current for every config dir; report changed aggregates. Never returns.

    ``config_dirs()`` is re-evaluated every ``rescan_interval_s``. ``call_store(fn, *args)`` runs
    ``fn(*args)`` on the store worker and returns its result. ``on_change`` gets each non-empty
    batch of changed aggregates (``removed=True`` for vanished files). Started (``task_status``)
    after the initial full scan, so the index is complete once ``nursery.start`` returns.
    Scan failures (permissions, a broken file) are logged and retried next rescan, never fatal.
    With ``use_watchfiles=False`` it is a pure stat-polling watcher at ``rescan_interval_s``.
    """

    scan = _Scanner(index, call_store)

    async def rescan(dirs: Iterable[Path]) -> None:
        for d in dirs:
            try:
                items = await call_store(index.config_dir_items, d)
                for i in range(0, len(items), SCAN_CHUNK_FILES):
                    changed = await scan(items[i : i + SCAN_CHUNK_FILES])
                    if changed:
                        await _maybe_await(on_change(changed))
            except Exception:
                log.exception("transcript scan of %s failed; retrying at the next rescan", d)
                continue

    dirs = _dedupe_dirs(config_dirs())
    await rescan(dirs)
    task_status.started()

    watch: _Watch | None = None
    async with trio.open_nursery() as nursery:
        try:
            while True:
                if use_watchfiles:
                    roots = {d / "projects": d for d in dirs if (d / "projects").is_dir()}
                    if watch is None or set(roots) != set(watch.roots):
                        if watch is not None:
                            watch.stop()
                        watch = _Watch(roots) if roots else None
                        if watch is not None:
                            await nursery.start(watch.run, scan, on_change, debounce_ms)
                await trio.sleep(rescan_interval_s)
                dirs = _dedupe_dirs(config_dirs())
                await rescan(dirs)
        finally:
            # Set the stop event before the nursery waits: the watch thread sees it within
            # WATCH_STEP_MS, so cancellation is not held up by watchfiles' blocking wait.
            if watch is not None:
                watch.stop()


def _read_all(jobs: list[ScanJob]) -> list[ScanResult | None]:
    return [read_job(job) for job in jobs]


class _Scanner:
    """``await scan(items)``: TranscriptIndex.scan_paths with the reading and parsing off the
    store worker when there is much to read, so a first index of a big history does not hold
    up the daemon's other database calls. Scans run one at a time (the rescan and the watch
    share it): a plan is committed before the next plan is made."""

    def __init__(self, index: TranscriptIndex, call_store: Callable[..., Awaitable[Any]]) -> None:
        self.index = index
        self.call_store = call_store
        self._lock = trio.Lock()
        self._readers = trio.CapacityLimiter(1)

    async def __call__(
        self, items: Sequence[tuple[Path, Path | None]]
    ) -> list[TranscriptAggregate]:
        async with self._lock:
            jobs: list[ScanJob] = await self.call_store(self.index.plan, items)
            if not jobs:
                return []
            todo = sum(j.size - j.offset for j in jobs if j.removed is None)
            if todo < OFFLOAD_MIN_BYTES:
                # A few appended lines: one more store call is cheaper than a thread hop
                # (and keeps virtual-time tests, whose store runs inline, deterministic).
                results = await self.call_store(_read_all, jobs)
            else:
                results = await trio.to_thread.run_sync(_read_all, jobs, limiter=self._readers)
            changed: list[TranscriptAggregate] = await self.call_store(self.index.commit, results)
            return changed


class _Watch:
    """One ``watchfiles.awatch`` over a fixed set of ``projects/`` dirs, stoppable from outside."""

    def __init__(self, roots: dict[Path, Path]) -> None:
        self.roots = roots  # projects dir -> config dir
        self._stop = anyio.Event()
        self._scope: trio.CancelScope | None = None

    def stop(self) -> None:
        self._stop.set()
        if self._scope is not None:
            self._scope.cancel()

    def _filter(self, change: watchfiles.Change, path: str) -> bool:
        p = Path(path)
        if p.parent in self.roots:
            # A project dir appearing: files written into it before the recursive watch reached
            # it would otherwise wait for the next rescan.
            return change == watchfiles.Change.added
        return p.suffix == ".jsonl" and p.parent.parent in self.roots

    def _items(self, changes: set[tuple[watchfiles.Change, str]]) -> list[tuple[Path, Path]]:
        items: set[tuple[Path, Path]] = set()
        for _, raw in changes:
            p = Path(raw)
            if p.parent in self.roots:
                config_dir = self.roots[p.parent]
                try:
                    items.update((f, config_dir) for f in p.glob("*.jsonl"))
                except OSError:
                    continue
            else:
                items.add((p, self.roots[p.parent.parent]))
        return sorted(items)

    async def run(
        self,
        scan: _Scanner,
        on_change: Callable[[list[TranscriptAggregate]], Awaitable[None] | None],
        debounce_ms: int,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        with trio.CancelScope() as scope:
            self._scope = scope
            task_status.started()
            # aclosing: a cancelled watch must close its generator now, not at garbage collection.
            stream = watchfiles.awatch(
                *self.roots,
                watch_filter=self._filter,
                stop_event=self._stop,
                debounce=debounce_ms,
                step=WATCH_STEP_MS,
            )
            try:
                async with aclosing(stream):
                    async for changes in stream:
                        items = self._items(changes)
                        if not items:
                            continue
                        try:
                            changed = await scan(items)
                        except Exception:
                            log.exception(
                                "transcript scan after a change failed; the rescan retries"
                            )
                            continue
                        if changed:
                            try:
                                await _maybe_await(on_change(changed))
                            except Exception:
                                log.exception("reporting changed transcripts failed; going on")
            except OSError:
                # Too many inotify watches, a projects/ dir removed under us, ...: the periodic
                # rescan still covers every file, only with rescan latency.
                log.warning(
                    "watching %s failed; falling back to rescans every interval",
                    ", ".join(map(str, self.roots)),
                    exc_info=True,
                )
