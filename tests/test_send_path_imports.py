"""The send path imports nothing it can do without (issue 3, issue 9).

Each of trio, anyio, asyncio, pydantic, rich, typer, click and sqlite_utils costs 20–150 ms of
start-up, and `ccc prompt`, `ccc hook` and `ccc statusline` run in tight loops; against a bare
interpreter's ~11 ms, even the standard library's ``json`` (pulls ``re`` and ``enum``),
``typing``, ``pathlib`` and ``socket`` (pulls ``selectors``, ``enum``, ``collections``) cost
~17 ms together. So the send path may load only what ``python -I -c pass`` already has, the C
modules ``_json`` and ``_socket``, ``__future__`` and its own modules — checked in fresh
interpreters, the way `ccc` starts. Also here: :mod:`ccc_statusd.fastjson` gives the same
results as ``json``."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccc_statusd import fastjson

from .helpers import short_tmpdir

HEAVY = ("trio", "anyio", "asyncio", "pydantic", "rich", "typer", "click", "sqlite_utils")
# Standard-library modules a bare interpreter does not load and the send path must not either
# (named for a readable failure; ALLOWED below is the full rule).
SLOW_STDLIB = ("json", "re", "typing", "pathlib", "enum", "socket", "selectors", "collections")
FORBIDDEN = HEAVY + SLOW_STDLIB
ALLOWED_EXTRA = frozenset({"__future__", "_json", "_socket"})
SEND_PATH = (
    "ccc_statusd.fastcli",
    "ccc_statusd.sendcmd",
    "ccc_statusd.wire",
    "ccc_statusd.client",
    "ccc_statusd.hookcmd",
    "ccc_statusd.statusline",
    "ccc_statusd.fastjson",
)
# The probe prints sys.modules without importing anything itself (json would count).
PROBE = "\nimport sys\nprint('\\n' + ' '.join(sorted(sys.modules)))"


def _modules(
    code: str, env: dict[str, str] | None = None, stdin: str = ""
) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code + PROBE],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=30,
    )
    assert proc.stdout, proc.stderr
    return set(proc.stdout.strip().splitlines()[-1].split()), proc


@pytest.fixture(scope="module")
def bare_modules() -> set[str]:
    """What ``python -I -c pass`` has loaded anyway."""
    modules, _ = _modules("pass")
    assert "json" not in modules and "re" not in modules, sorted(modules)
    return modules


def _unexpected(modules: set[str], bare: set[str]) -> tuple[list[str], list[str]]:
    """(forbidden modules loaded, every module beyond the allowed set)."""
    forbidden = sorted(m for m in modules if m.split(".")[0] in FORBIDDEN)
    extra = sorted(
        m
        for m in modules - bare - ALLOWED_EXTRA
        if m != "ccc_statusd" and not m.startswith("ccc_statusd.")
    )
    return forbidden, extra


def test_the_editable_install_adds_no_import_hook() -> None:
    # `make` installs the package editable; setuptools does it with a plain .pth path line only
    # because pyproject.toml says `package-dir = {"" = "."}`. Without it, an import hook
    # (``__editable___*_finder``) would run in every interpreter, before the send path starts.
    modules, _ = _modules("pass")
    hooks = sorted(m for m in modules if m.startswith("__editable__"))
    assert hooks == [], f"an editable import hook loads at start-up: {hooks}; see pyproject.toml"


@pytest.mark.parametrize("module", SEND_PATH)
def test_send_path_module_imports_only_what_it_needs(module: str, bare_modules: set[str]) -> None:
    modules, _ = _modules(f"import {module}")
    assert _unexpected(modules, bare_modules) == ([], []), f"{module} pulls these in"


@pytest.fixture
def fake_daemon() -> Iterator[str]:
    """A socket that answers every line like a daemon delivering a prompt (so the success path
    runs to the end, reply parsing included), without the daemon's own start-up in the test."""
    d = str(short_tmpdir("ccc-imp-"))
    server = socket.socket(socket.AF_UNIX)
    server.bind(os.path.join(d, "daemon.sock"))
    server.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            # `ccc hook` closes without reading the answer: a reset here is its normal goodbye.
            with conn, conn.makefile("rb") as reader, contextlib.suppress(OSError):
                for line in reader:
                    rid = json.loads(line).get("request_id")
                    reply = {"type": "response", "request_id": rid, "status": "delivered"}
                    conn.sendall(json.dumps(reply).encode() + b"\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield d
    finally:
        server.shutdown(socket.SHUT_RDWR)
        server.close()
        thread.join(5)
        shutil.rmtree(d, ignore_errors=True)


STATUSLINE_STDIN = json.dumps(
    {"session_id": "s-1", "model": {"id": "m"}, "workspace": {"current_dir": "/"}}
)
HOOK_STDIN = json.dumps({"session_id": "s-1", "hook_event_name": "Stop"})


@pytest.mark.parametrize(
    ("args", "stdin", "up", "rc"),
    [
        (["prompt", "abcd1234", "hello"], "", True, 0),
        (["command", "abcd1234", "compact", "now"], "", True, 0),
        (["eval", "abcd1234", "1+1"], "", True, 0),
        (["prompt", "abcd1234", "hello"], "", False, 3),  # the daemon-down error path
        (["statusline"], STATUSLINE_STDIN, True, 0),
        (["statusline"], STATUSLINE_STDIN, False, 0),
        (["hook"], HOOK_STDIN, True, 0),
        (["hook"], HOOK_STDIN, False, 0),
    ],
    ids=[
        "prompt",
        "command",
        "eval",
        "prompt-daemon-down",
        "statusline",
        "statusline-daemon-down",
        "hook",
        "hook-daemon-down",
    ],
)
def test_send_commands_import_only_what_they_need(
    fake_daemon: str, bare_modules: set[str], args: list[str], stdin: str, up: bool, rc: int
) -> None:
    cache = fake_daemon if up else str(short_tmpdir("ccc-imp-down-"))
    try:
        env = {**os.environ, "CCC_CACHE_DIR": cache}
        code = f"from ccc_statusd.fastcli import main\nrc = main({args!r})\nassert rc == {rc}, rc"
        modules, proc = _modules(code, env, stdin)
    finally:
        if not up:
            shutil.rmtree(cache, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr
    assert _unexpected(modules, bare_modules) == ([], [])
    assert "ccc_statusd.fastcli" in modules and "ccc_statusd.fastjson" in modules


def test_ccc_prompt_importtime(fake_daemon: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``python -X importtime`` over ``ccc prompt``: what it imports, slowest first (run with
    ``-s`` to see the table)."""
    env = {**os.environ, "CCC_CACHE_DIR": fake_daemon}
    code = "import sys\nfrom ccc_statusd.fastcli import main\nsys.exit(main(['prompt', 'abcd1234', 'hello']))"
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-I", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
        rows.append((int(cumulative_us), int(self_us), name))
    names = {name for _, _, name in rows}
    assert not [n for n in names if n.split(".")[0] in FORBIDDEN], sorted(names)
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


# --- fastjson gives json's results ---------------------------------------------------------

_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()  # lone surrogates included
)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


def _same(a: Any, b: Any) -> bool:
    """Equal, counting NaN equal to NaN and telling int from float."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


@given(_JSON)
def test_fastjson_dumps_is_json_dumps(value: Any) -> None:
    for ensure_ascii in (True, False):
        expected = json.dumps(value, separators=(",", ":"), ensure_ascii=ensure_ascii)
        assert fastjson.dumps(value, ensure_ascii=ensure_ascii) == expected


@given(_JSON, st.sampled_from(["", " ", "\n\t ", "\r\n"]))
def test_fastjson_loads_is_json_loads(value: Any, ws: str) -> None:
    text = ws + json.dumps(value, indent=1, ensure_ascii=False) + ws
    assert _same(fastjson.loads(text), json.loads(text))
    for encoding in ("utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "utf-32"):
        data = text.encode(encoding, "surrogatepass")
        assert _same(fastjson.loads(data), json.loads(data)), encoding


@given(
    st.text(
        alphabet=st.sampled_from(list('{}[]",:0123456789.eE-+ truefalsnNI\\u\ud800')), max_size=20
    )
)
def test_fastjson_loads_fails_where_json_fails(text: str) -> None:
    try:
        expected: Any = json.loads(text)
    except ValueError:
        with pytest.raises(ValueError):
            fastjson.loads(text)
    else:
        assert _same(fastjson.loads(text), expected)


def test_fastjson_dumps_refuses_what_json_refuses() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError):
        fastjson.dumps(loop)
    with pytest.raises(TypeError):
        fastjson.dumps({"a": object()})
    with pytest.raises(TypeError):
        fastjson.dumps({(1, 2): 3})
