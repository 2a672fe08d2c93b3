"""Reading a path someone else named, safely: never blocks, never reads without bound.

Owns :func:`open_regular`, :func:`read_bounded`, :func:`read_tail` and the errors they raise.
A path that came from a client, a payload, a cwd or a planted file may be a FIFO (``open``
blocks until a writer comes), ``/dev/zero`` (``read()`` never ends), a symlink to somewhere else,
or a name that cannot even be encoded (a lone UTF-16 surrogate). Every such read goes through
here: the file is opened ``O_RDONLY | O_NONBLOCK | O_CLOEXEC`` (plus ``O_NOFOLLOW`` for a file
of our own, where a symlink is always an attack), ``fstat`` must say "regular file", and at
most ``max_bytes`` are read. Every failure is an :class:`OSError` (so existing ``except
OSError`` handlers keep working) whose text says what was wrong with the path.

Stdlib only, no heavy imports: the statusline and hook paths use it.
"""

from __future__ import annotations

import errno
import os
import stat

# Flags for every open of a path someone else named.
READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC


class UnsafePathError(OSError):
    """The path is not something we read: not a regular file, a symlink where none may be, too
    large, or a name that cannot be encoded. ``str(exc)`` is a sentence for the user/log."""

    def __init__(self, path: object, reason: str, err: int = errno.EINVAL) -> None:
        super().__init__(err, reason, _shown(path))
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.filename}: {self.reason}"


class NotRegularFile(UnsafePathError):
    """The path exists but is a FIFO, device, directory, socket (or a symlink, with nofollow)."""


class FileTooLarge(UnsafePathError):
    """The file is larger than the caller's bound."""


def _shown(path: object) -> str:
    text = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else repr(path)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def kind_of(mode: int) -> str:
    """``st_mode`` in words, for messages."""
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISREG(mode):
        return "a regular file"
    return "not a regular file"


def open_regular(path: str | os.PathLike[str], *, nofollow: bool = False) -> int:
    """Open ``path`` for reading without blocking; return the fd of a regular file.

    Raises FileNotFoundError and other OSErrors as ``os.open`` does, :class:`NotRegularFile`
    for anything but a regular file (with ``nofollow``, also for a symlink), and
    :class:`UnsafePathError` for a name that cannot be encoded (lone surrogate, NUL byte).
    """
    flags = READ_FLAGS | (os.O_NOFOLLOW if nofollow else 0)
    try:
        fd = os.open(path, flags)
    except ValueError as exc:  # UnicodeEncodeError, embedded NUL
        raise UnsafePathError(path, f"the path cannot be used as a file name ({exc})") from None
    except OSError as exc:
        if nofollow and exc.errno == errno.ELOOP:
            raise NotRegularFile(
                path, "is a symbolic link where a regular file must be; not followed", errno.ELOOP
            ) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(
                path, f"is {kind_of(st.st_mode)}, not a regular file; not read", errno.EINVAL
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_fd(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_bounded(
    path: str | os.PathLike[str], max_bytes: int, *, nofollow: bool = False, truncate: bool = False
) -> bytes:
    """The contents of the regular file ``path``, at most ``max_bytes``.

    A larger file raises :class:`FileTooLarge`, or with ``truncate`` its first ``max_bytes`` are
    returned (for files where only the start matters, such as ``.git/HEAD``).
    """
    fd = open_regular(path, nofollow=nofollow)
    try:
        data = _read_fd(fd, max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        if truncate:
            return data[:max_bytes]
        raise FileTooLarge(path, f"is larger than {max_bytes} bytes; not read", errno.EFBIG)
    return data


def read_tail(path: str | os.PathLike[str], max_bytes: int, *, nofollow: bool = False) -> bytes:
    """The last ``max_bytes`` (at most) of the regular file ``path``: for transcripts, whose
    newest lines are at the end. Reads at most ``max_bytes`` whatever the file does meanwhile."""
    fd = open_regular(path, nofollow=nofollow)
    try:
        size = os.fstat(fd).st_size
        if size > max_bytes:
            os.lseek(fd, size - max_bytes, os.SEEK_SET)
        return _read_fd(fd, max_bytes)
    finally:
        os.close(fd)
