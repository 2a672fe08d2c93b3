"""The database (``scheduled.db``): schema by migrations and typed, synchronous methods.

Owns the seed's three tables (``scheduled_messages``, ``session_metadata``, ``context_window``;
columns may be added, never removed). Everything here is blocking sqlite-utils code: the daemon
calls it off the event loop through one serialised worker (``StoreWorker`` in ``storeworker.py``),
and the CLI calls it directly when the daemon is down. One method call = one transaction.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils
from sqlite_utils.migrations import Migrations

from .paths import FILE_MODE

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000  # SPEC §5: concurrent CLI writers wait instead of failing at once

migrations = Migrations("ccc_statusd")


@migrations()
def m001_seed_tables(db: sqlite_utils.Database) -> None:
    db.execute(
        """CREATE TABLE IF NOT EXISTS scheduled_messages (
            id TEXT PRIMARY KEY,
            session_id TEXT NOT NULL,
            message TEXT NOT NULL,
            send_at INTEGER NOT NULL,
            created_at INTEGER NOT NULL)"""
    )
    db.execute(
        """CREATE TABLE IF NOT EXISTS session_metadata (
            session_id TEXT PRIMARY KEY,
            claude_config_dir TEXT NOT NULL,
            transcript_path TEXT,
            first_seen INTEGER NOT NULL,
            last_seen INTEGER NOT NULL)"""
    )
    db.execute(
        """CREATE TABLE IF NOT EXISTS context_window (
            session_id TEXT PRIMARY KEY,
            context_window_size INTEGER NOT NULL,
            used_percentage REAL NOT NULL,
            remaining_percentage REAL NOT NULL,
            total_input_tokens INTEGER NOT NULL,
            total_output_tokens INTEGER NOT NULL,
            cache_read_input_tokens INTEGER,
            cache_creation_input_tokens INTEGER,
            current_input_tokens INTEGER,
            current_output_tokens INTEGER,
            updated_at INTEGER NOT NULL)"""
    )


@migrations()
def m002_delivery_columns(db: sqlite_utils.Database) -> None:
    sched = db["scheduled_messages"]
    sched.add_column("kind", str, not_null_default="prompt")  # type: ignore[union-attr]
    sched.add_column("trigger", str, not_null_default="at")  # type: ignore[union-attr]
    sched.add_column("attempts", int, not_null_default=0)  # type: ignore[union-attr]
    sched.add_column("last_error", str)  # type: ignore[union-attr]
    sched.add_column("last_attempt_at", int)  # type: ignore[union-attr]
    sched.add_column("sender", str)  # type: ignore[union-attr]
    db.execute("CREATE INDEX IF NOT EXISTS idx_sched_send_at ON scheduled_messages(send_at)")
    meta = db["session_metadata"]
    for col, typ in (
        ("internal_id", str),
        ("alias_of", str),
        ("cwd", str),
        ("model", str),
        ("state", str),
        ("state_changed_at", int),
        ("state_error", str),
        ("client_kind", str),
        ("pid", int),
        ("tmux_pane", str),
        ("git_branch", str),
        ("cost_usd", float),
        ("last_assistant_message", str),
        ("data", str),
    ):
        meta.add_column(col, typ)  # type: ignore[union-attr]


@migrations()
def m003_outbox_rows(db: sqlite_utils.Database) -> None:
    """Commands keep their name and arguments apart (no re-parsing of a typed line), and each
    row has a delivery state: ``pending``, ``in_flight`` (being typed: too late to cancel), or
    ``parked`` (gave up after repeated permanent errors; listed with its error, never retried)."""
    sched = db["scheduled_messages"]
    sched.add_column("command_name", str)  # type: ignore[union-attr]
    sched.add_column("state", str, not_null_default="pending")  # type: ignore[union-attr]
    for row in list(db.query("SELECT id, message FROM scheduled_messages WHERE kind = 'command'")):
        name, _, args = str(row["message"]).lstrip("/").partition(" ")
        db.execute(
            "UPDATE scheduled_messages SET command_name = ?, message = ? WHERE id = ?",
            [name, args, row["id"]],
        )
    # The scheduler reads due rows only, and per-session counts are frequent (statusline).
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_sched_state_send_at ON scheduled_messages(state, send_at)"
    )
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_sched_session ON scheduled_messages(session_id, send_at)"
    )


@migrations()
def m004_session_identity(db: sqlite_utils.Database) -> None:
    """What a restart must not lose: the name, how the session ended, its tmux server, and the
    start time of its pid (a reused pid is not the same process)."""
    meta = db["session_metadata"]
    for col, typ in (
        ("name", str),
        ("end_reason", str),
        ("tmux_socket", str),
        ("pid_start", int),
    ):
        meta.add_column(col, typ)  # type: ignore[union-attr]
    db.execute("CREATE INDEX IF NOT EXISTS idx_meta_alias_of ON session_metadata(alias_of)")


@contextmanager
def write_transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """A write transaction that takes the write lock up front (``BEGIN IMMEDIATE``).

    sqlite-utils' ``atomic()`` begins DEFERRED: a connection that read first and then finds
    another writer fails at once with "database is locked", ignoring the busy timeout. Taking
    the lock first makes a second writer (the CLI while the daemon writes) wait instead.
    """
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    db.conn.execute("COMMIT")


def now_s() -> int:
    """Wall-clock seconds for the database (the one place wall time is read for storage)."""
    return int(time.time())


class CorruptDatabase(Exception):
    pass


class ScheduleFull(Exception):
    """A cap on scheduled/queued rows was reached; ``str(exc)`` says what to do."""


# Delivery states of a scheduled row (m003).
PENDING, IN_FLIGHT, PARKED = "pending", "in_flight", "parked"


def open_db(path: Path) -> sqlite_utils.Database:
    """Open (creating, 0600) the database with WAL and the busy timeout; apply migrations.

    A file that is not a database, or fails ``quick_check``, is moved aside (``.corrupt-<ts>``)
    with a logged warning and a fresh one created: a corrupt file must never cause a crash loop.
    """
    try:
        return _open(path)
    except (sqlite3.DatabaseError, CorruptDatabase) as exc:
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        log.warning("database %s is unreadable (%s); moved it aside to %s", path, exc, aside)
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(path) + suffix)
            if p.exists():
                os.replace(p, Path(str(aside) + suffix))
        return _open(path)


def _open(path: Path) -> sqlite_utils.Database:
    from .paths import check_own_file

    for suffix in ("", "-wal", "-shm"):
        # A planted symlink, dir or FIFO is refused (UnsafeCacheDir), never followed or opened.
        check_own_file(Path(str(path) + suffix))
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK, FILE_MODE)
        os.close(fd)
    # check_same_thread=False: the daemon's store worker may run on any pooled thread, but
    # a CapacityLimiter(1) guarantees only one uses the connection at a time.
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    db = sqlite_utils.Database(conn)
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        log.warning("database %s could not switch to WAL (mode %s)", path, mode)
    result = db.execute("PRAGMA quick_check").fetchone()[0]
    if result != "ok":
        conn.close()
        raise CorruptDatabase(f"quick_check says: {result}")
    migrations.apply(db)
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(path) + suffix)
        if p.exists():
            os.chmod(p, FILE_MODE)
    return db


# Columns of session_metadata the daemon writes (everything else is ignored on upsert).
META_COLUMNS = frozenset(
    {
        "session_id",
        "claude_config_dir",
        "transcript_path",
        "first_seen",
        "last_seen",
        "internal_id",
        "alias_of",
        "cwd",
        "model",
        "state",
        "state_changed_at",
        "state_error",
        "client_kind",
        "pid",
        "tmux_pane",
        "git_branch",
        "cost_usd",
        "last_assistant_message",
        "data",
        "name",
        "end_reason",
        "tmux_socket",
        "pid_start",
    }
)
CONTEXT_COLUMNS = (
    "context_window_size",
    "used_percentage",
    "remaining_percentage",
    "total_input_tokens",
    "total_output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "current_input_tokens",
    "current_output_tokens",
)


class Store:
    """Typed access to ``scheduled.db``. Not thread-safe: one caller at a time."""

    def __init__(self, path: Path, db: sqlite_utils.Database | None = None) -> None:
        self.path = path
        self.db = open_db(path) if db is None else db

    @classmethod
    def open_readonly(cls, path: Path) -> Store | None:
        """A read-only view (no create, no migration, no repair), or None if there is no file:
        what the CLI uses when the daemon is down."""
        if not path.exists():
            return None
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        return cls(path, sqlite_utils.Database(conn))

    def close(self) -> None:
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
        self.db.conn.close()

    # --- session metadata ---------------------------------------------------------------

    def upsert_sessions(self, rows: Iterable[dict[str, Any]], now: int | None = None) -> int:
        """Insert or update many sessions in one transaction; keeps ``first_seen``."""
        now = now_s() if now is None else now
        count = 0
        with write_transaction(self.db):
            for row in rows:
                clean = {k: v for k, v in row.items() if k in META_COLUMNS and v is not None}
                if isinstance(clean.get("data"), dict):
                    clean["data"] = json.dumps(clean["data"])
                clean.setdefault("last_seen", now)
                clean.setdefault("first_seen", now)
                clean.setdefault("claude_config_dir", "")
                cols = list(clean)
                # One statement per row; first_seen is kept from the first insert.
                updates = ", ".join(
                    f"[{c}] = excluded.[{c}]"
                    for c in cols
                    if c not in ("session_id", "first_seen", "claude_config_dir")
                )
                # An unknown config dir ("", NOT NULL in the seed schema) never erases a known one.
                updates += ", claude_config_dir = CASE WHEN excluded.claude_config_dir = '' THEN claude_config_dir ELSE excluded.claude_config_dir END"
                self.db.execute(
                    f"INSERT INTO session_metadata ({', '.join(f'[{c}]' for c in cols)}) "
                    f"VALUES ({', '.join('?' for _ in cols)}) "
                    f"ON CONFLICT(session_id) DO UPDATE SET {updates}",
                    [clean[c] for c in cols],
                )
                count += 1
        return count

    def sessions(self) -> list[dict[str, Any]]:
        rows = list(self.db.query("SELECT * FROM session_metadata ORDER BY last_seen DESC"))
        ctx = {r["session_id"]: r for r in self.db.query("SELECT * FROM context_window")}
        for row in rows:
            if row.get("data"):
                try:
                    row["data"] = json.loads(row["data"])
                except ValueError:
                    row["data"] = None
            if row["session_id"] in ctx:
                row["context_window"] = ctx[row["session_id"]]
        return rows

    def session(self, session_id: str) -> dict[str, Any] | None:
        for row in self.db.query(
            "SELECT * FROM session_metadata WHERE session_id = ?", [session_id]
        ):
            return dict(row)
        return None

    def forget_session(self, session_ids: list[str]) -> int:
        """Delete a session's rows (its id and aliases), its context figures: ``ccc forget``."""
        marks = ", ".join("?" for _ in session_ids)
        with write_transaction(self.db):
            cur = self.db.execute(
                f"DELETE FROM session_metadata WHERE session_id IN ({marks}) "
                f"OR alias_of IN ({marks})",
                [*session_ids, *session_ids],
            )
            self.db.execute(
                f"DELETE FROM context_window WHERE session_id IN ({marks})", session_ids
            )
        return cur.rowcount

    def delete_scheduled_for(self, session_ids: list[str]) -> int:
        """Drop every scheduled/queued row of these sessions (they were forgotten)."""
        marks = ", ".join("?" for _ in session_ids)
        with write_transaction(self.db):
            cur = self.db.execute(
                f"DELETE FROM scheduled_messages WHERE session_id IN ({marks})", session_ids
            )
        return cur.rowcount

    def ended_before(self, when: int) -> list[str]:
        """Ids of sessions that ended before ``when`` (wall seconds): retention's candidates."""
        return [
            r[0]
            for r in self.db.execute(
                "SELECT session_id FROM session_metadata WHERE alias_of IS NULL AND "
                "state = 'ended' AND coalesce(state_changed_at, last_seen) < ?",
                [when],
            )
        ]

    def queued_counts(self) -> dict[str, int]:
        """Waiting rows per session (one query for the whole list)."""
        return {
            r[0]: int(r[1])
            for r in self.db.execute(
                "SELECT session_id, count(*) FROM scheduled_messages GROUP BY session_id"
            )
        }

    def session_ids(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT session_id FROM session_metadata")]

    # --- context window -----------------------------------------------------------------

    def upsert_context_window(
        self, session_id: str, fig: dict[str, Any], now: int | None = None
    ) -> None:
        row = {"session_id": session_id, "updated_at": now_s() if now is None else now}
        row.update({k: fig.get(k) for k in CONTEXT_COLUMNS})
        with write_transaction(self.db):
            self.db["context_window"].upsert(row, pk="session_id")  # type: ignore[union-attr]

    def context_window(self, session_id: str) -> dict[str, Any] | None:
        for row in self.db.query("SELECT * FROM context_window WHERE session_id = ?", [session_id]):
            return dict(row)
        return None

    # --- scheduled messages (and the outbox of queued deliveries) -------------------------

    def add_scheduled(
        self,
        session_id: str,
        message: str,
        send_at: int,
        *,
        kind: str = "prompt",
        command_name: str | None = None,
        trigger: str = "at",
        sender: str | None = None,
        now: int | None = None,
        id: str | None = None,
        max_total: int | None = None,
        max_per_session: int | None = None,
    ) -> dict[str, Any]:
        """Insert one row. With caps, refuses (``ScheduleFull``) when the table or the
        session's outbox already holds that many rows (checked in the same transaction)."""
        row = {
            "id": id or uuid.uuid4().hex[:12],
            "session_id": session_id,
            "message": message,
            "send_at": int(send_at),
            "created_at": now_s() if now is None else now,
            "kind": kind,
            "command_name": command_name,
            "trigger": trigger,
            "attempts": 0,
            "sender": sender,
            "state": PENDING,
        }
        with write_transaction(self.db):
            if max_total is not None and self._count() >= max_total:
                raise ScheduleFull(
                    f"the schedule is full ({max_total} messages); cancel some with: "
                    "ccc schedule cancel ID (list them with: ccc schedule list)"
                )
            if max_per_session is not None and self._count(session_id) >= max_per_session:
                raise ScheduleFull(
                    f"session {session_id[:8]} already has {max_per_session} messages waiting; "
                    "let it catch up, or cancel some with: ccc schedule cancel ID"
                )
            self.db["scheduled_messages"].insert(row)  # type: ignore[union-attr]
        return row

    def scheduled(self, session_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM scheduled_messages"
        args: list[Any] = []
        if session_id:
            sql += " WHERE session_id = ?"
            args.append(session_id)
        return [dict(r) for r in self.db.query(sql + " ORDER BY send_at, created_at, rowid", args)]

    def due_scheduled(self, now: int, per_session: int) -> list[dict[str, Any]]:
        """Rows due at ``now`` that may be tried (not parked), oldest first, at most
        ``per_session`` of each session: a flooded outbox costs a few rows per pass.

        An ``in_flight`` row is one a crash interrupted mid-delivery: it is tried again (its
        delivery id makes the session client answer a repeat without typing it twice)."""
        return [
            {k: v for k, v in dict(r).items() if k not in ("rn", "rid")}
            for r in self.db.query(
                "SELECT * FROM (SELECT *, rowid AS rid, row_number() OVER (PARTITION BY "
                "session_id ORDER BY send_at, created_at, rowid) AS rn FROM scheduled_messages "
                "WHERE state != ? AND send_at <= ?) WHERE rn <= ? "
                "ORDER BY send_at, created_at, rid",
                [PARKED, now, per_session],
            )
        ]

    def next_send_at(self, after: int) -> int | None:
        """The earliest ``send_at`` later than ``after`` among rows that may be tried."""
        row = self.db.execute(
            "SELECT min(send_at) FROM scheduled_messages WHERE state != ? AND send_at > ?",
            [PARKED, after],
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def scheduled_one(self, id: str) -> dict[str, Any] | None:
        for row in self.db.query("SELECT * FROM scheduled_messages WHERE id = ?", [id]):
            return dict(row)
        return None

    def delete_scheduled(self, id: str) -> bool:
        with write_transaction(self.db):
            cur = self.db.execute("DELETE FROM scheduled_messages WHERE id = ?", [id])
        return cur.rowcount > 0

    def cancel_scheduled(self, id: str) -> str:
        """Delete a row unless it is being delivered: ``cancelled``, ``in_flight`` or ``missing``."""
        with write_transaction(self.db):
            row = self.db.execute(
                "SELECT state FROM scheduled_messages WHERE id = ?", [id]
            ).fetchone()
            if row is None:
                return "missing"
            if row[0] == IN_FLIGHT:
                return "in_flight"
            self.db.execute("DELETE FROM scheduled_messages WHERE id = ?", [id])
        return "cancelled"

    def claim_scheduled(self, id: str) -> dict[str, Any] | None:
        """Mark a row in flight (from then on it cannot be cancelled) and return it; None if it
        was cancelled or parked meanwhile."""
        with write_transaction(self.db):
            cur = self.db.execute(
                "UPDATE scheduled_messages SET state = ? WHERE id = ? AND state != ?",
                [IN_FLIGHT, id, PARKED],
            )
            if cur.rowcount == 0:
                return None
            for row in self.db.query("SELECT * FROM scheduled_messages WHERE id = ?", [id]):
                return dict(row)
        return None  # pragma: no cover - the row was just updated

    def release_scheduled(self, id: str, error: str | None, now: int, *, park: bool) -> None:
        """After an attempt that did not deliver: back to ``pending`` (or ``parked``), with
        the error counted when there is one (a "not now" is not an attempt)."""
        state = PARKED if park else PENDING
        with write_transaction(self.db):
            if error is None:
                self.db.execute("UPDATE scheduled_messages SET state = ? WHERE id = ?", [state, id])
            else:
                self.db.execute(
                    "UPDATE scheduled_messages SET state = ?, attempts = attempts + 1, "
                    "last_error = ?, last_attempt_at = ? WHERE id = ?",
                    [state, error, now, id],
                )

    def match_scheduled(self, prefix: str) -> list[str]:
        return [
            r[0]
            for r in self.db.execute(
                "SELECT id FROM scheduled_messages WHERE id LIKE ? ESCAPE '\\'",
                [prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"],
            )
        ]

    def count_scheduled(self, session_id: str | None = None) -> int:
        return self._count(session_id)

    def _count(self, session_id: str | None = None) -> int:
        if session_id is None:
            return int(self.db.execute("SELECT count(*) FROM scheduled_messages").fetchone()[0])
        return int(
            self.db.execute(
                "SELECT count(*) FROM scheduled_messages WHERE session_id = ?", [session_id]
            ).fetchone()[0]
        )


# The transcript index (watchers/transcripts.py): one row per transcript file, where it was read
# up to and the aggregate so far. Columns may be added, never removed.
TRANSCRIPT_INDEX_COLUMNS = (
    ("path", "TEXT PRIMARY KEY"),
    ("session_id", "TEXT"),
    ("config_dir", "TEXT"),
    ("inode", "INTEGER"),
    ("offset", "INTEGER"),
    ("size", "INTEGER"),
    ("mtime", "FLOAT"),
    ("head_hash", "TEXT"),
    ("aggregate", "TEXT"),
    ("updated_at", "INTEGER"),
)


@migrations()
def m005_transcript_index(db: sqlite_utils.Database) -> None:
    """Idempotent: databases from before this migration may hold the table already (it was
    created outside migrations); then only missing columns and indexes are added."""
    cols = ", ".join(f"[{name}] {kind}" for name, kind in TRANSCRIPT_INDEX_COLUMNS)
    db.execute(f"CREATE TABLE IF NOT EXISTS [transcript_index] ({cols})")
    have = {row[1] for row in db.execute("PRAGMA table_info([transcript_index])")}
    for name, kind in TRANSCRIPT_INDEX_COLUMNS:
        if name not in have:
            db.execute(f"ALTER TABLE [transcript_index] ADD COLUMN [{name}] {kind}")
    for col in ("session_id", "config_dir"):
        db.execute(
            f"CREATE INDEX IF NOT EXISTS [idx_transcript_index_{col}] ON [transcript_index] ([{col}])"
        )
