"""cache: ``<sid>.json`` files read safely (issue 14 items 6, 7, 15)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from ccc_statusd.cache import read_all_session_caches, read_session_cache, write_session_cache
from ccc_statusd.paths import Paths


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "symlink", "dir"])
def test_planted_cache_file_is_moved_aside_not_read(paths: Paths, kind: str) -> None:
    """A FIFO ``<sid>.json`` blocked the reader (``ccc sessions`` with the daemon down, the
    daemon's file worker) for ever; ``/dev/zero`` read until memory ran out; a symlink was
    followed. Each is refused at once and moved aside like a corrupt file."""
    paths.ensure_dir()
    target = paths.cache_dir / "bad-0001.json"
    outside = paths.cache_dir.parent / f"{paths.cache_dir.name}-outside.json"
    outside.write_text('{"session_id":"stolen"}')
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "dev-zero":
        target.symlink_to("/dev/zero")
    elif kind == "symlink":
        target.symlink_to(outside)
    else:
        target.mkdir()
    write_session_cache(paths, "good-0001", {"session_id": "good-0001"})
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(read_all_session_caches(paths)), daemon=True)
    t.start()
    t.join(10)
    assert result, "reading the cache files blocked"
    assert result[0] == [{"session_id": "good-0001"}]
    assert not os.path.lexists(target)
    assert os.path.lexists(str(target) + ".corrupt")
    assert read_session_cache(target) is None
    outside.unlink()


def test_write_does_not_write_through_a_planted_temp(paths: Paths, tmp_path: Path) -> None:
    paths.ensure_dir()
    os.mkfifo(paths.cache_dir / ".fifo-0001.tmp")
    with pytest.raises(OSError):
        write_session_cache(paths, "fifo-0001", {"a": 1})


def test_full_disk_write_says_so_and_leaves_no_temp(paths: Paths) -> None:
    """Issue 14 item 4: on a full disk the error names the disk, not "internal error"."""
    import errno
    import subprocess
    import tempfile

    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    mnt = Path(tempfile.mkdtemp(dir="/tmp", prefix="cccfull"))
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        small = Paths(mnt / "c")
        small.ensure_dir()
        with pytest.raises(OSError) as exc:
            write_session_cache(small, "full-0001", {"blob": "x" * 200_000})
        assert exc.value.errno == errno.ENOSPC
        assert "the disk is full" in str(exc.value) and "df -h" in str(exc.value)
        assert not (small.cache_dir / ".full-0001.tmp").exists()
    finally:
        subprocess.run(["umount", "-l", str(mnt)])
        os.rmdir(mnt)
