"""pathmap: container paths to host paths; longest prefix wins, whole components, no escapes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccc_statusd.pathmap import build, map_payload, parse_mapping, to_host, where

BIN = Path(sys.executable).parent

MAP = build(
    [
        ("/workspace", "/home/me/proj"),
        ("/workspace/vendor", "/srv/vendor"),
        ("/root/.claude", "/home/me/.claude-box"),
    ]
)


def test_longest_prefix_wins_on_whole_components() -> None:
    assert to_host("/workspace/a/b.py", MAP) == "/home/me/proj/a/b.py"
    assert to_host("/workspace/vendor/x", MAP) == "/srv/vendor/x"
    assert to_host("/workspace/vendorx", MAP) == "/home/me/proj/vendorx"
    assert to_host("/workspace", MAP) == "/home/me/proj"
    assert to_host("/workspace/", MAP) == "/home/me/proj"
    assert to_host("/workspace2/a", MAP) == "/workspace2/a"  # not a component match: unchanged
    assert (
        to_host("/root/.claude/projects/-workspace/s.jsonl", MAP)
        == "/home/me/.claude-box/projects/-workspace/s.jsonl"
    )
    assert to_host("//workspace//a/./b", MAP) == "/home/me/proj/a/b"


def test_unmapped_paths_unchanged_and_bad_paths_refused() -> None:
    assert to_host("/home/me/other/t.jsonl", MAP) == "/home/me/other/t.jsonl"
    assert to_host("/workspace/../etc/shadow", MAP) is None
    assert to_host("/workspace/a/../../etc", MAP) is None
    assert to_host("relative/path", MAP) is None
    assert to_host("", MAP) is None
    assert to_host("/workspace/a\0b", MAP) is None
    assert to_host(None, MAP) is None  # type: ignore[arg-type]
    assert to_host("/x", []) == "/x"


def test_where_names_the_container_prefix() -> None:
    assert where("/workspace/vendor/a", MAP) == "/workspace/vendor"
    assert where("/workspace", MAP) == "/workspace"
    assert where("/home/me", MAP) is None


def test_parse_mapping() -> None:
    assert parse_mapping("/workspace=/home/me/proj") == ("/workspace", "/home/me/proj")
    assert parse_mapping(" /w/ = /h/p/ ") == ("/w", "/h/p")


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("/workspace", "no '='"),
        ("workspace=/h", "not absolute"),
        ("/w=h", "not absolute"),
        ("/w/../x=/h", "'..'"),
        ("/w=/h/..", "'..'"),
        ("/=/h", "whole file system"),
        ("=/h", "empty"),
    ],
)
def test_parse_mapping_refuses(bad: str, says: str) -> None:
    with pytest.raises(ValueError, match="--path-map"):
        parse_mapping(bad)
    with pytest.raises(ValueError) as exc:
        parse_mapping(bad)
    assert says in str(exc.value)


def test_build_refuses_a_dir_mapped_twice() -> None:
    with pytest.raises(ValueError, match="given twice"):
        build([("/w", "/a"), ("/w/", "/b")])
    assert build([("/w", "/a"), ("/w", "/a")]) == [("/w", "/a")]


def test_daemon_option_errors() -> None:
    r = subprocess.run(
        [str(BIN / "ccc-statusd"), "--path-map", "workspace"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2 and "--path-map 'workspace' has no '='" in r.stderr
    r = subprocess.run(
        [str(BIN / "ccc-statusd"), "--path-map", "/w=/a", "--path-map", "/w=/b"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2 and "given twice" in r.stderr


_part = st.text(alphabet="ab.-_/", min_size=0, max_size=12)


@given(_part)
def test_a_mapped_path_never_leaves_its_host_dir(rest: str) -> None:
    out = to_host("/workspace/" + rest, MAP)
    if out is None:
        assert ".." in ("/workspace/" + rest).split("/")
        return
    assert out == "/home/me/proj" or out.startswith(("/home/me/proj/", "/srv/vendor"))


def test_map_payload_maps_hook_and_statusline_paths() -> None:
    payload = {
        "session_id": "s",
        "transcript_path": "/root/.claude/projects/-workspace/s.jsonl",
        "cwd": "/workspace/sub",
        "workspace": {"current_dir": "/workspace/sub", "project_dir": "/workspace"},
        "prompt": "/workspace is just text here",
    }
    out, origin = map_payload(payload, MAP)
    assert out["transcript_path"] == "/home/me/.claude-box/projects/-workspace/s.jsonl"
    assert out["cwd"] == "/home/me/proj/sub"
    assert out["workspace"] == {"current_dir": "/home/me/proj/sub", "project_dir": "/home/me/proj"}
    assert out["prompt"] == payload["prompt"] and origin == "/workspace"
    assert payload["cwd"] == "/workspace/sub"  # the input is left alone
    bad, _ = map_payload({"transcript_path": "/workspace/../../etc/shadow", "cwd": "/tmp"}, MAP)
    assert "transcript_path" not in bad and bad["cwd"] == "/tmp"
    same, none = map_payload(payload, [])
    assert same is payload and none is None
    host, origin = map_payload({"cwd": "/home/me/x"}, MAP)
    assert host == {"cwd": "/home/me/x"} and origin is None
