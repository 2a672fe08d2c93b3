"""The payloads and transcripts the real Claude Code produced, vendored in the repo.

Captured by the harness in tests/claude/ and copied to ``tests/data/claude-code/<version>/``
(``hooks-*.json``, ``statusline*.json``, ``env-*.json``, ``transcript-<n>-<session id>.jsonl``).
Every test that needs one finds it here; a missing fixture is a test failure, never a skip.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES_DIR = Path(__file__).resolve().parent / "data" / "claude-code"
VERSIONS = ("v2.1.331", "v2.1.112")
LATEST = VERSIONS[0]


def fixture_path(name: str, version: str = LATEST) -> Path:
    """``tests/data/claude-code/<version>/<name>``; raises when it is not there."""
    path = FIXTURES_DIR / version / name
    if not path.is_file():
        raise FileNotFoundError(f"Claude Code fixture {path} is missing from the repository")
    return path


def fixture(name: str, version: str = LATEST, **overrides: Any) -> dict[str, Any]:
    """A captured payload (``hooks-Stop``, ``statusline``…), with fields replaced."""
    data: dict[str, Any] = json.loads(fixture_path(f"{name}.json", version).read_text())
    data.update(overrides)
    return data


def fixture_bytes(name: str, version: str = LATEST) -> bytes:
    """A captured payload exactly as Claude Code wrote it (``statusline``, ``hooks-Stop``…)."""
    return fixture_path(f"{name}.json", version).read_bytes()


def hook(name: str, session_id: str, version: str = LATEST, **overrides: Any) -> dict[str, Any]:
    return fixture(f"hooks-{name}", version, session_id=session_id, **overrides)


def transcript(version: str, n: int) -> Path:
    """The n-th captured transcript of a version (``transcript-<n>-<session id>.jsonl``)."""
    matches = sorted((FIXTURES_DIR / version).glob(f"transcript-{n}-*.jsonl"))
    if not matches:
        raise FileNotFoundError(
            f"no Claude Code transcript {version}/transcript-{n}-*.jsonl under {FIXTURES_DIR}"
        )
    return matches[0]


def transcript_session_id(path: Path) -> str:
    """The session id in a transcript fixture's name."""
    return path.stem.split("-", 2)[2]
