"""Measuring sticks for the benchmark, run as their own processes like the daemon is.

* ``relay``: the minimal Trio relay, sender → relay → session client → relay → sender. It is
  the floor for what a Trio router on one event loop can do in this Python on this machine: no
  validation, no storage, no timeouts, no error handling. It is NOT a product; every ratio in
  the table is "daemon / relay" measured side by side in the same run.
* ``pingpong``: a plain-Python blocking Unix-socket line echo (one thread per connection), the
  raw socket floor with no event loop at all.

Run: ``python -m ccc_statusd.bench.baselines relay|pingpong SOCKET_PATH``.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import sys
import threading

import trio

# --- the minimal Trio relay (measuring stick) ---------------------------------------------


async def relay(path: str) -> None:
    clients: dict[str, tuple[trio.SocketStream, trio.Lock]] = {}  # session id → its stream
    waiting: dict[str, trio.MemorySendChannel[bytes]] = {}  # our request id → the sender
    ids = itertools.count()

    async def conn(stream: trio.SocketStream) -> None:
        buf, lock = b"", trio.Lock()  # the lock: senders and this task both write here
        while data := await stream.receive_some(65536):
            buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                msg = json.loads(line)
                kind = msg["type"]
                if kind == "response":  # a session client answering one of ours
                    waiting.pop(msg["request_id"]).send_nowait(line)
                    continue
                if kind == "prompt":
                    rid = f"r{next(ids)}"
                    send, recv = trio.open_memory_channel[bytes](1)
                    waiting[rid] = send
                    out = {
                        "type": "prompt",
                        "request_id": rid,
                        "session_id": msg["session_id"],
                        "text": msg["text"],
                    }
                    to, to_lock = clients[msg["session_id"]]
                    async with to_lock:
                        await to.send_all(json.dumps(out).encode() + b"\n")
                    answer = json.loads(await recv.receive())
                    reply = {
                        "type": "response",
                        "request_id": msg.get("request_id"),
                        "status": "delivered",
                        "data": answer.get("data"),
                    }
                elif kind == "register":
                    clients[msg["session_id"]] = (stream, lock)
                    reply = {"type": "response", "request_id": msg.get("request_id")}
                else:  # heartbeat, query: just answer
                    reply = {
                        "type": "response",
                        "request_id": msg.get("request_id"),
                        "data": "pong",
                    }
                async with lock:
                    await stream.send_all(json.dumps(reply).encode() + b"\n")

    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    await sock.bind(path)
    sock.listen(4096)
    await trio.serve_listeners(conn, [trio.SocketListener(sock)])  # type: ignore[arg-type]


# --- plain-Python Unix-socket ping-pong (measuring stick) ---------------------------------


def pingpong(path: str) -> None:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(128)

    def echo(c: socket.socket) -> None:
        with c:
            while data := c.recv(65536):
                c.sendall(data)  # the client sends one line and waits: echo is a line echo

    while True:
        c, _ = srv.accept()
        threading.Thread(target=echo, args=(c,), daemon=True).start()


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("relay", "pingpong"):
        print(
            "usage: python -m ccc_statusd.bench.baselines relay|pingpong SOCKET_PATH",
            file=sys.stderr,
        )
        return 2
    kind, path = argv
    if os.path.exists(path):
        os.unlink(path)
    try:
        if kind == "relay":
            trio.run(relay, path)
        else:
            pingpong(path)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
