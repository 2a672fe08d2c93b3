"""``ccc top``: the full-screen live view of every session (Textual).

Imported only by the ``top`` command: Textual is heavy and must never load on the send path.
:mod:`ccc_statusd.top.app` holds the App; the rows are a :class:`~ccc_statusd.board.Board`
kept from one ``list_sessions`` at (re)connect plus the daemon's event stream.
"""
