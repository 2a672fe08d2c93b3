"""The ``ccc top`` Textual app: a table of sessions, a pane of events, keys that act.

Fed by :func:`ccc_statusd.follow.follow` (subscribe + one snapshot per connect, back-off
across daemon restarts): every event updates the cells of its session's row, nothing polls the
daemon. A 1 s timer only refreshes the "for" and "last" durations of the rows on screen, and only the
cells whose text changed; durations count seconds only for busy and waiting sessions (minutes
elsewhere), so a screen where nothing changes is not redrawn at all. (Any cell change makes
Textual's DataTable re-render every visible row: that, not our code, is the cost per change.)

Keys: ↑/↓ move, ``p`` prompt, ``c`` command, ``a`` ask (the reply is shown under the table),
``x`` cancel the selected session's next queued message, ``enter`` jump to its tmux pane,
``/`` filter, ``escape`` close the input, ``q`` quit.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from typing import Any, ClassVar

import anyio
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Input, RichLog, Static

from ..aclient import AsyncClient
from ..alerts import Rules
from ..board import Board, Row
from ..client import ClientError
from ..eventfmt import ago, clock
from ..follow import Snapshot, Status, follow
from ..paths import Paths

# (key, header, width on an 80-column screen, extra share on wider screens)
COLUMNS: list[tuple[str, str, int, int]] = [
    ("name", "NAME", 10, 2),
    ("state", "STATE", 8, 0),
    ("for", "FOR", 5, 0),
    ("model", "MODEL", 10, 1),
    ("ctx", "CTX", 4, 0),
    ("cost", "COST", 6, 0),
    ("branch", "BRANCH", 10, 2),
    ("queued", "Q", 2, 0),
    ("last", "LAST", 5, 0),
]
DIR_MIN_WIDTH = 120
# The daemon's events say what changed state, not the new model, cost or directory (a
# statusline only publishes "context"; a new session only "associated"): after such an event,
# re-read list_sessions once, at most this often (a debounce, not a polling loop).
REFRESH_EVENTS = frozenset({"context", "associated", "connected", "branch"})
REFRESH_DEBOUNCE_S = 1.0
FRAME_S = 0.25  # events are drawn in batches at most this often (4 redraws a second)  # wide screens also show the working directory
ANSI_STATE = {"idle": "green", "busy": "yellow", "waiting": "magenta", "failed": "red"}
INPUT_HINTS = {
    "prompt": "prompt for {label} (enter sends, escape cancels)",
    "command": "slash command for {label}, e.g. compact keep the API notes",
    "ask": "ask {label} (the reply shows below)",
    "filter": "filter: part of a name, id, branch or directory; or a state (busy, waiting…)",
}


LIVE_STATES = frozenset({"busy", "waiting", "clearing"})


def coarse_ago(seconds: float) -> str:
    """``ago`` to the minute: ``<1m``, ``12m``, ``3h05m``."""
    return "<1m" if seconds < 60 else ago(seconds)


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


class TopApp(App[int]):
    """The live view; ``socket_path`` names the daemon, ``paths`` its database (for ``x``)."""

    TITLE = "ccc top"
    CSS = """
    Screen { layout: vertical; }
    #status { height: 1; padding: 0 1; }
    #table { height: 1fr; min-height: 5; }
    #reply { height: auto; max-height: 8; padding: 0 1; display: none; }
    #events { height: 8; border-top: solid $primary-darken-2; }
    #input { display: none; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "quit"),
        Binding("p", "open('prompt')", "prompt"),
        Binding("c", "open('command')", "command"),
        Binding("a", "open('ask')", "ask"),
        Binding("x", "cancel_queued", "cancel queued"),
        Binding("enter", "jump", "jump", show=True, priority=False),
        Binding("slash", "open('filter')", "filter"),
        Binding("escape", "close_input", "close", show=False),
    ]

    def __init__(
        self,
        socket_path: str,
        paths: Paths | None = None,
        *,
        bell: bool = False,
        show_all: bool = False,
        wall: Callable[[], float] = time.time,
        first_backoff_s: float = 0.25,
        max_backoff_s: float = 5.0,
    ) -> None:
        super().__init__()
        self.socket_path = socket_path
        self.paths = paths
        self.wall = wall
        self.board = Board()
        self.show_all = show_all
        self.rules = Rules() if bell else None
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self.colour = not os.environ.get("NO_COLOR")
        self.filter = ""
        self.mode: str | None = None
        self.target: str | None = None  # row key the open input acts on
        self.shown: list[str] = []  # row keys in table order
        self.cells: dict[tuple[str, str], str] = {}  # what each cell shows now
        self.connected = False
        self.status_text = "connecting…"
        self.columns: list[tuple[str, str, int]] = []
        self.refresh_pending = False
        self.asked_model: set[str] = set()  # rows a refresh was asked for because of no model
        self.status_pending = False
        self.pending: list[dict[str, Any]] = []
        self.flush_pending = False
        self.refresh_debounce_s = REFRESH_DEBOUNCE_S

    # --- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(self.status_text, id="status")
        table: DataTable[Any] = DataTable(id="table", cursor_type="row", zebra_stripes=False)
        yield table
        yield Static("", id="reply")
        yield RichLog(id="events", max_lines=500, wrap=False, markup=False)
        yield Input(id="input")
        yield Footer()

    def on_mount(self) -> None:
        self._build_columns()
        self.query_one(DataTable).focus()
        self.run_worker(self._follow(), exclusive=True, group="follow")
        self.set_interval(1.0, self._tick)

    def on_resize(self) -> None:
        if [c[0] for c in self._column_plan()] != [c[0] for c in self.columns] or (
            self._column_plan() != self.columns
        ):
            self._build_columns()
            self._rebuild()

    def _column_plan(self) -> list[tuple[str, str, int]]:
        width = self.size.width or 80
        cols = list(COLUMNS)
        if width >= DIR_MIN_WIDTH:
            cols.append(("dir", "DIR", 16, 3))
        base = sum(w + 2 for _, _, w, _ in cols)
        shares = sum(s for *_, s in cols) or 1
        extra = max(width - base - 2, 0)
        return [(k, h, w + extra * s // shares) for k, h, w, s in cols]

    def _build_columns(self) -> None:
        table = self.query_one(DataTable)
        table.clear(columns=True)
        self.columns = self._column_plan()
        for key, header, width in self.columns:
            table.add_column(header, key=key, width=width)
        self.shown, self.cells = [], {}

    # --- the feed ----------------------------------------------------------------------------

    async def _follow(self) -> None:
        await follow(
            self.socket_path,
            self._on_snapshot,
            self._on_event,
            self._on_status,
            first_backoff_s=self.first_backoff_s,
            max_backoff_s=self.max_backoff_s,
        )

    def _on_snapshot(self, snap: Snapshot) -> None:
        self.board.load(snap.sessions, snap.scheduled, self.wall())
        self._rebuild()

    def _on_event(self, event: dict[str, Any]) -> None:
        """Queue the event; they are drawn together at most every FRAME_S (a burst of 400
        events a second costs four redraws, not four hundred)."""
        self.pending.append(event)
        if not self.flush_pending:
            self.flush_pending = True
            self.set_timer(FRAME_S, self._draw_pending)

    def _draw_pending(self) -> None:
        self.flush_pending = False
        events, self.pending = self.pending, []
        with self.batch_update():
            for event in events:
                self._apply(event)

    def _apply(self, event: dict[str, Any]) -> None:
        change = self.board.apply(event)
        line = self.board.fmt.line(event)
        if line is not None:
            self.query_one(RichLog).write(self._event_text(line, event))
        if self.rules is not None:
            for alert in self.rules.on_change(change):
                self.bell()
                self._say(alert.text)
        if change is None:
            return
        if event.get("event") in REFRESH_EVENTS:
            self._want_refresh()
        elif change.row.model is None and change.row.key not in self.asked_model:
            self.asked_model.add(change.row.key)
            self._want_refresh()
        key = change.row.key
        if key in self.shown:
            self._update_row(change.row)
        elif self._matches(change.row):
            self._add_row(change.row)
        self._status_soon()

    def _status_soon(self) -> None:
        """Redraw the top line at most 10 times a second, however fast events come."""
        if not self.status_pending:
            self.status_pending = True
            self.set_timer(0.1, self._update_status)

    def _want_refresh(self) -> None:
        if not self.refresh_pending:
            self.refresh_pending = True
            self.set_timer(self.refresh_debounce_s, self._start_refresh)

    def _start_refresh(self) -> None:
        self.run_worker(self._refresh_sessions(), group="refresh")

    async def _refresh_sessions(self) -> None:
        self.refresh_pending = False
        try:
            async with AsyncClient(self.socket_path) as client:
                records = await client.query("list_sessions") or []
        except ClientError:
            return  # the stream's reconnect takes a fresh snapshot anyway
        for row in self.board.merge(records):
            if row.key in self.shown:
                self._update_row(row)
            elif self._matches(row):
                self._add_row(row)
        self._update_status()

    def _on_status(self, status: Status) -> None:
        self.connected = status.connected
        if status.connected:
            self.status_text = ""
        else:
            retry = f"; reconnecting in {status.retry_in_s:g} s" if status.retry_in_s else ""
            self.status_text = f"reconnecting: {status.message}{retry}"
        self._update_status()

    # --- drawing -----------------------------------------------------------------------------

    def _event_text(self, line: str, event: dict[str, Any]) -> Text:
        text = Text(line)
        state = event.get("state")
        if self.colour and event.get("event") == "state" and state in ANSI_STATE:
            start = line.find(str(state), 18)
            if start >= 0:
                text.stylize(ANSI_STATE[str(state)], start, start + len(str(state)))
        return text

    def _matches(self, row: Row) -> bool:
        return self.board.shows(row, self.filter, now=None if self.show_all else self.wall())

    def _rebuild(self) -> None:
        table = self.query_one(DataTable)
        keep = self.selected_key()
        table.clear()
        self.shown, self.cells = [], {}
        now = None if self.show_all else self.wall()
        for row in self.board.ordered(self.filter, now=now):
            self._add_row(row)
        if keep in self.shown:
            table.move_cursor(row=self.shown.index(keep))
        self._update_status()

    def _values(self, row: Row, now: float) -> dict[str, str]:
        # Seconds only where they matter (how long a turn runs, how long a session has waited
        # for you); elsewhere minutes, so a screen of quiet sessions never needs redrawing.
        precise = row.state in LIVE_STATES
        return {
            "name": row.label,
            "state": row.state,
            "for": (ago if precise else coarse_ago)(now - row.state_since)
            if row.state_since
            else "-",
            "model": row.model or "-",
            "ctx": f"{row.ctx_pct:.0f}%" if row.ctx_pct is not None else "-",
            "cost": f"${row.cost:.2f}" if row.cost is not None else "-",
            "branch": row.branch or "-",
            "queued": str(len(row.queued)) if row.queued else "",
            "last": coarse_ago(now - row.last_activity) if row.last_activity else "-",
            "dir": os.path.basename(row.cwd.rstrip("/")) if row.cwd else "-",
        }

    def _cell(self, key: str, value: str, width: int) -> Text:
        text = Text(cut(value, width))
        if key == "state" and self.colour and value in ANSI_STATE:
            text.stylize(ANSI_STATE[value])
        elif key == "state" and self.colour and value in ("ended", "unknown"):
            text.stylize("dim")
        elif key == "queued" and value and self.colour:
            text.stylize("bold")
        return text

    def _add_row(self, row: Row) -> None:
        values = self._values(row, self.wall())
        cells = []
        for key, _, width in self.columns:
            self.cells[(row.key, key)] = values[key]
            cells.append(self._cell(key, values[key], width))
        self.query_one(DataTable).add_row(*cells, key=row.key)
        self.shown.append(row.key)

    def _update_row(self, row: Row, only: tuple[str, ...] | None = None) -> None:
        table = self.query_one(DataTable)
        values = self._values(row, self.wall())
        for key, _, width in self.columns:
            if only is not None and key not in only:
                continue
            if self.cells.get((row.key, key)) != values[key]:
                self.cells[(row.key, key)] = values[key]
                table.update_cell(row.key, key, self._cell(key, values[key], width))

    def _visible_keys(self) -> list[str]:
        """The keys of the rows on screen (the durations of the others wait until scrolled to)."""
        table = self.query_one(DataTable)
        first = int(table.scroll_y)
        return self.shown[first : first + max(table.size.height, 1)]

    def _tick(self) -> None:
        with self.batch_update():
            for key in self._visible_keys():
                row = self.board.rows.get(key)
                if row is not None:
                    self._update_row(row, only=("for", "last"))
        if self.rules is not None:
            for alert in self.rules.due(self.board, self.wall()):
                self.bell()
                self._say(alert.text)

    def _update_status(self) -> None:
        self.status_pending = False
        rows = list(self.board.rows.values())
        counts = {s: sum(r.state == s for r in rows) for s in ("busy", "waiting", "idle")}
        queued = sum(len(r.queued) for r in rows)
        parts = [
            f"{len(self.shown)}/{len(rows)} sessions"
            if len(self.shown) != len(rows)
            else f"{len(rows)} sessions",
            f"{counts['busy']} busy",
            f"{counts['waiting']} waiting",
            f"{counts['idle']} idle",
        ]
        if queued:
            parts.append(f"{queued} queued")
        if self.filter:
            parts.append(f"filter: {self.filter}")
        head = " · ".join(parts)
        text = Text(f"ccc top  {head}")
        if self.status_text:
            text.append("  " + self.status_text, style="bold red" if self.colour else "bold")
        self.query_one("#status", Static).update(text)

    def _say(self, text: str) -> None:
        self.query_one(RichLog).write(Text(f"{clock(self.wall())} {text}", style="bold"))

    def _show_reply(self, text: str) -> None:
        reply = self.query_one("#reply", Static)
        reply.update(Text(text))
        reply.styles.display = "block" if text else "none"

    # --- keys --------------------------------------------------------------------------------

    def selected_key(self) -> str | None:
        table = self.query_one(DataTable)
        if not self.shown or table.cursor_row < 0 or table.cursor_row >= len(self.shown):
            return None
        return self.shown[table.cursor_row]

    def selected(self) -> Row | None:
        key = self.selected_key()
        return self.board.rows.get(key) if key else None

    def action_open(self, mode: str) -> None:
        row = self.selected()
        if mode != "filter" and (row is None or not row.session_id):
            self._say("no session selected")
            return
        self.mode, self.target = mode, row.key if row else None
        box = self.query_one(Input)
        box.placeholder = INPUT_HINTS[mode].format(label=row.label if row else "")
        box.value = self.filter if mode == "filter" else ""
        box.styles.display = "block"
        box.focus()

    def action_close_input(self) -> None:
        box = self.query_one(Input)
        box.styles.display = "none"
        self.mode = None
        self.query_one(DataTable).focus()
        self._show_reply("")

    async def on_input_submitted(self, message: Input.Submitted) -> None:
        mode, text = self.mode, message.value
        row = self.board.rows.get(self.target or "")
        self.action_close_input()
        if mode == "filter":
            self.filter = text.strip()
            self._rebuild()
            return
        if row is None or not row.session_id or not text.strip():
            return
        sid = row.session_id
        if mode == "ask":
            self._show_reply(f"asked {row.label}; waiting for the reply…")
        self.run_worker(self._send(mode or "", sid, row.label, text), group="send")

    async def _send(self, mode: str, sid: str, label: str, text: str) -> None:
        try:
            async with AsyncClient(self.socket_path) as client:
                if mode == "prompt":
                    reply = await client.prompt(sid, text)
                elif mode == "command":
                    name, _, args = text.strip().lstrip("/").partition(" ")
                    reply = await client.command(sid, name, args or None)
                else:
                    reply = await client.ask(sid, text)
        except ClientError as exc:
            self._say(f"{label}: {exc}")
            if mode == "ask":
                self._show_reply(f"ask {label}: {exc}")
            return
        if mode == "ask":
            answer = (reply.get("data") or {}).get("reply")
            self._show_reply(
                f"{label} replied:\n{answer}"
                if answer is not None
                else f"{label} finished its turn but left no reply text"
            )
            return
        status = reply.get("status") or "sent"
        data = reply.get("data") or {}
        extra = f" as {data['id']} ({data.get('reason')})" if status == "queued" else ""
        self._say(f"{mode} for {label} {status}{extra}")

    async def action_cancel_queued(self) -> None:
        row = self.selected()
        if row is None or not row.queued:
            self._say("the selected session has no queued message")
            return
        mid = min(row.queued, key=lambda m: row.queued[m])
        text = row.queued_text.get(mid, "")
        try:
            deleted = await anyio.to_thread.run_sync(self._delete_scheduled, mid)
        except Exception as exc:  # sqlite errors, a missing database
            self._say(f"could not cancel {mid}: {exc}; try: ccc schedule cancel {mid}")
            return
        self.board.forget_queued(mid)
        self._update_row(row)
        self._update_status()
        if deleted:
            self._say(f"cancelled {mid} for {row.label}: {text}")
            try:
                async with AsyncClient(self.socket_path) as client:
                    await client.query("reload_schedule")
            except ClientError:
                pass  # the daemon re-reads the schedule by itself
        else:
            self._say(f"{mid} was sent or cancelled meanwhile; nothing to cancel")

    def _delete_scheduled(self, mid: str) -> bool:
        from ..store import Store

        paths = self.paths or Paths.default()
        if not paths.db.exists():
            return False
        store = Store(paths.db)
        try:
            return store.delete_scheduled(mid)
        finally:
            store.close()

    async def on_data_table_row_selected(self, message: DataTable.RowSelected) -> None:
        await self.action_jump()

    async def action_jump(self) -> None:
        row = self.selected()
        if row is None:
            return
        if not row.tmux_pane:
            await self._refresh_sessions()  # the pane may be newer than our last snapshot
        if not row.tmux_pane:
            where = f" in {row.cwd}" if row.cwd else ""
            self._say(f"{row.label} has no tmux pane{where}; switch to its terminal yourself")
            return
        pane = row.tmux_pane
        if not os.environ.get("TMUX") or not shutil.which("tmux"):
            self._say(f"{row.label} is in tmux pane {pane}; outside tmux, run: tmux attach")
            return
        for args in (
            ["switch-client", "-t", pane],
            ["select-window", "-t", pane],
            ["select-pane", "-t", pane],
        ):
            with anyio.move_on_after(5):
                proc = await anyio.run_process(["tmux", *args], check=False)
                if proc.returncode != 0 and args[0] != "switch-client":
                    # switch-client fails harmlessly when no client is attached to that session
                    err = proc.stderr.decode("utf-8", "replace").strip()
                    self._say(f"tmux {' '.join(args)}: {err}")
                    return
        self._say(f"switched to {row.label} (tmux pane {pane})")


def run(
    socket_path: str, paths: Paths | None, *, bell: bool = False, show_all: bool = False
) -> int:
    return TopApp(socket_path, paths, bell=bell, show_all=show_all).run() or 0
