"""Where things live (SPEC §3): the cache dir and the files in it. The only mkdir/chmod.

Kept free of heavy imports: the CLI's send path imports this module.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from .safeio import UnsafePathError, kind_of

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

    @property
    def fixed_files(self) -> tuple[Path, ...]:
        """The files of fixed name in the cache dir (a planted link/dir/FIFO there is refused)."""
        db = self.db
        return (
            self.pid,
            self.log,
            db,
            db.with_name(db.name + "-wal"),
            db.with_name(db.name + "-shm"),
            db.with_name(db.name + "-journal"),
        )

    def ensure_dir(self) -> Path:
        """Create the cache dir with mode 0700, or check the one that is there.

        An existing dir must be a real directory (not a symlink), owned by us, with no group or
        other access; anything else raises :class:`UnsafeCacheDir` naming the command that
        fixes it. Otherwise another user could pre-create it (``/tmp/ccc-status-<uid>``) and
        plant files, swap the socket, or read what we write.
        """
        parent = self.cache_dir.parent
        parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        try:
            os.mkdir(self.cache_dir, DIR_MODE)
        except FileExistsError:
            pass
        check_cache_dir(self.cache_dir)
        return self.cache_dir

    def check_fixed_files(self) -> None:
        """Refuse (:class:`UnsafeCacheDir`) when a fixed file is anything but a regular file of
        ours: a symlink, dir, FIFO planted there is never followed or opened."""
        for path in self.fixed_files:
            check_own_file(path)


class UnsafeCacheDir(UnsafePathError):
    """The cache dir, or a fixed file in it, is not safely ours; the text says how to fix it."""


def check_cache_dir(path: Path) -> None:
    """Raise :class:`UnsafeCacheDir` unless ``path`` is a real dir owned by us, mode ``0?00``."""
    uid = os.getuid()
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise UnsafeCacheDir(
            path, "does not exist; create it with: mkdir -m 700 " + _q(path)
        ) from None
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeCacheDir(
            path,
            f"is a symbolic link (to {_link_target(path)}), not a directory; a cache dir must "
            f"be a real directory of yours: remove it (rm {_q(path)}) or set CCC_CACHE_DIR",
        )
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeCacheDir(
            path, f"is {kind_of(st.st_mode)}, not a directory; move it away or set CCC_CACHE_DIR"
        )
    if st.st_uid != uid:
        raise UnsafeCacheDir(
            path,
            f"belongs to uid {st.st_uid}, not to you (uid {uid}); another user could read or "
            f"replace what the daemon keeps there. Use another dir (set CCC_CACHE_DIR), or as "
            f"root: chown {uid} {_q(path)} && chmod 700 {_q(path)}",
        )
    if st.st_mode & 0o077:
        raise UnsafeCacheDir(
            path,
            f"has mode {stat.S_IMODE(st.st_mode):04o}: other users can get in; "
            f"make it private with: chmod 700 {_q(path)}",
        )


def check_own_file(path: Path) -> None:
    """Raise :class:`UnsafeCacheDir` if ``path`` exists and is not a regular file owned by us
    (a symlink counts as not regular: it is never followed)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeCacheDir(
            path,
            f"is {kind_of(st.st_mode)}, not a regular file; it was not put there by ccc-statusd. "
            f"Look at it, then remove it (rm -r {_q(path)}) and start again",
        )
    if st.st_uid != os.getuid():
        raise UnsafeCacheDir(
            path,
            f"belongs to uid {st.st_uid}, not to you; remove it (rm {_q(path)}) and start again",
        )


def _link_target(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _q(path: Path) -> str:
    import shlex

    return shlex.quote(str(path))


def display(path: Path) -> str:
    """A path as people write it: ``~/.cache/...`` when under $HOME."""
    home = os.environ.get("HOME")
    s = str(path)
    if home and home != "/" and s.startswith(home.rstrip("/") + "/"):
        return "~" + s[len(home.rstrip("/")) :]
    return s
