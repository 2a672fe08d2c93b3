"""Container paths → host paths (``--path-map /workspace=/home/me/proj``), as pure functions.

A session in a container reports its transcript and cwd as the container sees them
(``/workspace/...``, ``/root/.claude/projects/...``); the daemon on the host must read them at
the host paths the container's bind mounts come from. A map is a list of
``(container_prefix, host_prefix)`` pairs, both absolute and normalised:

- the longest matching container prefix wins, matched on whole components
  (``/workspace`` maps ``/workspace/a`` but not ``/workspace2/a``);
- a path with a ``..`` component, a NUL, or that is not absolute is refused (None): a peer
  cannot walk out of the mapped dir by naming ``/workspace/../../etc/shadow``;
- a path no prefix matches is returned unchanged (a session running on the host itself).

Used by the daemon core on ``transcript_path`` and ``cwd`` from hooks/statuslines (see
:func:`to_host`), and by ``ccc-statusd --path-map`` to parse the option (:func:`parse_mapping`).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence

PathMap = Sequence[tuple[str, str]]


def _clean(path: str, what: str) -> str:
    if not path or "\0" in path:
        raise ValueError(f"{what} {path!r} is empty or contains a NUL")
    if not path.startswith("/"):
        raise ValueError(f"{what} {path!r} is not absolute; write it starting with /")
    if ".." in path.split("/"):
        raise ValueError(f"{what} {path!r} contains '..'; write the plain path")
    return _norm(path)


def _norm(path: str) -> str:
    """``normpath``, also folding a leading ``//`` (POSIX keeps it; Linux means ``/``)."""
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def parse_mapping(text: str) -> tuple[str, str]:
    """``CONTAINER=HOST`` → ``(container, host)``, both normalised; ValueError with the sentence."""
    container, sep, host = text.partition("=")
    if not sep:
        raise ValueError(
            f"--path-map {text!r} has no '='; write CONTAINER_DIR=HOST_DIR, e.g. "
            "--path-map /workspace=/home/me/proj"
        )
    c = _clean(container.strip(), "--path-map container dir")
    h = _clean(host.strip(), "--path-map host dir")
    if c == "/":
        raise ValueError(
            f"--path-map {text!r} maps the container's whole file system; map the mounted dirs one by one"
        )
    return c, h


def build(mappings: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Normalise and order a map: longest container prefix first (so it wins); a container dir
    given twice with different host dirs is a ValueError."""
    seen: dict[str, str] = {}
    for container, host in mappings:
        c = _clean(container, "container dir")
        h = _clean(host, "host dir")
        if seen.get(c, h) != h:
            raise ValueError(f"--path-map {c} is given twice ({seen[c]} and {h}); keep one")
        seen[c] = h
    return sorted(seen.items(), key=lambda ch: (-len(ch[0]), ch[0]))


def to_host(path: str, mappings: PathMap) -> str | None:
    """The host path for a path a peer named, or None when it must not be used at all.

    ``mappings`` is what :func:`build` returns (longest prefix first). Unmapped absolute paths
    come back unchanged; refused: not absolute, ``..`` components, NUL.
    """
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
        return None
    if ".." in path.split("/"):
        return None
    clean = _norm(path)
    for container, host in mappings:
        if clean == container:
            return host
        if clean.startswith(container + "/"):
            rest = clean[len(container) + 1 :]
            return posixpath.join(host, rest) if rest else host
    return clean


def where(path: str, mappings: PathMap) -> str | None:
    """The container prefix a path was reported under (to show where a session runs), else None."""
    if not isinstance(path, str):
        return None
    clean = _norm(path) if path.startswith("/") else path
    for container, _host in mappings:
        if clean == container or clean.startswith(container + "/"):
            return container
    return None


# Where paths sit in what hooks and statuslines send (FACTS: hook payloads, statusLine JSON).
_TOP_LEVEL = ("cwd", "transcript_path")  # cwd first: it names where the session runs
_WORKSPACE = ("current_dir", "project_dir")


def map_payload(
    payload: dict[str, object], mappings: PathMap
) -> tuple[dict[str, object], str | None]:
    """A hook/statusline payload with its paths at their host locations, and the container
    prefix it came from (None: a host session). A path that must not be used (``..``,
    relative) is dropped, so the daemon never reads it. The input is not modified; without
    mappings it is returned as is."""
    if not mappings:
        return payload, None
    out = dict(payload)
    origin = _map_keys(out, _TOP_LEVEL, mappings)
    ws = out.get("workspace")
    if isinstance(ws, dict):
        out["workspace"] = ws = dict(ws)
        ws_origin = _map_keys(ws, _WORKSPACE, mappings)  # always mapped, whatever origin is
        origin = origin or ws_origin
    return out, origin


def _map_keys(d: dict[str, object], keys: Iterable[str], mappings: PathMap) -> str | None:
    """Map ``d[key]`` in place for each path key (dropping refused ones); the first origin."""
    origin: str | None = None
    for key in keys:
        value = d.get(key)
        if isinstance(value, str):
            origin = origin or where(value, mappings)
            mapped = to_host(value, mappings)
            if mapped is None:
                del d[key]
            else:
                d[key] = mapped
    return origin
