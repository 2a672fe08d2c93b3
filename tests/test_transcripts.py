"""TranscriptIndex on a real sqlite file and real transcript files, and the watcher task under
trio (watchfiles, and the stat-polling mode on a MockClock)."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlite_utils
import trio

from ccc_statusd.watchers.transcript_parse import TranscriptAggregate
from ccc_statusd.watchers.transcripts import (
    HEAD_FINGERPRINT_BYTES,
    TABLE,
    TranscriptIndex,
    run_transcript_watcher,
)

from .fixtures import transcript as captured_transcript
from .fixtures import transcript_session_id
from .helpers import wait_until

T = TypeVar("T")

PROJECT = "-home-user-project"


def fixture_bytes(version: str, n: int) -> tuple[str, bytes]:
    """(session id, contents) of a captured Claude Code transcript."""
    path = captured_transcript(version, n)
    return transcript_session_id(path), path.read_bytes()


def line(**fields: Any) -> bytes:
    return json.dumps(fields).encode() + b"\n"


def user_line(text: str = "hi", ts: str = "2026-01-01T00:00:00.000Z") -> bytes:
    return line(type="user", message={"role": "user", "content": text}, timestamp=ts, cwd="/w")


@pytest.fixture
def tmp(short_dir: Path) -> Path:
    return short_dir


@pytest.fixture
def db(tmp: Path) -> Iterator[sqlite_utils.Database]:
    # check_same_thread=False: the watcher tests call it from trio's worker threads, serialised
    # by a limiter of 1, like the daemon's store worker.
    conn = sqlite3.connect(tmp / "scheduled.db", check_same_thread=False)
    database = sqlite_utils.Database(conn)
    yield database
    conn.close()


def transcript(config_dir: Path, session_id: str, data: bytes = b"") -> Path:
    path = config_dir / "projects" / PROJECT / f"{session_id}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def fresh(data: bytes) -> dict[str, Any]:
    agg = TranscriptAggregate()
    agg.feed(data)
    d = agg.to_dict()
    return {
        k: d[k]
        for k in (
            "user_messages",
            "assistant_messages",
            "other_lines",
            "malformed_lines",
            "input_tokens",
            "output_tokens",
            "model",
            "first_ts",
            "last_ts",
        )
    }


def summary(agg: TranscriptAggregate | dict[str, Any]) -> dict[str, Any]:
    d = agg.to_dict() if isinstance(agg, TranscriptAggregate) else agg
    return {k: d[k] for k in fresh(b"")}


# ------------------------------------------------------------------ the sync index


def test_initial_scan_indexes_every_session_then_nothing_changes(
    tmp: Path, db: sqlite_utils.Database
) -> None:
    cfg = tmp / "cfg"
    sid1, data1 = fixture_bytes("v2.1.331", 1)
    sid2, data2 = fixture_bytes("v2.1.331", 2)
    transcript(cfg, sid1, data1)
    transcript(cfg, sid2, data2)
    # a subagent transcript, one level deeper, is not a session
    transcript(cfg / "projects" / PROJECT / sid1 / "subagents", "agent-x", user_line())
    sub = cfg / "projects" / PROJECT / sid1 / "subagents"
    (sub / "projects" / PROJECT / "agent-x.jsonl").rename(sub / "agent-x.jsonl")

    index = TranscriptIndex(db)
    changed = index.scan_config_dir(cfg)
    assert sorted(a.session_id for a in changed) == sorted([sid1, sid2])
    by_id = {a.session_id: a for a in changed}
    assert summary(by_id[sid1]) == fresh(data1)
    assert by_id[sid1].model == "claude-opus-5-5"
    assert by_id[sid1].config_dir == str(cfg)
    assert by_id[sid1].path == str(cfg / "projects" / PROJECT / f"{sid1}.jsonl")

    assert index.scan_config_dir(cfg) == []
    rows = index.all()
    assert {r["session_id"] for r in rows} == {sid1, sid2}
    row = index.for_session(sid1)
    assert row is not None and row["offset"] == len(data1) == row["size"]
    assert row["user_messages"] == 9


def test_a_config_dir_without_projects_is_fine(tmp: Path, db: sqlite_utils.Database) -> None:
    assert TranscriptIndex(db).scan_config_dir(tmp / "nope") == []


def test_appends_read_only_new_bytes_and_survive_a_restart(
    tmp: Path, db: sqlite_utils.Database
) -> None:
    cfg = tmp / "cfg"
    pad = b"".join(line(type="mode", n=i, pad="p" * 60) for i in range(100))  # > 4 KiB
    assert len(pad) > HEAD_FINGERPRINT_BYTES
    first = pad + user_line("one")
    path = transcript(cfg, "s1", first)
    index = TranscriptIndex(db)
    [agg] = index.scan_config_dir(cfg)
    assert agg.user_messages == 1

    # Tamper with already-indexed bytes past the fingerprinted head, keeping the size: if the
    # index re-read old bytes it would now count a malformed line.
    raw = bytearray(path.read_bytes())
    at = len(pad) - 20
    raw[at : at + 5] = b"XXXXX"
    path.write_bytes(bytes(raw))
    append(path, user_line("two"))
    [agg] = index.scan_config_dir(cfg)
    assert (agg.user_messages, agg.malformed_lines) == (2, 0)

    # A new index on a new connection to the same file = a daemon restart.
    db2 = sqlite_utils.Database(tmp / "scheduled.db")
    index2 = TranscriptIndex(db2)
    assert index2.scan_config_dir(cfg) == []
    append(path, user_line("three"))
    [agg] = index2.scan_config_dir(cfg)
    assert (agg.user_messages, agg.malformed_lines) == (3, 0)
    db2.close()


def test_half_written_line_is_read_again_once_complete(
    tmp: Path, db: sqlite_utils.Database
) -> None:
    cfg = tmp / "cfg"
    full = user_line("a") + user_line("b")
    path = transcript(cfg, "s1", full[:-7])
    index = TranscriptIndex(db)
    [agg] = index.scan_config_dir(cfg)
    assert agg.user_messages == 1
    row = index.for_session("s1")
    assert row is not None and row["offset"] == len(user_line("a"))
    append(path, b"more-but-no-newline"[:0])  # nothing new: no change reported
    assert index.scan_config_dir(cfg) == []
    append(path, full[-7:])
    [agg] = index.scan_config_dir(cfg)
    assert agg.user_messages == 2


def test_partial_bytes_without_a_new_line_report_nothing(
    tmp: Path, db: sqlite_utils.Database
) -> None:
    cfg = tmp / "cfg"
    path = transcript(cfg, "s1", user_line("a"))
    index = TranscriptIndex(db)
    index.scan_config_dir(cfg)
    append(path, b'{"type": "us')
    assert index.scan_config_dir(cfg) == []
    append(path, b'er"}\n')
    [agg] = index.scan_config_dir(cfg)
    assert agg.user_messages == 2


def test_truncated_file_is_read_from_the_start(tmp: Path, db: sqlite_utils.Database) -> None:
    cfg = tmp / "cfg"
    path = transcript(cfg, "s1", user_line("a") * 5)
    index = TranscriptIndex(db)
    index.scan_config_dir(cfg)
    with open(path, "r+b") as f:  # same inode, shorter
        f.truncate(0)
        f.write(line(type="system") + user_line("z"))
    [agg] = index.scan_config_dir(cfg)
    assert (agg.user_messages, agg.other_lines) == (1, 1)


def test_rewritten_in_place_and_grown_is_read_from_the_start(
    tmp: Path, db: sqlite_utils.Database
) -> None:
    cfg = tmp / "cfg"
    path = transcript(cfg, "s1", user_line("a") * 2)
    index = TranscriptIndex(db)
    index.scan_config_dir(cfg)
    with open(path, "r+b") as f:  # same inode, larger, different head: the offset is meaningless
        f.write(line(type="system", pad="q" * 200) * 3)
    [agg] = index.scan_config_dir(cfg)
    assert (agg.user_messages, agg.other_lines) == (0, 3)


def test_replaced_file_new_inode_is_read_from_the_start(
    tmp: Path, db: sqlite_utils.Database
) -> None:
    cfg = tmp / "cfg"
    path = transcript(cfg, "s1", user_line("a") * 2)
    index = TranscriptIndex(db)
    index.scan_config_dir(cfg)
    tmpfile = path.with_suffix(".tmp")
    tmpfile.write_bytes(user_line("a") * 2 + user_line("b"))
    os.replace(tmpfile, path)
    [agg] = index.scan_config_dir(cfg)
    assert agg.user_messages == 3


def test_deleted_file_is_reported_once_and_its_row_removed(
    tmp: Path, db: sqlite_utils.Database
) -> None:
    cfg = tmp / "cfg"
    keep = transcript(cfg, "keep", user_line())
    gone = transcript(cfg, "gone", user_line() * 2)
    index = TranscriptIndex(db)
    index.scan_config_dir(cfg)
    gone.unlink()
    [agg] = index.scan_config_dir(cfg)
    assert (agg.session_id, agg.removed, agg.user_messages) == ("gone", True, 2)
    assert [r["session_id"] for r in index.all()] == ["keep"]
    assert index.scan_config_dir(cfg) == []
    assert index.scan_file(gone) is None
    keep.unlink()
    removed = index.scan_file(keep)
    assert removed is not None and removed.removed
    assert db.table(TABLE).count == 0


def test_garbage_line_is_counted_not_fatal(tmp: Path, db: sqlite_utils.Database) -> None:
    cfg = tmp / "cfg"
    path = transcript(cfg, "s1", user_line() + b"}{ not json\n" + user_line())
    index = TranscriptIndex(db)
    [agg] = index.scan_config_dir(cfg)
    assert (agg.user_messages, agg.malformed_lines) == (2, 1)
    append(path, b"\x00\x01\x02\n" + user_line())
    [agg] = index.scan_config_dir(cfg)
    assert (agg.user_messages, agg.malformed_lines) == (3, 2)


def test_scan_file_for_a_single_path(tmp: Path, db: sqlite_utils.Database) -> None:
    sid, data = fixture_bytes("v2.1.112", 1)
    cfg = tmp / "cfg"
    path = transcript(cfg, sid, data)
    index = TranscriptIndex(db)
    agg = index.scan_file(path)
    assert agg is not None and agg.config_dir == str(cfg)
    assert summary(agg) == fresh(data)
    assert index.scan_file(path) is None


def test_schema_gains_missing_columns(tmp: Path, db: sqlite_utils.Database) -> None:
    db.table(TABLE).create({"path": str, "session_id": str}, pk="path")
    TranscriptIndex(db)
    assert "head_hash" in db.table(TABLE).columns_dict


# ------------------------------------------------------------------ the trio task


def store_caller() -> Callable[..., Any]:
    limiter = trio.CapacityLimiter(1)

    async def call_store(fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(fn, *args, limiter=limiter)

    return call_store


async def next_change(
    receive: trio.MemoryReceiveChannel[list[TranscriptAggregate]],
    pred: Callable[[TranscriptAggregate], bool],
) -> TranscriptAggregate:
    async for batch in receive:
        for agg in batch:
            if pred(agg):
                return agg
    raise AssertionError("channel closed")


async def test_watcher_sees_an_append_through_watchfiles(
    tmp: Path, db: sqlite_utils.Database
) -> None:
    cfg = tmp / "cfg"
    path = transcript(cfg, "s1", user_line())
    send, receive = trio.open_memory_channel[list[TranscriptAggregate]](100)
    index = TranscriptIndex(db)
    async with trio.open_nursery() as nursery:
        # A rescan interval far beyond the test: only a watchfiles notification can deliver.
        await nursery.start(
            lambda task_status: run_transcript_watcher(
                index,
                lambda: {cfg},
                store_caller(),
                send.send,
                rescan_interval_s=3600,
                debounce_ms=20,
                task_status=task_status,
            )
        )
        first = await next_change(receive, lambda a: a.session_id == "s1")
        assert first.user_messages == 1
        # The inotify watch is set up in a thread just after start; keep appending until one
        # append is noticed (a hang guard, not a timing assertion).
        with trio.fail_after(20):
            while True:
                append(path, user_line())
                with trio.move_on_after(0.5):
                    agg = await next_change(receive, lambda a: a.session_id == "s1")
                    assert agg.user_messages >= 2
                    break
            # A new project dir and file appear too.
            other = cfg / "projects" / "-other" / "s2.jsonl"
            other.parent.mkdir()
            other.write_bytes(user_line() * 3)
            agg = await next_change(receive, lambda a: a.session_id == "s2")
            assert agg.user_messages == 3
        nursery.cancel_scope.cancel()


async def test_watcher_picks_up_a_new_config_dir(tmp: Path, db: sqlite_utils.Database) -> None:
    first, later = tmp / "a", tmp / "b"
    transcript(first, "s1", user_line())
    dirs = {first, tmp / "missing"}
    asked = 0

    def config_dirs() -> set[Path]:
        nonlocal asked
        asked += 1
        return set(dirs)

    send, receive = trio.open_memory_channel[list[TranscriptAggregate]](100)
    index = TranscriptIndex(db)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: run_transcript_watcher(
                index,
                config_dirs,
                store_caller(),
                send.send,
                rescan_interval_s=0.05,
                debounce_ms=20,
                task_status=task_status,
            )
        )
        with trio.fail_after(20):  # hang guard
            await next_change(receive, lambda a: a.session_id == "s1")
            later.mkdir()
            dirs.add(later)
            seen = asked
            # a few rescans with a projects/-less config dir
            await wait_until(lambda: asked >= seen + 3, what="two rescans passed")
            transcript(later, "s2", user_line() * 2)
            agg = await next_change(receive, lambda a: a.session_id == "s2")
            assert (agg.user_messages, agg.config_dir) == (2, str(later))
            (later / "projects" / PROJECT / "s2.jsonl").unlink()
            agg = await next_change(receive, lambda a: a.session_id == "s2")
            assert agg.removed
        nursery.cancel_scope.cancel()


async def test_polling_mode_on_a_mock_clock(
    tmp: Path, db: sqlite_utils.Database, autojump_clock: trio.testing.MockClock
) -> None:
    cfg = tmp / "cfg"
    path = transcript(cfg, "s1", user_line())
    send, receive = trio.open_memory_channel[list[TranscriptAggregate]](100)
    index = TranscriptIndex(db)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: run_transcript_watcher(
                index,
                lambda: [cfg],
                store_caller(),
                send.send_nowait,  # a sync on_change works too
                rescan_interval_s=5.0,
                use_watchfiles=False,
                task_status=task_status,
            )
        )
        # started() comes after the initial scan: the index is complete already.
        [agg] = receive.receive_nowait()
        assert agg.user_messages == 1
        append(path, user_line())
        # No bound on the virtual time taken: the autojump clock also runs while the scan is in
        # its worker thread.
        [agg] = await receive.receive()
        assert agg.user_messages == 2
        await trio.sleep(60)  # nothing new: nothing reported
        with pytest.raises(trio.WouldBlock):
            receive.receive_nowait()
        nursery.cancel_scope.cancel()


async def test_a_failing_scan_is_logged_and_retried(
    tmp: Path, db: sqlite_utils.Database, autojump_clock: trio.testing.MockClock
) -> None:
    cfg = tmp / "cfg"
    transcript(cfg, "s1", user_line())
    calls = 0
    inner = store_caller()

    async def flaky_store(fn: Callable[..., T], *args: Any) -> T:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise sqlite3.OperationalError("database is locked")
        return await inner(fn, *args)

    send, receive = trio.open_memory_channel[list[TranscriptAggregate]](100)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: run_transcript_watcher(
                TranscriptIndex(db),
                lambda: [cfg],
                flaky_store,
                send.send,
                rescan_interval_s=1.0,
                use_watchfiles=False,
                task_status=task_status,
            )
        )
        with pytest.raises(trio.WouldBlock):  # the initial scan failed, and did not crash
            receive.receive_nowait()
        [agg] = await receive.receive()
        # The failed call, then the listing and one slice: plan, read (small: on the store
        # worker), commit.
        assert agg.session_id == "s1" and calls == 5
        nursery.cancel_scope.cancel()


def test_a_name_that_is_not_utf8_does_not_block_the_others(
    tmp: Path, db: sqlite_utils.Database
) -> None:
    """Issue 14 item 1: a transcript whose file name is not valid UTF-8 (read from disk as
    surrogate escapes) failed the whole batch's transaction on every rescan, so no transcript
    of that config dir was indexed again. It is skipped; the others are indexed."""
    good = transcript(tmp, "good-0001", user_line())
    bad_dir = os.fsencode(good.parent)
    with open(os.path.join(bad_dir, b"bad-\xff\xfe.jsonl"), "wb") as f:
        f.write(user_line())
    index = TranscriptIndex(db)
    changed = index.scan_config_dir(tmp)
    assert [a.session_id for a in changed] == ["good-0001"]
    assert index.scan_paths([(Path("/tmp/x\ud800.jsonl"), tmp)]) == []


def test_the_store_migration_adopts_a_table_created_before_it(tmp: Path) -> None:
    """Before migration m005 the watcher created transcript_index itself (sqlite-utils
    create, maybe without a later column): open_db keeps its rows and adds what is missing."""
    from ccc_statusd.store import open_db

    path = tmp / "old.db"
    old = sqlite_utils.Database(sqlite3.connect(path))
    old.execute(
        "CREATE TABLE [transcript_index] ([path] TEXT PRIMARY KEY, [session_id] TEXT, "
        "[config_dir] TEXT, [inode] INTEGER, [offset] INTEGER, [size] INTEGER, [mtime] FLOAT, "
        "[head_hash] TEXT, [aggregate] TEXT)"
    )
    old.execute("INSERT INTO transcript_index (path, session_id) VALUES ('/p.jsonl', 's')")
    old.conn.commit()
    old.conn.close()
    db = open_db(path)
    try:
        cols = {r[1] for r in db.execute("PRAGMA table_info(transcript_index)")}
        assert "updated_at" in cols
        assert [r[0] for r in db.execute("SELECT session_id FROM transcript_index")] == ["s"]
        indexes = {r[1] for r in db.execute("PRAGMA index_list(transcript_index)")}
        assert {"idx_transcript_index_session_id", "idx_transcript_index_config_dir"} <= indexes
        TranscriptIndex(db)  # nothing left to create
    finally:
        db.conn.close()


async def test_a_big_scan_is_parsed_off_the_store_worker(
    tmp: Path, db: sqlite_utils.Database
) -> None:
    """Above OFFLOAD_MIN_BYTES the reading and parsing run in their own thread; the result is
    the same, persisted, and a second scan reads nothing."""
    from ccc_statusd.watchers import transcripts

    cfg = tmp / "cfg"
    lines = [user_line(f"prompt {i} " + "x" * 500) for i in range(4000)]
    big = transcript(cfg, "big", b"".join(lines))
    assert big.stat().st_size > transcripts.OFFLOAD_MIN_BYTES
    inner = store_caller()
    on_store: list[str] = []

    async def call_store(fn: Callable[..., T], *args: Any) -> T:
        on_store.append(getattr(fn, "__name__", ""))
        return await inner(fn, *args)

    index = TranscriptIndex(db)
    send, receive = trio.open_memory_channel[list[TranscriptAggregate]](100)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: run_transcript_watcher(
                index,
                lambda: [cfg],
                call_store,
                send.send,
                rescan_interval_s=3600,
                use_watchfiles=False,
                task_status=task_status,
            )
        )
        [agg] = receive.receive_nowait()
        nursery.cancel_scope.cancel()
    assert agg.user_messages == 4000 and agg.malformed_lines == 0
    assert "_read_all" not in on_store  # parsed in the reader thread, not on the store
    assert index.scan_config_dir(cfg) == []
    assert index.for_session("big")["user_messages"] == 4000  # type: ignore[index]
