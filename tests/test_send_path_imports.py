"""The send path imports nothing heavy (issue 3, issue 9): each of trio, anyio, asyncio, pydantic,
rich, typer, click and sqlite_utils costs 20–150 ms of start-up, and `ccc prompt`, `ccc hook` and
`ccc statusline` run in tight loops. Checked in fresh interpreters, the way `ccc` starts."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

HEAVY = ("trio", "anyio", "asyncio", "pydantic", "rich", "typer", "click", "sqlite_utils")
SEND_PATH = ("ccc_statusd.fastcli", "ccc_statusd.client", "ccc_statusd.hookcmd", "ccc_statusd.statusline")


def _heavy_loaded(code: str, env: dict[str, str] | None = None) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    probe = code + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True, env=env, timeout=30)
    assert proc.stdout, proc.stderr
    modules = json.loads(proc.stdout.strip().splitlines()[-1])
    return [m for m in modules if m.split(".")[0] in HEAVY], proc


@pytest.mark.parametrize("module", SEND_PATH)
def test_send_path_module_imports_nothing_heavy(module: str) -> None:
    heavy, _ = _heavy_loaded(f"import {module}")
    assert heavy == [], f"{module} pulls in {heavy}"


@pytest.fixture
def fake_daemon() -> Iterator[str]:
    """A socket that answers every line like a daemon delivering a prompt (so the success path
    runs to the end, reply parsing included), without the daemon's own start-up in the test."""
    d = tempfile.mkdtemp(prefix="ccc-imp-", dir="/tmp")
    server = socket.socket(socket.AF_UNIX)
    server.bind(os.path.join(d, "daemon.sock"))
    server.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as reader:
                for line in reader:
                    rid = json.loads(line).get("request_id")
                    conn.sendall(json.dumps({"type": "response", "request_id": rid, "status": "delivered"}).encode() + b"\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield d
    finally:
        server.shutdown(socket.SHUT_RDWR)
        server.close()
        thread.join(5)
        shutil.rmtree(d, ignore_errors=True)


def test_ccc_prompt_runs_without_heavy_imports(fake_daemon: str) -> None:
    env = {**os.environ, "CCC_CACHE_DIR": fake_daemon}
    code = "from ccc_statusd.fastcli import main\nrc = main(['prompt', 'abcd1234', 'hello'])\nassert rc == 0, rc"
    heavy, proc = _heavy_loaded(code, env)
    assert heavy == [], heavy
    assert proc.returncode == 0, proc.stderr


def test_ccc_prompt_importtime(fake_daemon: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``python -X importtime`` over ``ccc prompt``: what it imports, slowest first (run with
    ``-s`` to see the table)."""
    env = {**os.environ, "CCC_CACHE_DIR": fake_daemon}
    code = "import sys\nfrom ccc_statusd.fastcli import main\nsys.exit(main(['prompt', 'abcd1234', 'hello']))"
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-I", "-c", code], capture_output=True, text=True, env=env, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
        rows.append((int(cumulative_us), int(self_us), name))
    names = {name for _, _, name in rows}
    assert not [n for n in names if n.split(".")[0] in HEAVY], sorted(names)
    assert "ccc_statusd.fastcli" in names and "ccc_statusd.client" in names
    with capsys.disabled():
        print("\n`ccc prompt` imports (cumulative µs, top 10):")
        for cumulative, self_us, name in sorted(rows, reverse=True)[:10]:
            print(f"  {cumulative:8d} {self_us:8d}  {name}")


def test_console_script_uses_fastcli() -> None:
    """``ccc`` is installed as ``ccc_statusd.fastcli:main`` (pyproject.toml)."""
    script = Path(sys.executable).parent / "ccc"
    if not script.exists():
        pytest.skip("ccc console script not installed (pip install -e .)")
    assert "ccc_statusd.fastcli" in script.read_text()
