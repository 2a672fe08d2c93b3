"""safeio: paths someone else named are read without blocking and without bound (issue 14)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from ccc_statusd.safeio import (
    FileTooLarge,
    NotRegularFile,
    UnsafePathError,
    open_regular,
    read_bounded,
    read_tail,
)


def test_regular_file_is_read(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"hello")
    assert read_bounded(p, 10) == b"hello"
    assert read_tail(p, 3) == b"llo"
    assert read_tail(p, 100) == b"hello"


def test_too_large_is_refused_or_truncated(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"x" * 100)
    with pytest.raises(FileTooLarge, match="larger than 10 bytes"):
        read_bounded(p, 10)
    assert read_bounded(p, 10, truncate=True) == b"x" * 10


def test_fifo_is_refused_at_once(tmp_path: Path) -> None:
    """Opening a FIFO for reading blocks until a writer comes; safeio never waits."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    done = threading.Event()

    def attempt() -> None:
        with pytest.raises(NotRegularFile, match="FIFO"):
            read_tail(fifo, 512 * 1024)
        done.set()

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(10)
    assert done.is_set(), "reading a FIFO blocked"


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_character_device_is_refused(device: str) -> None:
    """``seek(size - N); read()`` on /dev/zero reads for ever (700 MiB/s until the OOM killer)."""
    with pytest.raises(NotRegularFile, match="character device"):
        read_tail(device, 512 * 1024)
    with pytest.raises(NotRegularFile):
        read_bounded(device, 10)


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotRegularFile, match="directory"):
        read_bounded(tmp_path, 10)


def test_symlink_refused_with_nofollow(tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.write_text("secret")
    link = tmp_path / "l"
    link.symlink_to(target)
    assert read_bounded(link, 10) == b"secret"
    with pytest.raises(NotRegularFile, match="symbolic link"):
        read_bounded(link, 10, nofollow=True)


@pytest.mark.parametrize("name", ["/tmp/x\ud800y", "/tmp/x\x00y"])
def test_unencodable_name_is_an_oserror(name: str) -> None:
    """UnicodeEncodeError / NUL are ValueErrors; callers that catch OSError must see one."""
    with pytest.raises(UnsafePathError, match="cannot be used as a file name"):
        open_regular(name)
    with pytest.raises(OSError):
        read_tail(name, 10)


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_bounded(tmp_path / "nope", 10)


def test_tail_reads_at_most_max_bytes_of_a_growing_file(tmp_path: Path) -> None:
    p = tmp_path / "grow"
    p.write_bytes(b"a" * 1000)
    assert len(read_tail(p, 100)) == 100
