"""Per-session JSON cache files (``<session-id>.json``), written atomically; stdlib only.

The daemon writes one file per session id (current and alias) so that the CLI can resolve
session prefixes and show sessions without the daemon (the seed's "fast session metadata
access"). Writes go to a temp file in the same dir, then ``os.replace``: a reader never sees a
half-written file. A file that does not parse is moved aside (``.corrupt``), never fatal.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from .paths import FILE_MODE, Paths

log = logging.getLogger(__name__)

_NOT_SESSIONS = frozenset({"daemon"})


def write_session_cache(paths: Paths, session_id: str, record: dict[str, Any]) -> None:
    """Atomically write ``record`` to ``<session_id>.json`` with mode 0600.

    The temp name is fixed (``.<id>.tmp``): the daemon is the only writer (it holds the pid
    lock), and ``mkstemp`` plus the pure-Python ``json.dump`` cost 4x more under a heartbeat storm.
    """
    target = paths.session_cache(session_id)
    tmp = target.with_name(f".{session_id}.tmp")
    data = json.dumps(record, separators=(",", ":"), default=str).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    try:
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_session_cache(path: Path) -> dict[str, Any] | None:
    """One cache file, or None if it is missing; a corrupt one is moved aside with a warning."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError) as exc:
        log.warning("session cache %s is corrupt (%s); moved it aside", path, exc)
        try:
            os.replace(path, path.with_name(path.name + ".corrupt"))
        except OSError:
            pass
        return None


def session_cache_ids(paths: Paths) -> list[str]:
    """Every session id that has a cache file (cheap: a directory listing, no parsing)."""
    try:
        names = os.listdir(paths.cache_dir)
    except OSError:
        return []
    return [
        n[:-5]
        for n in names
        if n.endswith(".json") and not n.startswith(".") and n[:-5] not in _NOT_SESSIONS
    ]


def read_all_session_caches(paths: Paths) -> list[dict[str, Any]]:
    out = []
    for sid in session_cache_ids(paths):
        rec = read_session_cache(paths.cache_dir / f"{sid}.json")
        if rec is not None:
            rec.setdefault("session_id", sid)
            out.append(rec)
    return out
