"""The git branch of each session's cwd, read from ``HEAD`` without running git.

Owns :func:`read_branch` / :func:`head_path` (sync, a few stats and one small read) and the trio
task :func:`run_git_watcher`, which stats each session's ``HEAD`` every ``interval_s`` and
re-reads it only when its (mtime_ns, size, inode) changed. Git replaces ``HEAD`` by renaming a
lock file over it, so a checkout always changes the inode even within one mtime tick.

Worktrees and submodules have a ``.git`` *file* (``gitdir: <path>``) pointing at their own git dir,
which holds their own ``HEAD``; both are followed.
"""

from __future__ import annotations

import inspect
import logging
import os
import stat
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import trio

from ..safeio import read_bounded

log = logging.getLogger(__name__)

# Default seconds between polls: a branch switch shows within this, at a few stats per session.
GIT_POLL_INTERVAL_S = 2.0

# Length of the abbreviated sha shown for a detached HEAD (git's own default minimum).
SHORT_SHA_LEN = 7

# HEAD is one short line; anything longer is not a HEAD we understand.
MAX_HEAD_BYTES = 4096


def git_dir(cwd: Path) -> Path | None:
    """The git dir of the repository containing ``cwd`` (walking up), following a ``.git``
    file's ``gitdir:`` line; None outside any repository."""
    start = Path(os.path.abspath(cwd))
    for candidate in (start, *start.parents):
        dotgit = candidate / ".git"
        try:
            st = os.stat(dotgit)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            return dotgit
        if stat.S_ISREG(st.st_mode):
            target = _read_gitdir_file(dotgit)
            if target is not None:
                return target
    return None


def _read_gitdir_file(dotgit: Path) -> Path | None:
    try:
        text = read_bounded(dotgit, MAX_HEAD_BYTES, truncate=True).decode("utf-8", "replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("gitdir:"):
            target = Path(line[len("gitdir:") :].strip())
            if not target.is_absolute():
                target = dotgit.parent / target
            target = Path(os.path.normpath(target))
            return target if target.is_dir() else None
    return None


def head_path(cwd: Path) -> Path | None:
    """The ``HEAD`` file that decides ``cwd``'s branch (the one to stat), if any."""
    gd = git_dir(cwd)
    if gd is None:
        return None
    head = gd / "HEAD"
    return head if head.is_file() else None


def parse_head(text: str) -> str | None:
    """A branch name from ``HEAD`` contents: ``ref: refs/heads/x`` → ``x``; a detached sha →
    its first :data:`SHORT_SHA_LEN` hex digits; other refs are returned without ``refs/``."""
    text = text.strip()
    if text.startswith("ref:"):
        ref = text[len("ref:") :].strip()
        if ref.startswith("refs/heads/"):
            name = ref[len("refs/heads/") :]
            # The reftable backend leaves this placeholder in HEAD; the branch is not readable
            # without parsing reftable, so say "unknown" rather than something wrong.
            return None if name == ".invalid" else name
        return ref.removeprefix("refs/") or None
    if len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text.lower()):
        return text[:SHORT_SHA_LEN]
    return None


def read_head(head: Path) -> str | None:
    """:func:`parse_head` of a ``HEAD`` file; None if unreadable."""
    try:
        raw = read_bounded(head, MAX_HEAD_BYTES, truncate=True)
    except OSError:  # safeio: also a FIFO/device named HEAD, or a name that cannot be encoded
        return None
    return parse_head(raw.decode("utf-8", "replace"))


def read_branch(cwd: Path) -> str | None:
    """The branch checked out in ``cwd``'s repository (short sha if detached); None if none."""
    head = head_path(cwd)
    return None if head is None else read_head(head)


@dataclass(frozen=True)
class _Seen:
    cwd: Path
    head: Path | None
    signature: tuple[int, int, int] | None
    branch: str | None
    broken: bool = False  # the cwd cannot be used as a path: not retried until it changes


def _signature(head: Path | None) -> tuple[int, int, int] | None:
    if head is None:
        return None
    try:
        st = os.stat(head)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def poll_branches(cwds: Mapping[str, Path], seen: dict[str, _Seen]) -> list[tuple[str, str | None]]:
    """One poll (sync, file I/O): update ``seen`` in place and return ``(session_id, branch)``
    for every session seen for the first time or whose branch changed. Sessions no longer in
    ``cwds`` are forgotten."""
    changes: list[tuple[str, str | None]] = []
    for sid in [s for s in seen if s not in cwds]:
        del seen[sid]
    for sid, cwd in cwds.items():
        # One session's path must never stop the others (or the daemon): a cwd that cannot be
        # encoded raises UnicodeEncodeError (a ValueError, not an OSError) from every os call.
        cwd = Path(cwd)
        prev = seen.get(sid)
        if prev is not None and prev.broken and prev.cwd == cwd:
            continue
        try:
            change = _poll_one(sid, cwd, seen)
        except Exception as exc:
            log.warning("git branch of session %s: cannot use cwd %r (%s); skipped", sid, cwd, exc)
            seen[sid] = _Seen(cwd, None, None, None, broken=True)
            if prev is None or prev.branch is not None:
                changes.append((sid, None))
            continue
        if change is not None:
            changes.append(change)
    return changes


def _poll_one(sid: str, cwd: Path, seen: dict[str, _Seen]) -> tuple[str, str | None] | None:
    prev = seen.get(sid)
    head = head_path(cwd)
    sig = _signature(head)
    if prev is not None and prev.cwd == cwd and prev.head == head and prev.signature == sig:
        return None
    branch = read_head(head) if head is not None else None
    seen[sid] = _Seen(cwd, head, sig, branch)
    if prev is None or prev.branch != branch:
        return (sid, branch)
    return None


async def run_git_watcher(
    cwds: Callable[[], Mapping[str, Path]],
    on_branch: Callable[[str, str | None], Awaitable[None] | None],
    *,
    interval_s: float = GIT_POLL_INTERVAL_S,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Report each session's branch once, then on every change. Never returns.

    ``cwds()`` (session id → cwd) is re-evaluated every ``interval_s``. ``on_branch(session_id,
    branch)`` gets None when the cwd is not in a repository (or HEAD is unreadable). The stats
    run in a worker thread, one hop per poll, so a slow filesystem cannot stall the loop.
    """
    seen: dict[str, _Seen] = {}
    task_status.started()
    while True:
        current = dict(cwds())
        if current or seen:
            changes = await trio.to_thread.run_sync(poll_branches, current, seen)
            for sid, branch in changes:
                try:
                    result = on_branch(sid, branch)
                    if inspect.isawaitable(result):
                        await result
                except Exception:  # one session's report must not stop the watcher
                    log.exception("reporting the branch of session %s failed; going on", sid)
        await trio.sleep(interval_s)
