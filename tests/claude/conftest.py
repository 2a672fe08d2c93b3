"""Fixtures for the end-to-end tests against the real Claude Code (everything in tests/claude).

Every test in this folder is marked `claude` (run them alone with `pytest -m claude`, leave them
out with `-m 'not claude'`). They skip, with the reason, when Claude Code cannot be installed
(no npm, no registry) or tmux is missing; any other install failure fails them.

Fixtures:
- `claude_native` / `claude_node`: the pinned native (2.1.331) and Node (2.1.112) builds, as
  `ClaudeBuild(version, bin)`; installed once into the cache outside the repo.
- `claude_build`: parametrised over both; `claude_bin`: its binary path.
- `fake_api`: a started `FakeAnthropic` (stopped after the test).
- `claude_home`: a throwaway `ClaudeHome` (HOME, CLAUDE_CONFIG_DIR, project dir `cwd`, env) in a
  short /tmp dir, pointed at `fake_api`; `claude_env` is its environment.
- `tmux`: a factory for `TmuxSession`s, all killed after the test.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ..helpers import short_tmpdir
from .fake_anthropic import FakeAnthropic
from .harness import (
    FAKE_API_KEY,
    INSTALL_TIMEOUT_S,
    NATIVE_VERSION,
    NODE_VERSION,
    PINNED_VERSIONS,
    ClaudeBuild,
    ClaudeHome,
    ClaudeUnavailable,
    TmuxSession,
    cleanup_claude_tmp,
    install_claude_code,
    installed_claude_code,
    make_claude_home_obj,
)

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Hooks in a conftest see every collected item: mark only the ones in this folder.
    missing = [v for v in PINNED_VERSIONS if installed_claude_code(v) is None]
    for item in items:
        if not item.path.resolve().is_relative_to(HERE):
            continue
        item.add_marker(pytest.mark.claude)
        if missing:
            # The first test pays for the npm install (the suite's per-test timeout is 120 s);
            # .ci/run pre-installs, so this only matters for a developer's first run.
            item.add_marker(pytest.mark.timeout(INSTALL_TIMEOUT_S + 120))


_builds: dict[str, ClaudeBuild | str] = {}


def _build(version: str) -> ClaudeBuild:
    """Install (once per process) and return a build; skip every test needing it if npm is unreachable."""
    if version not in _builds:
        try:
            _builds[version] = ClaudeBuild(version, install_claude_code(version))
        except ClaudeUnavailable as e:
            _builds[version] = str(e)
    got = _builds[version]
    if isinstance(got, str):
        pytest.skip(f"Claude Code {version} is not available: {got}")
    return got


@pytest.fixture(scope="session")
def claude_native() -> ClaudeBuild:
    return _build(NATIVE_VERSION)


@pytest.fixture(scope="session")
def claude_node() -> ClaudeBuild:
    return _build(NODE_VERSION)


@pytest.fixture(params=[NATIVE_VERSION, NODE_VERSION], ids=["native", "node"])
def claude_build(request: pytest.FixtureRequest) -> ClaudeBuild:
    return _build(request.param)


@pytest.fixture
def claude_bin(claude_build: ClaudeBuild) -> Path:
    return claude_build.bin


@pytest.fixture
def claude_tmp() -> Iterator[Path]:
    """A short temp dir directly under /tmp (AF_UNIX paths inside stay well under 107 bytes)."""
    path = short_tmpdir("ccct-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def fake_api(claude_tmp: Path) -> Iterator[FakeAnthropic]:
    api = FakeAnthropic(log_path=claude_tmp / "api.jsonl").start()
    yield api
    api.stop()


@pytest.fixture
def claude_home(claude_tmp: Path, fake_api: FakeAnthropic) -> Iterator[ClaudeHome]:
    home = make_claude_home_obj(
        claude_tmp, claude_tmp / "work", FAKE_API_KEY, base_url=fake_api.url
    )
    yield home
    cleanup_claude_tmp(home.cwd, home.pids)


@pytest.fixture
def claude_env(claude_home: ClaudeHome) -> dict[str, str]:
    return claude_home.env


@pytest.fixture
def tmux(claude_home: ClaudeHome) -> Iterator[Callable[[], TmuxSession]]:
    """`tmux()` makes a new private tmux server; all are killed (before `claude_home` cleans up)."""
    if shutil.which("tmux") is None:
        pytest.skip(
            "tmux is not installed; install it (apt-get install tmux) to run the Claude Code tests."
        )
    sessions: list[TmuxSession] = []

    def make() -> TmuxSession:
        s = TmuxSession()
        sessions.append(s)
        return s

    yield make
    for s in sessions:
        s.kill()
        claude_home.pids.update(s.pids_seen)
