"""Where things live (SPEC §3): the cache dir and the files in it. The only mkdir/chmod.

Kept free of heavy imports: the CLI's send path imports this module.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def resolve_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """The cache dir, first that applies: $CCC_CACHE_DIR, $XDG_CACHE_HOME/ccc-status,
    ~/.cache/ccc-status, /tmp/ccc-status-<uid> (when HOME is unusable)."""
    env = os.environ if env is None else env
    if env.get("CCC_CACHE_DIR"):
        return Path(env["CCC_CACHE_DIR"]).expanduser()
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]) / "ccc-status"
    home = env.get("HOME")
    if home and os.path.isabs(home) and os.path.isdir(home) and os.access(home, os.W_OK | os.X_OK):
        return Path(home) / ".cache" / "ccc-status"
    return Path(f"/tmp/ccc-status-{os.getuid()}")


class Paths:
    """Every file the daemon and the CLI share, derived from one cache dir.

    A plain class, not a dataclass: ``dataclasses`` pulls in ``inspect``, ~11 ms on every
    hook and statusline call.
    """

    __slots__ = ("cache_dir",)

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = Path(cache_dir)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Paths) and other.cache_dir == self.cache_dir

    def __hash__(self) -> int:
        return hash(self.cache_dir)

    def __repr__(self) -> str:
        return f"Paths({str(self.cache_dir)!r})"

    @classmethod
    def default(cls) -> Paths:
        return cls(resolve_cache_dir())

    @property
    def socket(self) -> Path:
        return self.cache_dir / "daemon.sock"

    @property
    def pid(self) -> Path:
        return self.cache_dir / "daemon.pid"

    @property
    def log(self) -> Path:
        return self.cache_dir / "daemon.log"

    @property
    def db(self) -> Path:
        return self.cache_dir / "scheduled.db"

    def session_cache(self, session_id: str) -> Path:
        """``<session-id>.json``; callers pass ids that passed ``protocol.is_safe_id``."""
        path = self.cache_dir / f"{session_id}.json"
        if path.parent != self.cache_dir:
            raise ValueError(f"session id {session_id!r} would escape the cache dir")
        return path

    def ensure_dir(self) -> Path:
        """Create the cache dir with mode 0700 (and tighten it if it already existed)."""
        self.cache_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        st = self.cache_dir.stat()
        if st.st_uid == os.getuid() and (st.st_mode & 0o777) != DIR_MODE:
            os.chmod(self.cache_dir, DIR_MODE)
        return self.cache_dir


def display(path: Path) -> str:
    """A path as people write it: ``~/.cache/...`` when under $HOME."""
    home = os.environ.get("HOME")
    s = str(path)
    if home and home != "/" and s.startswith(home.rstrip("/") + "/"):
        return "~" + s[len(home.rstrip("/")) :]
    return s
