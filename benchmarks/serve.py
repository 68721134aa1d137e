"""``bitstore serve`` hits against a minimal uvicorn + Starlette app and nginx, measured with wrk.

16 KiB blobs in a local folder (the gateway's cache tier: every request a hit). wrk: 2 threads, 64 connections,
random keys, ``--duration`` seconds a round; each server with 1 and 2 worker processes. Contenders, interleaved
round by round:

- ``bitstore serve``: ``bitstore serve --spec`` over a local cache tier (its default server, the lean one; the
  cache verifies each blob's SHA1 as it reads it, as by default);
- ``bitstore serve --server uvicorn``: the same gateway on uvicorn;
- ``bitstore serve, verify = false``: the default server, the cache tier told not to verify (an extra row: what
  the SHA1 check costs);
- ``bitstore serve, cache over S3``: the deployed shape, a bounded local cache tier (``max_bytes``, its own
  folder, holding every blob, put through bitstore so its index knows them) in front of an ``s3`` source with
  ``cache_result = true`` on the benchmarks' loopback object server (``benchmarks.server``, holding every blob
  too); every request a hit in the cache tier;
- ``bitstore serve, unbounded cache over S3``: the same without ``max_bytes`` (the first contender's folder): what
  the bounded cache's bookkeeping of uses costs, apart from the S3 tier behind;
- ``uvicorn + Starlette``: ``benchmarks.serve_baseline`` (reads the file, returns its bytes);
- ``nginx``: the folder served as static files (``alias``), access log off.

Prints the median of ``--rounds`` rounds (at least 5) with the min-max of requests/s, p50 and p99 latency. wrk and
nginx are optional (``make bench`` installs them on Debian); a missing one is reported, not fatal. The client and
the servers share the machine's CPUs: the load average is printed before and after.

Run: ``python -m benchmarks.serve [--rounds 5] [--duration 5] [--blobs 2000] [--workers 1 2] [--only NAME ...]``.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZE = 16 * 1024
LUA = """
local keys = {}
for line in io.lines(os.getenv("BENCH_KEYS")) do keys[#keys + 1] = line end
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/blobs/" .. keys[math.random(#keys)])
end
"""
NGINX = """
worker_processes {workers};
daemon off;
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy; fastcgi_temp_path {prefix}/fcgi;
  uwsgi_temp_path {prefix}/uwsgi; scgi_temp_path {prefix}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location /blobs/ {{ alias {folder}/; default_type application/octet-stream; }}
  }}
}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer")
        time.sleep(0.05)


def _fill(folder: Path, n: int) -> list[str]:
    keys = []
    for i in range(n):
        data = hashlib.sha256(b"serve-%d" % i).digest() * (SIZE // 32)
        key = hashlib.sha1(data).hexdigest()
        (folder / key).write_bytes(data)
        keys.append(key)
    return keys


def _fill_cache_over_s3(folder: Path, work: Path, endpoint: str, keys: list[str]) -> Path:
    """The ``cache over S3`` contender's own cache folder and the object server's bucket, each holding every blob of
    ``folder`` (written through bitstore: the bounded cache's index knows them); its spec's path."""
    sys.path.insert(0, str(ROOT))
    from bitstore import LocalRaw, Sha1Cache, Sha1Store
    from bitstore.backends.s3 import S3Raw

    cache = Sha1Cache(LocalRaw(work / "cache-over-s3", max_bytes=CACHE_BYTES), "")
    source = Sha1Store(S3Raw(endpoint_url=endpoint), f"s3://{BUCKET}/blobs/")
    for key in keys:
        data = (folder / key).read_bytes()
        cache.put(key, data)
        source.put(key, data)
    source_tier = (f'[[tier]]\ntype = "s3"\nprefix = "s3://{BUCKET}/blobs/"\nendpoint_url = "{endpoint}"\n'
                   'cache_result = true\n')
    spec = work / "spec-cache-over-s3.toml"
    spec.write_text(f'keys = "sha1"\n\n[[tier]]\ntype = "local"\nprefix = "{work / "cache-over-s3"}/"\n'
                    f'role = "cache"\nmax_bytes = {CACHE_BYTES}\n\n{source_tier}')
    (work / "spec-unbounded-cache-over-s3.toml").write_text(
        f'keys = "sha1"\n\n[[tier]]\ntype = "local"\nprefix = "{folder}/"\nrole = "cache"\n\n{source_tier}')
    return spec


def _start(name: str, workers: int, folder: Path, work: Path) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_FOLDER": str(folder), **S3_ENV}
    if name.startswith("bitstore serve"):
        spec = work / f"spec-{port}.toml"
        verify = "verify = false\n" if "verify = false" in name else ""
        if "cache over S3" in name:
            spec = work / ("spec-unbounded-cache-over-s3.toml" if "unbounded" in name else "spec-cache-over-s3.toml")
        else:
            spec.write_text(f'keys = "sha1"\n\n[[tier]]\ntype = "local"\nprefix = "{folder}/"\nrole = "cache"\n'
                            f'{verify}')
        args = [sys.executable, "-m", "bitstore.cli", "serve", "--spec", str(spec), "--port", str(port),
                "--workers", str(workers)] + (["--server", "uvicorn"] if "uvicorn" in name else [])
    elif name == "uvicorn + Starlette":
        args = [sys.executable, "-m", "uvicorn", "benchmarks.serve_baseline:app", "--port", str(port), "--workers",
                str(workers), "--no-access-log", "--log-level", "warning"]
    else:
        prefix = work / f"nginx-{port}"
        prefix.mkdir()
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX.format(workers=workers, prefix=prefix, port=port, folder=folder))
        args = ["nginx", "-c", str(conf), "-p", str(prefix)]
    process = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, port


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


CONTENDERS = ("bitstore serve", "bitstore serve --server uvicorn", "uvicorn + Starlette", "nginx",
              "bitstore serve, verify = false", "bitstore serve, cache over S3",
              "bitstore serve, unbounded cache over S3")
CACHE_BYTES = 1 << 30
BUCKET = "bench-serve"
#: Credentials for the loopback object server (it checks none); never the caller's own.
S3_ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
          "AWS_EC2_METADATA_DISABLED": "true"}
_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _wrk(port: int, duration: float, keys_file: Path, script: Path) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) of one wrk run."""
    env = {**os.environ, "BENCH_KEYS": str(keys_file)}
    out = subprocess.run(["wrk", "-t2", "-c64", f"-d{duration:g}s", "--latency", "-s", str(script),
                          f"http://127.0.0.1:{port}"], env=env, capture_output=True, text=True, timeout=duration + 60)
    text = out.stdout
    if out.returncode != 0 or "Requests/sec" not in text:
        raise RuntimeError(f"wrk failed: {out.stderr or text}")
    if re.search(r"Non-2xx or 3xx responses: (\d+)", text):
        raise RuntimeError(f"wrk saw errors: {text}")

    def latency(pct: str) -> float:
        value, unit = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M).groups()
        return float(value) * _UNIT[unit]

    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    return rate, latency("50"), latency("99")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of each wrk run")
    parser.add_argument("--blobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="measure only these contenders (names as printed; "
                        "the first is the one the ratios are of)")
    args = parser.parse_args(argv)
    if args.rounds < 5:
        parser.error("--rounds must be at least 5 (a median of 5 or more)")
    if shutil.which("wrk") is None:
        print("wrk is not installed (make bench installs it on Debian): nothing measured")
        return
    contenders = list(CONTENDERS)
    if not shutil.which("nginx"):
        contenders.remove("nginx")
        print("nginx is not installed (make bench installs it on Debian): not measured")
    if args.only:
        unknown = [name for name in args.only if name not in CONTENDERS]
        if unknown:
            parser.error(f"--only: no contender named {', '.join(unknown)} (one of: {', '.join(CONTENDERS)})")
        contenders = [name for name in args.only if name in contenders]
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        folder = work / "blobs"
        folder.mkdir()
        keys = _fill(folder, args.blobs)
        keys_file = work / "keys.txt"
        keys_file.write_text("\n".join(keys) + "\n")
        script = work / "random.lua"
        script.write_text(LUA)
        if any("cache over S3" in name for name in contenders):
            from benchmarks.server import ServerProcess

            objects = stack.enter_context(ServerProcess())
            os.environ.update(S3_ENV)
            objects.fill(BUCKET, "blobs/", 0, SIZE)  # the bucket, empty
            _fill_cache_over_s3(folder, work, objects.endpoint, keys)
        print(f"# 16 KiB blobs ({args.blobs:,}, random keys), wrk -t2 -c64 {args.duration:g}s a round, "
              f"{os.cpu_count()} CPUs shared by client and server; load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for workers in args.workers:
            servers = {name: _start(name, workers, folder, work) for name in contenders}
            try:
                for _, port in servers.values():
                    _wait(f"http://127.0.0.1:{port}/blobs/{keys[0]}")
                results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in contenders}
                for _, port in servers.values():  # warm-up
                    _wrk(port, 1, keys_file, script)
                for _ in range(args.rounds):
                    for name, (_, port) in servers.items():
                        results[name].append(_wrk(port, args.duration, keys_file, script))
            finally:
                for process, _ in servers.values():
                    _stop(process)
            print(f"\n## {workers} worker process{'es' if workers > 1 else ''}, median of {args.rounds} [min-max]")
            print("| server | requests/s | p50 ms | p99 ms |")
            print("|---|---|---|---|")
            for name, rows in results.items():
                cells = []
                for i, digits in ((0, 0), (1, 2), (2, 2)):
                    values = [r[i] for r in rows]
                    cells.append(f"{statistics.median(values):,.{digits}f} [{min(values):,.{digits}f}-"
                                 f"{max(values):,.{digits}f}]")
                print(f"| {name} | " + " | ".join(cells) + " |")
            ours = [name for name in contenders if name.startswith("bitstore serve")]
            others = [name for name in contenders if not name.startswith("bitstore serve")]
            for mine in ours:
                base = statistics.median(r[0] for r in results[mine])
                for name in others:
                    other = statistics.median(r[0] for r in results[name])
                    print(f"{mine} / {name}: {base / other:.2f}x requests/s")
            for name in ("bitstore serve, cache over S3", "bitstore serve, unbounded cache over S3"):
                if name in results and "bitstore serve" in results:  # the deployed shape vs the all-local stack
                    deployed = statistics.median(r[0] for r in results[name])
                    local = statistics.median(r[0] for r in results["bitstore serve"])
                    print(f"{name} / bitstore serve: {deployed / local:.2f}x requests/s")
            print(f"load average now: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
