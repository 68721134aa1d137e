"""The http tier's transports side by side: 16 KiB blobs, 64 in flight, a loopback server in its own process.

    PYTHONPATH=. python -m benchmarks.http_tier [--keys 2000] [--rounds 5]

Contenders: ``sdk`` (urllib3) on the thread engine, ``fast`` (obstore's HTTPStore) on the thread engine, and
``fast`` on the event-loop engine (``get_many(engine="async")``). The server is a small asyncio HTTP/1.1 server
(keep-alive, one write per answer) in a child process, so it does not share the client's GIL. Prints the
median blobs/s of each contender over the rounds, its spread (min-max), ratios to ``sdk``, and the load average.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import multiprocessing
import os
import statistics
import time

SIZE = 16 * 1024
IN_FLIGHT = 64


def _serve(port_queue, count: int) -> None:
    blobs = {}
    for i in range(count):
        data = hashlib.sha256(str(i).encode()).digest() * (SIZE // 32)
        blobs[hashlib.sha1(data).hexdigest()] = data

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                data = blobs.get(path.rsplit("/", 1)[-1])
                if data is None:
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        port_queue.put(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def keys_for(count: int) -> list[str]:
    return [hashlib.sha1(hashlib.sha256(str(i).encode()).digest() * (SIZE // 32)).hexdigest() for i in range(count)]


def run(store, keys, engine: str) -> float:
    start = time.perf_counter()
    found = sum(r.status == "found" for r in store.get_many(keys, max_workers=IN_FLIGHT, progress=False,
                                                            engine=engine))
    elapsed = time.perf_counter() - start
    assert found == len(keys), f"{found} of {len(keys)} found"
    return len(keys) / elapsed


def main() -> None:
    import bitstore

    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    server = ctx.Process(target=_serve, args=(queue, args.keys), daemon=True)
    server.start()
    try:
        url = f"http://127.0.0.1:{queue.get(timeout=30)}/blobs/"
        keys = keys_for(args.keys)
        contenders = {
            "sdk (urllib3), threads": (bitstore.from_url(url, transport="sdk"), "threads"),
            "fast (obstore), threads": (bitstore.from_url(url, transport="fast"), "threads"),
            "fast (obstore), event loop": (bitstore.from_url(url, transport="fast"), "async"),
        }
        rates: dict[str, list[float]] = {name: [] for name in contenders}
        for store, engine in contenders.values():
            run(store, keys[:256], engine)  # warm-up: pools, obstore's runtime, the loop
        for _ in range(args.rounds):  # interleaved, so load changes hit every contender alike
            for name, (store, engine) in contenders.items():
                rates[name].append(run(store, keys, engine))
        base = statistics.median(rates["sdk (urllib3), threads"])
        print(f"{args.keys} x 16 KiB, {IN_FLIGHT} in flight, {args.rounds} rounds, loadavg "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs")
        for name, values in rates.items():
            median = statistics.median(values)
            print(f"{name:28s} median {median:8.0f} blobs/s  (min {min(values):.0f}, max {max(values):.0f})  "
                  f"x{median / base:.2f} of sdk")
    finally:
        server.terminate()
        server.join(5)


if __name__ == "__main__":
    main()
