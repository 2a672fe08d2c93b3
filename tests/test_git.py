"""Branch reading from .git/HEAD (real repos: plain, subdir, worktree, gitdir file, detached) and
the git watcher on a MockClock."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import trio

from ccc_statusd.watchers.git import (
    _Seen,
    git_dir,
    head_path,
    parse_head,
    poll_branches,
    read_branch,
    run_git_watcher,
)

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

# Isolated from the user's git config, so init.defaultBranch and hooks cannot interfere.
GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def tmp(short_dir: Path) -> Path:
    return short_dir


@pytest.fixture
def repo(tmp: Path) -> Path:
    r = tmp / "repo"
    r.mkdir()
    git(r, "init", "-q", "-b", "main")
    (r / "sub" / "deeper").mkdir(parents=True)
    (r / "f").write_text("x")
    git(r, "add", "f")
    git(r, "commit", "-q", "-m", "one")
    return r


def test_parse_head() -> None:
    assert parse_head("ref: refs/heads/main\n") == "main"
    assert parse_head("ref: refs/heads/feature/x-1") == "feature/x-1"
    assert parse_head("ref: refs/remotes/origin/main") == "remotes/origin/main"
    assert parse_head("0123456789abcdef0123456789abcdef01234567\n") == "0123456"
    assert parse_head("ref: refs/heads/.invalid") is None  # reftable placeholder
    assert parse_head("") is None
    assert parse_head("garbage") is None


def test_branch_from_repo_root_and_subdirs(repo: Path) -> None:
    assert read_branch(repo) == "main"
    assert read_branch(repo / "sub" / "deeper") == "main"
    assert head_path(repo / "sub") == repo / ".git" / "HEAD"
    git(repo, "checkout", "-q", "-b", "feature/y")
    assert read_branch(repo / "sub") == "feature/y"


def test_detached_head_gives_a_short_sha(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    assert read_branch(repo) == git(repo, "rev-parse", "--short=7", "HEAD")


def test_worktree_follows_the_gitdir_file(repo: Path, tmp: Path) -> None:
    wt = tmp / "wt"
    git(repo, "worktree", "add", "-q", "-b", "wt-branch", str(wt))
    assert (wt / ".git").is_file()
    assert read_branch(wt) == "wt-branch"
    head = head_path(wt)
    assert head is not None and head.parent.parent == repo / ".git" / "worktrees"
    assert read_branch(repo) == "main"  # the main checkout is unaffected


def test_relative_gitdir_file_like_a_submodule(repo: Path, tmp: Path) -> None:
    # Submodules write `gitdir: ../.git/modules/<name>`, relative to the .git file's dir.
    modules = repo / ".git" / "modules" / "lib"
    modules.mkdir(parents=True)
    (modules / "HEAD").write_text("ref: refs/heads/lib-main\n")
    lib = repo / "lib"
    lib.mkdir()
    (lib / ".git").write_text("gitdir: ../.git/modules/lib\n")
    assert read_branch(lib / "") == "lib-main"
    assert git_dir(lib) == modules


def test_outside_any_repository(tmp: Path) -> None:
    assert read_branch(tmp) is None
    assert head_path(tmp) is None
    assert read_branch(tmp / "does" / "not" / "exist") is None


def test_broken_gitdir_file_is_not_a_repository(tmp: Path) -> None:
    (tmp / ".git").write_text("gitdir: /nonexistent/elsewhere\n")
    assert read_branch(tmp) is None


def test_poll_rereads_head_only_when_its_stat_changes(repo: Path) -> None:
    seen: dict[str, _Seen] = {}
    assert poll_branches({"s": repo}, seen) == [("s", "main")]
    assert poll_branches({"s": repo}, seen) == []
    head = repo / ".git" / "HEAD"
    st = head.stat()
    # Same size, in place (same inode), mtime restored: the stat signature is unchanged, so the
    # poll must not re-read the file (if it did, it would report "mai2").
    with open(head, "r+") as f:
        f.write("ref: refs/heads/mai2\n")
    os.utime(head, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert poll_branches({"s": repo}, seen) == []
    os.utime(head, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert poll_branches({"s": repo}, seen) == [("s", "mai2")]
    assert poll_branches({}, seen) == [] and seen == {}


async def test_watcher_reports_first_sight_and_changes(
    repo: Path, tmp: Path, autojump_clock: trio.testing.MockClock
) -> None:
    cwds: dict[str, Path] = {"a": repo / "sub", "b": tmp}
    send, receive = trio.open_memory_channel[tuple[str, str | None]](100)

    async def on_branch(session_id: str, branch: str | None) -> None:
        await send.send((session_id, branch))

    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: run_git_watcher(
                lambda: cwds, on_branch, interval_s=2.0, task_status=task_status
            )
        )
        first = {await receive.receive(), await receive.receive()}
        assert first == {("a", "main"), ("b", None)}

        git(repo, "checkout", "-q", "-b", "topic")
        assert await receive.receive() == ("a", "topic")

        await trio.sleep(30)  # many polls, nothing changed: nothing reported
        with pytest.raises(trio.WouldBlock):
            receive.receive_nowait()

        git(repo, "checkout", "-q", "--detach")
        sha = git(repo, "rev-parse", "--short=7", "HEAD")
        assert await receive.receive() == ("a", sha)

        # A new session, and a session whose cwd moves into a repository.
        git(tmp, "init", "-q", "-b", "trunk")
        cwds["c"] = repo
        got = {await receive.receive(), await receive.receive()}
        assert got == {("c", sha), ("b", "trunk")}
        nursery.cancel_scope.cancel()


async def test_watcher_idles_without_sessions(autojump_clock: trio.testing.MockClock) -> None:
    calls: list[tuple[str, str | None]] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: run_git_watcher(
                dict, lambda s, b: calls.append((s, b)), task_status=task_status
            )
        )
        await trio.sleep(60)
        nursery.cancel_scope.cancel()
    assert calls == []
