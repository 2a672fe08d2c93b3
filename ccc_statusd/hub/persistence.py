"""Persistence: the only writer of session rows (``session_metadata``) and cache files.

The directory marks sessions that changed; the flusher writes them at most once per
``interval_s`` (a heartbeat storm becomes one transaction per interval), then their cache files
(only those whose content changed). Rows are written one batch at a time; if the batch fails,
each row is tried alone, so one poisoned row is logged and skipped and never blocks the others.
Sessions nothing can reach any more (client left, or ended without a client) are forgotten
from memory once persisted: memory stays bounded over months of sessions.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ..cache import write_session_cache
from ..paths import Paths
from ..sessions import ENDED, SessionInfo
from ..store import Store
from ..storeworker import StoreWorker
from .directory import SessionDirectory

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.25  # session metadata is flushed at most this often
PRUNE_INTERVAL_S = 3600.0  # ended sessions past their retention are removed hourly


def session_row(info: SessionInfo) -> dict[str, Any]:
    return {
        "session_id": info.session_id,
        "claude_config_dir": info.claude_config_dir or "",
        "transcript_path": info.transcript_path,
        "internal_id": info.internal_id,
        "cwd": info.cwd,
        "model": info.model,
        "state": info.state,
        "state_changed_at": int(info.state_changed_wall) if info.state_changed_wall else None,
        "state_error": info.state_error,
        "client_kind": info.kind,
        "pid": info.pid,
        "tmux_pane": info.tmux_pane,
        "git_branch": info.git_branch,
        "cost_usd": info.cost_usd,
        "last_assistant_message": info.last_assistant_message,
        "name": info.name or "",  # "" clears a name (None is "unchanged" on upsert)
        "end_reason": info.end_reason,
        "tmux_socket": info.tmux_socket,
        "pid_start": info.pid_start,
    }


def alias_rows(info: SessionInfo) -> list[dict[str, Any]]:
    return [
        {
            "session_id": alias,
            "alias_of": info.session_id,
            "internal_id": info.internal_id,
            "claude_config_dir": info.claude_config_dir or "",
        }
        for alias in info.aliases
    ]


def retired(info: SessionInfo) -> bool:
    """A session nothing can reach any more: its client left, or it ended and has no client."""
    if info.connected:
        return False
    return info.client_left or info.state == ENDED


class Persistence:
    def __init__(
        self,
        directory: SessionDirectory,
        store: StoreWorker,
        paths: Paths,
        *,
        wall: Callable[[], float],
        drop_rows: Callable[[list[str]], Awaitable[int]] | None = None,
    ) -> None:
        self.drop_rows = drop_rows  # the scheduler's: a forgotten session's waiting messages
        self.directory = directory
        self.store = store
        self.paths = paths
        self.wall = wall
        self._lock = trio.Lock()
        self._fingerprints: dict[str, int] = {}  # skip rewriting unchanged cache files

    def cache_record(self, info: SessionInfo) -> dict[str, Any]:
        record = info.to_public()
        agg = self.directory.transcripts.get(info.session_id or "")
        if agg:
            record["transcript"] = agg
        record["updated_at"] = self.wall()
        return record

    async def run_flusher(
        self,
        *,
        interval_s: float = FLUSH_INTERVAL_S,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        task_status.started()
        while True:
            await self.directory.changed.wait()
            try:
                await self.flush()
            except Exception:
                # Never the end of the daemon: the batch was put back; try again later.
                log.exception("could not save session metadata; will retry")
                await trio.sleep(max(interval_s, 1.0))
            await trio.sleep(interval_s)

    async def flush(self) -> None:
        """Write what changed. Serialised: a caller (shutdown, a test) returns only after any
        flush in progress is done."""
        async with self._lock:
            keys = self.directory.take_dirty()
            try:
                await self._write(keys)
            except BaseException:
                # Not written (cancelled at shutdown, or the disk failed): keep the batch.
                self.directory.put_back_dirty(keys)
                raise

    async def _write(self, keys: set[str]) -> None:
        infos = [i for k in keys if (i := self.directory.get(k)) is not None and i.session_id]
        if not infos:
            return
        batches = [[session_row(i), *alias_rows(i)] for i in infos]
        try:
            await self.store.call(
                Store.upsert_sessions, [r for b in batches for r in b], int(self.wall())
            )
        except Exception:
            # One bad row must not block the others: write them one session at a time.
            log.warning("saving %d sessions failed; saving them one by one", len(infos))
            kept = []
            for info, batch in zip(infos, batches, strict=True):
                try:
                    await self.store.call(Store.upsert_sessions, batch, int(self.wall()))
                except Exception as exc:
                    log.error("could not save session %s (skipped): %s", info.session_id, exc)
                    continue
                kept.append(info)
            infos = kept
        for info in infos:
            for sid in info.all_ids:
                self.directory.remember(sid)
        records = []
        for info in infos:
            record = self.cache_record(info)
            fingerprint = hash(
                repr(sorted((k, repr(v)) for k, v in record.items() if k != "updated_at"))
            )
            sid = info.session_id or ""
            if self._fingerprints.get(sid) != fingerprint:
                self._fingerprints[sid] = fingerprint
                records.append((sid, record))
        if records:
            await self.store.offload(write_caches, self.paths, records)
        for info in infos:
            # Changed again while we wrote (it just ended, say): the next flush writes that
            # first, and retires it then.
            if retired(info) and not self.directory.is_dirty(info.key):
                self.directory.forget(info.key)
                self._fingerprints.pop(info.session_id or "", None)

    async def forget_ended(self, session_ids: list[str]) -> None:
        """Remove ended sessions' rows and cache files (``ccc forget``, retention)."""
        if not session_ids:
            return
        await self.store.call(Store.forget_session, session_ids)
        await self.store.offload(remove_caches, self.paths, session_ids)
        if self.drop_rows is not None:
            await self.drop_rows(session_ids)
        for sid in session_ids:
            self._fingerprints.pop(sid, None)

    async def run_pruner(
        self,
        *,
        retention_s: float,
        interval_s: float = PRUNE_INTERVAL_S,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Every ``interval_s``: forget sessions that ended more than ``retention_s`` ago, so
        nothing grows without bound over months of use (their transcripts stay listed as
        history by the transcript index)."""
        task_status.started()
        while True:
            try:
                old = await self.store.call(Store.ended_before, int(self.wall() - retention_s))
                live = {sid for i in self.directory.sessions.values() for sid in i.all_ids}
                await self.forget_ended([sid for sid in old if sid not in live])
            except Exception:
                log.exception("could not prune ended sessions; trying again later")
            await trio.sleep(interval_s)


def remove_caches(paths: Paths, session_ids: list[str]) -> None:
    for sid in session_ids:
        try:
            os.unlink(paths.session_cache(sid))
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("could not remove the cache file of session %s: %s", sid, exc)


def write_caches(paths: Paths, records: list[tuple[str, dict[str, Any]]]) -> None:
    """Write cache files; one that cannot be written is logged and skipped, never fatal."""
    for sid, record in records:
        try:
            write_session_cache(paths, sid, record)
        except (OSError, ValueError) as exc:
            log.warning("could not write the cache file of session %s: %s", sid, exc)
