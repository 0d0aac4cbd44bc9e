"""Optional WebSocket hop: Redis -> relay process -> WebSocket clients (what browsers see).

The relay subscribes to one channel on its own asyncio RESP connection and broadcasts each
message to every connected WebSocket (``websockets``). A client process holds the
WebSocket connections and measures latency from the message's intended send time, so the
figure is publisher -> Redis -> relay -> socket. The relay's RSS before and after the
clients connect gives its memory per WebSocket connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from array import array
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import psutil

from opsbook.pubsub import hist
from opsbook.pubsub.harness import Bench, receive
from opsbook.pubsub.message import HEADER
from opsbook.pubsub.resp import ConnParams, ReplyError, make_reader, pack
from opsbook.pubsub.workers import CLOCK

END = b"end"


async def _redis_messages(params: ConnParams, channel: str, on_message: Any) -> None:
    if params.path:
        reader, writer = await asyncio.open_unix_connection(params.path)
    else:
        reader, writer = await asyncio.open_connection(
            params.host, params.port, ssl=params.tls or None
        )
    if params.password:
        auth = (params.username, params.password) if params.username else (params.password,)
        writer.write(pack("AUTH", *auth))
    writer.write(pack("SUBSCRIBE", channel))
    parser = make_reader()
    while True:
        data = await reader.read(262144)
        if not data:
            return
        parser.feed(data)
        while (reply := parser.gets()) is not False:
            if isinstance(reply, ReplyError):
                raise reply
            if isinstance(reply, list) and reply[0] == b"message":
                on_message(reply[2])


async def _relay(params: ConnParams, channel: str, pipe: Connection) -> None:
    from websockets.asyncio.server import broadcast, serve

    sockets: set[Any] = set()

    async def handler(ws: Any) -> None:
        sockets.add(ws)
        try:
            await ws.wait_closed()
        finally:
            sockets.discard(ws)

    async with serve(handler, "127.0.0.1", 0, max_size=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        pipe.send({"port": port})
        await _redis_messages(params, channel, lambda data: broadcast(sockets, data))


def relay_main(params: ConnParams, channel: str, pipe: Connection) -> None:
    """Entry point of the relay process (runs until terminated)."""
    asyncio.run(_relay(params, channel, pipe))


async def _clients(port: int, n: int, pipe: Connection, timeout_s: float) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    lat, counts = array("q"), {"received": 0, "lost": 0, "reordered": 0}
    sockets = [await connect(f"ws://127.0.0.1:{port}", max_size=None) for _ in range(n)]
    pipe.send({"ready": True})

    async def reader(ws: Any) -> None:
        expected = 0
        async for data in ws:
            now = CLOCK()
            if data == END:
                return
            seq, intended = HEADER.unpack_from(data)[3:5]
            lat.append((now - intended) // 1000)
            counts["received"] += 1
            if seq > expected:
                counts["lost"] += seq - expected
            elif seq < expected:
                counts["reordered"] += 1
            expected = max(expected, seq + 1)

    done = False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(reader(ws) for ws in sockets)), timeout_s)
        done = True
    for ws in sockets:
        await ws.close()
    return {
        **counts,
        "latency": hist.encode(hist.from_values(np.frombuffer(lat, np.int64))),
        "timed_out": not done,
    }


def clients_main(port: int, n: int, timeout_s: float, pipe: Connection) -> None:
    """Entry point of the WebSocket client process."""
    pipe.send(asyncio.run(_clients(port, n, pipe, timeout_s)))


def measure(
    bench: Bench, *, clients: int, rate: int, duration_s: float, size: int = 512
) -> dict[str, Any]:
    """Publish at ``rate`` to one channel relayed to ``clients`` WebSockets; latency, loss,
    relay memory per WebSocket connection. The relay has to send ``rate * clients`` frames
    per second: one Python process manages a few thousand (see :func:`relay_rate`)."""
    channel = bench.channel("ws")
    relay = bench.spawn(relay_main, (bench.params, channel))
    try:
        port = receive(relay, 60, "WebSocket relay")["port"]
        time.sleep(0.2)
        rss0 = relay.ps.memory_info().rss
        client = bench.spawn(clients_main, (port, clients, duration_s + 30))
        receive(client, 120, "WebSocket clients")
        rss1 = relay.ps.memory_info().rss
        cpu0 = relay.cpu()
        pub = bench.publishers(1)[0]
        bench.step_id += 1
        pub.pipe.send(
            {
                "op": "run",
                "step": bench.step_id,
                "channels": [channel],
                "rate": rate,
                "count": max(1, int(rate * duration_s)),
                "size": size,
                "start_ns": CLOCK() + 100_000_000,
            }
        )
        sent = receive(pub, duration_s * 3 + 30, "publisher process")["sent"]
        report = _finish(bench, channel, client, duration_s + 60)
        cpu = relay.cpu() - cpu0
    finally:
        relay.process.terminate()
        relay.process.join(timeout=5)
    latency = hist.decode(report["latency"])
    return {
        "ws_clients": clients,
        "offered_rate": rate,
        "sent": sent,
        "deliveries": report["received"],
        "expected": sent * clients,
        "lost": sent * clients - report["received"],
        **hist.summary(latency),
        "relay_rss_per_ws_conn_bytes": (rss1 - rss0) / max(1, clients),
        "relay_cpu_pct": 100 * cpu / max(1e-9, duration_s),
    }


def _finish(bench: Bench, channel: str, client: Any, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        bench.admin.publish(channel, END)  # the end marker: a control message
        if client.pipe.poll(0.25):
            report = receive(client, 1, "WebSocket clients")
            client.process.join(timeout=5)
            return report
    with contextlib.suppress(psutil.Error):
        client.process.kill()
    raise TimeoutError("WebSocket clients never saw the end marker")


def relay_rate(clients: int, frames_per_s: int = 5000, floor: int = 10) -> int:
    """A publish rate the single-process relay can fan out to ``clients`` sockets."""
    return max(floor, frames_per_s // max(1, clients))
