"""Payloads the real Claude Code sent (shared/fixtures/claude-code/<version>/), for tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "claude-code"
VERSIONS = ("v2.1.331", "v2.1.112")


def fixture(name: str, version: str = "v2.1.331", **overrides: Any) -> dict[str, Any]:
    """A captured payload (``hooks-Stop``, ``statusline``…), with fields replaced."""
    path = FIXTURES / version / f"{name}.json"
    if not path.exists():
        pytest.skip(f"Claude Code fixture {path} is not available")
    data = json.loads(path.read_text())
    data.update(overrides)
    return data


def hook(name: str, session_id: str, version: str = "v2.1.331", **overrides: Any) -> dict[str, Any]:
    return fixture(f"hooks-{name}", version, session_id=session_id, **overrides)
