"""How sessions are found and ordered: the same rules in the daemon and in the CLI when the
daemon is down. Stdlib only.

- ``sort_sessions``: connected first, then sessions that have not ended, each by latest
  activity (the one sort order of ``ccc sessions`` and ``list_sessions``);
- ``discover_path``: steps 2–5 of the seed's FindSessionPath, on the filesystem.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .cache import read_session_cache
from .paths import Paths


def last_activity(rec: dict[str, Any]) -> float:
    transcript = rec.get("transcript")
    if not isinstance(transcript, dict):
        transcript = {}
    for value in (
        rec.get("last_activity"),
        rec.get("last_seen"),
        transcript.get("last_ts_epoch"),
        rec.get("updated_at"),
    ):
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    return 0.0


def sort_sessions(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Connected first, then sessions that have not ended, each by latest activity."""
    return sorted(
        records,
        key=lambda r: (bool(r.get("connected")), r.get("state") != "ended", last_activity(r)),
        reverse=True,
    )


def discover_path(paths: Paths, sid: str, row: dict[str, Any] | None) -> str | None:
    """A transcript path from ``$CCC_PATH_HOME``, the cache file's or the database's config
    dir, then ``$CLAUDE_CONFIG_DIR`` or ``~/.claude``."""
    name = f"{sid}.jsonl"
    path_home = os.environ.get("CCC_PATH_HOME")
    if path_home:
        for root, _dirs, files in os.walk(path_home):
            if name in files:
                return str(Path(root) / name)
    candidates: list[str] = []
    cached = read_session_cache(paths.session_cache(sid))
    if cached and cached.get("claude_config_dir"):
        candidates.append(cached["claude_config_dir"])
    if row and row.get("claude_config_dir"):
        candidates.append(row["claude_config_dir"])
    candidates.append(os.environ.get("CLAUDE_CONFIG_DIR") or str(Path.home() / ".claude"))
    for config_dir in candidates:
        projects = Path(config_dir) / "projects"
        try:
            for project in projects.iterdir():
                p = project / name
                if p.is_file():
                    return str(p)
        except OSError:
            continue
    return None
