"""The ``bitstore`` console script: ``get``, ``put``, ``fetch``, ``stat``, ``warm``, ``verify``, ``ls``, ``scrub``,
``replicate`` and ``demo``.

Exit codes: 0 success, 1 blob missing (``get``) or corrupt (``verify``, ``scrub``, ``replicate``), 2 invalid
input or usage, 3 a fetch, write or listing failed, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM); both remove
the temp files of writes under way.
Errors print one line to stderr, never a traceback (unless ``-vv``) and never a secret.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import traceback
from collections import Counter
from collections.abc import Sequence

from ..integrations.fetchjob import human_size, plural
from ..spec.load import load_spec, load_spec_or_default

__all__ = ["main", "EXIT_OK", "EXIT_MISSING", "EXIT_USAGE", "EXIT_FAILED"]

EXIT_OK, EXIT_MISSING, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3
_CHUNK = 8 * 1024 * 1024  # bytes per read when a blob is streamed


class UsageError(Exception):
    """A user error the CLI reports in one line with exit code 2."""


class Terminated(BaseException):
    """SIGTERM arrived: raised in the main thread so the command unwinds as on Ctrl-C (temp files removed)."""


def _on_sigterm(signum: int, frame) -> None:
    raise Terminated


def _handle_sigterm():
    """Install the SIGTERM handler (main thread only); returns the previous one, to restore."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _on_sigterm)


def _conf_pair(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` (the value may hold ``=``) as a pair; a missing ``=`` or key is a usage error."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _load_spec(args: argparse.Namespace):
    """The store the command works on: the tiers given by ``--url``/``--cache-url``, else ``--spec``, else the
    local store under ``$BITSTORE_HOME``."""
    if args.url or args.cache_url:
        if args.spec:
            raise UsageError("give --spec or --url/--cache-url, not both")
        from ..spec.url_stores import url_spec

        return load_spec(url_spec(args.url or [], cache=args.cache_url, keys=args.keys or "sha1"))
    if args.keys:
        raise UsageError("--keys goes with --url/--cache-url (a spec says its own keys)")
    return load_spec_or_default(args.spec)


def _parser() -> argparse.ArgumentParser:
    from ..ground.version import __version__

    # Global options are accepted before or after the subcommand; SUPPRESS keeps a subcommand from
    # resetting a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--spec", metavar="PATH", default=argparse.SUPPRESS,
                        help="store spec (TOML); default: the local store under $BITSTORE_HOME (~/.bitstore)")
    common.add_argument("--url", action="append", metavar="URL", default=argparse.SUPPRESS,
                        help="a tier named by its URL instead of a spec (repeatable, tiers in order): "
                             "s3://bucket/dir/, gs://, az://, file:///dir/ or a path, mem://name/, https://host/dir/ "
                             "(or ...{sha1}...)")
    common.add_argument("--cache-url", metavar="URL", default=argparse.SUPPRESS,
                        help="the cache tier by URL: read first, and every hit from the --url tiers written to it")
    common.add_argument("--keys", choices=("sha1", "sha256"), default=argparse.SUPPRESS,
                        help="the key family of the --url tiers (default sha1)")
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="log more (-v info, -vv debug)")
    parser = argparse.ArgumentParser(prog="bitstore", parents=[common],
                                     description="Tiered, content-addressed (SHA1 or SHA-256) blob storage.")
    parser.add_argument("--version", action="version", version=f"bitstore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    get = sub.add_parser("get", parents=[common], help="write one blob to stdout or a file",
                         description="Streams the blob (never held whole) and checks its hash (SHA1, or SHA-256 "
                                     "under a keys = \"sha256\" spec) as it goes; refuses to write to a terminal "
                                     "without -o. Exit 0 found, 1 missing, 2 invalid key, 3 failed.")
    get.add_argument("key", metavar="KEY", help="<sha1> or sha1://<sha1>; under a keys = \"sha256\" spec, <sha256> "
                                                 "or sha256://<sha256>")
    get.add_argument("-o", "--output", metavar="FILE", help="write the blob to FILE (written whole, then renamed)")
    get.set_defaults(run=_get)

    put = sub.add_parser("put", parents=[common], help="store files under their hash and print the keys",
                         description="Names each file by its SHA1 (its SHA-256 under a keys = \"sha256\" spec) and "
                                     "writes it to the spec's cache tier, else its first writable tier (or --to). "
                                     "Blobs already there are skipped. Prints '<key>  <file>' for each file "
                                     "stored or already there, and a summary. Exit 2 when a file cannot be read, "
                                     "3 when a write failed.")
    put.add_argument("paths", nargs="+", metavar="PATH", help="files, or folders with --recursive")
    put.add_argument("-r", "--recursive", action="store_true", help="store every file under the folders given")
    put.add_argument("--to", metavar="TIER", help="the tier to write to: its name or its number (1 = first)")
    put.add_argument("--overwrite", action="store_true", help="write blobs that are already there again")
    put.add_argument("--max-workers", type=_positive_int, metavar="N", default=16, help="concurrent writes (16)")
    put.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="show a progress bar (default: only on a terminal)")
    put.set_defaults(run=_put)

    fetch = sub.add_parser("fetch", parents=[common], help="fetch the keys of a file into a table of blobs",
                           description="Input format from the extension: .txt (one key a line), .csv (with a "
                                       "header), .parquet; '-' reads one key a line from stdin (a first line equal "
                                       "to --column, e.g. 'sha1', is a header and skipped). Output: every input "
                                       "column (the key column canonical for valid keys), then blob, status, "
                                       "source; .parquet, or .csv with blobs base64-encoded. Exit 3 when any key "
                                       "failed.")
    _input_args(fetch)
    fetch.add_argument("--output", "-o", required=True, metavar="PATH", help="PATH.parquet or PATH.csv")
    fetch.add_argument("--max-workers", type=_positive_int, metavar="N",
                       help="concurrent fetches (default: the spec's max_workers, else 64)")
    fetch.add_argument("--max-bytes-in-flight", type=_positive_int, metavar="BYTES",
                       help="bytes fetched and not yet written (default: the spec's, else 256 MiB)")
    fetch.add_argument("--batch-size", type=_positive_int, metavar="N", default=None,
                       help="rows per Parquet row group (default: 4096)")
    _progress_arg(fetch)
    fetch.add_argument("--engine", choices=("local", "beam", "spark", "ray"), default="local",
                       help="where to fetch: this process (default), Beam (beam_transforms.pipeline), or the running "
                            "Spark session / Ray cluster, else a local one (same output; see the Spark and Ray guide)")
    fetch.add_argument("--spark-conf", action="append", type=_conf_pair, default=[], metavar="KEY=VALUE",
                       help="with --engine spark, a Spark setting of the local session the job starts, over "
                            "bitstore's small-JVM defaults (repeatable; e.g. spark.driver.memory=2g)")
    fetch.set_defaults(run=_fetch)

    stat = sub.add_parser("stat", parents=[common], help="which tier has each key's blob, and its size (no download)",
                          description="HEAD (S3, GCS) or stat (disk) per key, tiers in order. Output: every input "
                                      "column, then status, size, source, to PATH.parquet or PATH.csv with -o, else "
                                      "tab-separated lines on stdout. Exit 3 when any key failed.")
    _input_args(stat)
    stat.add_argument("--output", "-o", metavar="PATH", help="PATH.parquet or PATH.csv (default: lines on stdout)")
    stat.add_argument("--max-workers", type=_positive_int, metavar="N", help="concurrent requests (default: 64)")
    _progress_arg(stat)
    stat.set_defaults(run=_stat)

    warm = sub.add_parser("warm", parents=[common], help="fetch keys into the cache tier, write nothing else",
                          description="Every key found in another tier is written to the spec's cache tier. "
                                      "Exit 3 when a key or a cache write failed.")
    _input_args(warm)
    warm.add_argument("--max-workers", type=_positive_int, metavar="N", help="concurrent fetches (default: 64)")
    _progress_arg(warm)
    warm.set_defaults(run=_warm)

    verify = sub.add_parser("verify", parents=[common], help="re-hash a tier's blobs and report corrupt ones",
                            description="Streams each blob of the tier through its key's hash (SHA1 or SHA-256). "
                                        "Prints '<key>  corrupt in "
                                        "<tier>: ...' for each corrupt blob. Exit 1 when any blob is corrupt, else "
                                        "3 when a read failed, else 0.")
    _input_args(verify)
    verify.add_argument("--tier", metavar="NAME", help="its name or number (default: the cache tier, else the "
                                                         "first writable tier)")
    verify.add_argument("--max-workers", type=_positive_int, metavar="N", default=16, help="concurrent reads (16)")
    _progress_arg(verify)
    verify.set_defaults(run=_verify)

    ls = sub.add_parser("ls", parents=[common], help="list the keys a store holds, one a line, ascending",
                        description="Every key of the tier (default: every tier of the spec, merged), read page by "
                                    "page. Exit 2 when a tier cannot list (HTTP, API), 3 when the listing failed.")
    ls.add_argument("--tier", metavar="NAME", help="list one tier: its name or number (1 = first)")
    ls.add_argument("--start-after", metavar="KEY", help="only the keys after KEY")
    ls.set_defaults(run=_ls)

    scrub = sub.add_parser("scrub", parents=[common], help="re-hash every blob a tier holds, report corrupt ones",
                           description="Lists the tier and streams each blob through its hash. Prints a line per "
                                       "corrupt or failed blob, a summary and the last key checked (resume with "
                                       "--start-after). Exit 1 when a blob is corrupt, else 3 when a read or the "
                                       "listing failed, else 0.")
    scrub.add_argument("--tier", metavar="NAME", help="its name or number (default: the cache tier, else the first "
                                                        "writable tier)")
    scrub.add_argument("--start-after", metavar="KEY", help="resume after KEY (the last key a run checked)")
    scrub.add_argument("--delete-corrupt", action="store_true", help="remove corrupt copies")
    scrub.add_argument("--json", action="store_true", help="JSON lines: one per corrupt or failed blob, then the "
                                                          "summary")
    scrub.add_argument("--max-workers", type=_positive_int, metavar="N", default=16, help="concurrent reads (16)")
    _progress_arg(scrub)
    scrub.set_defaults(run=_scrub)

    replicate = sub.add_parser("replicate", parents=[common], help="copy the blobs one store has and another lacks",
                               description="TIER is a tier of the spec (its name or number); URL a store URL or a "
                                           "local folder. Only keys missing from the destination are copied, each "
                                           "checked against its key first. Exit 1 when a source copy is corrupt, "
                                           "else 3 when a copy failed.")
    replicate.add_argument("--from", dest="source", required=True, metavar="TIER|URL", help="where the blobs are")
    replicate.add_argument("--to", dest="target", required=True, metavar="TIER|URL", help="where they go")
    replicate.add_argument("--start-after", metavar="KEY", help="only the keys after KEY")
    replicate.add_argument("--max-workers", type=_positive_int, metavar="N", default=64, help="concurrent copies "
                                                                                             "(64)")
    replicate.add_argument("--max-bytes-in-flight", type=_positive_int, metavar="BYTES",
                           help="bytes held by copies under way (default 256 MiB); larger blobs stream")
    _progress_arg(replicate)
    replicate.set_defaults(run=_replicate)

    serve = sub.add_parser("serve", parents=[common], help="serve the store's blobs over HTTP (read-through)",
                           description="GET/HEAD /blobs/{key} (ranges, ETags, 304), /healthz, /metrics. Binds "
                                       "127.0.0.1 unless told otherwise. SIGTERM: finish requests in flight, exit 0.")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    serve.add_argument("--token-env", metavar="VAR", default=None,
                       help="require 'Authorization: Bearer <$VAR>' on every route but /healthz")
    serve.add_argument("--max-concurrency", type=_positive_int, metavar="N", default=64,
                       help="store calls at once (default: 64)")
    serve.add_argument("--workers", type=_positive_int, metavar="N", default=1,
                       help="server processes (default: 1; more needs --spec)")
    serve.add_argument("--access-log", action="store_true", help="log every request (paths only)")
    serve.add_argument("--server", choices=("bitstore", "uvicorn"), default="bitstore",
                       help="HTTP server: bitstore's own lean one (default, faster) or uvicorn")
    serve.set_defaults(run=_serve)

    demo = sub.add_parser("demo", help="build a sample tiered store in a temporary folder and fetch from it twice")
    demo.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                      help="show a progress bar (default: only on a terminal)")
    demo.set_defaults(run=_demo)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from ..serve.run import run

    spec = _load_spec(args)  # --spec, or --url/--cache-url; errors before anything binds
    if args.workers == 1:
        run(spec.build(), host=args.host, port=args.port, token_env=args.token_env,
            max_concurrency=args.max_concurrency, access_log=args.access_log, server=args.server)
    elif args.url or args.cache_url:
        raise UsageError("--workers above 1 needs --spec (each process builds its store from it)")
    else:
        run(spec=args.spec, host=args.host, port=args.port, token_env=args.token_env,
            max_concurrency=args.max_concurrency, workers=args.workers, access_log=args.access_log,
            server=args.server)
    return EXIT_OK


def _input_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", "-i", required=True, metavar="PATH",
                        help=".txt (one key a line), .csv (with a header), .parquet, or - (stdin, one key a line)")
    parser.add_argument("--column", default=None,
                        help="the key column of a .csv or .parquet input, strings only (default: sha1; sha256 "
                             "under a keys = \"sha256\" spec)")


def _progress_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show a progress bar (default: only on a terminal)")


# --- commands ---------------------------------------------------------------------------------------
def _get(args: argparse.Namespace) -> int:
    from ..core.keys import family_named
    from ..ground.errors import InvalidURI, NotFoundInStore

    spec = _load_spec(args)
    store = spec.build()
    if not store.accepts(args.key):
        hint = getattr(store, "URI_HINT", None)
        raise UsageError(f"not a valid key: {args.key[:100]!r}" + (f" (expected {hint})" if hint else ""))
    if not args.output and _is_terminal(sys.stdout):
        raise UsageError("refusing to write a blob to the terminal: use -o FILE, or redirect the output")
    if args.output:
        _check_writable(args.output)
    try:
        stream = store.open(args.key)
    except NotFoundInStore:
        _error(f"not found: {args.key}")
        return EXIT_MISSING
    except InvalidURI as exc:
        raise UsageError(str(exc)) from None
    except Exception as exc:  # FetchFailed, StoreNotAvailable, a user's store
        _error(_one_line(exc))
        return EXIT_FAILED
    family = family_named(spec.keys)
    family = family.family if family is not None else None
    expected = store.canonical_key(args.key) if family is not None else None
    with stream:
        size, actual = _stream_to(stream, args.output, expected, family.new if family is not None else None)
    if expected is not None and actual != expected:
        _error(f"{args.key}: the bytes served have {family.label} {actual}: corrupt" +
               ("; nothing written" if args.output else ""))
        return EXIT_FAILED
    logging.getLogger("bitstore.cli").info("%s: %d bytes", args.key, size)
    return EXIT_OK


def _stream_to(stream, output: str | None, expected: str | None, new_digest=None) -> tuple[int, str]:
    """Copy ``stream`` to stdout, or to ``output`` through a temporary file renamed at the end only when the hash
    of the bytes (``new_digest``, a hashlib constructor; SHA1 by default) is ``expected`` (or nothing is
    expected), hashing as it goes: ``(size, hex digest)``."""
    import contextlib
    import hashlib
    import tempfile

    digest, size = (new_digest or hashlib.sha1)(), 0
    if output is None:
        target = sys.stdout.buffer
        tmp = None
    else:
        folder = os.path.dirname(os.path.abspath(output))
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(output)}.", suffix=".tmp")
        target = os.fdopen(fd, "wb")
    try:
        try:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                target.write(chunk)
            target.flush()
        except BrokenPipeError:  # e.g. `bitstore get ... | head -c 10`
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return size, digest.hexdigest()
        except OSError as exc:
            if tmp is None:
                raise
            raise UsageError(f"cannot write {output}: {exc.strerror or type(exc).__name__}") from None
        if tmp is not None:
            target.close()
            if expected is None or digest.hexdigest() == expected:
                os.replace(tmp, output)
                tmp = None
    finally:
        if tmp is not None:
            target.close()
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return size, digest.hexdigest()


def _put(args: argparse.Namespace) -> int:
    spec = _load_spec(args)
    if spec.keys == "uri":
        raise UsageError('put stores files under their hash: it needs a spec with keys = "sha1" or "sha256"')
    if args.to is not None:
        index = _tier_index(spec, args.to)
        if spec.tiers[index]["type"] == "api":
            raise UsageError(f"tier {args.to!r} is an api source: it cannot be written to")
    else:
        index = spec.write_index
        if index is None:
            raise UsageError("the spec has no writable tier (only api sources)")
    tier = spec.build_tier(index)
    status = EXIT_OK
    files: list[str] = []
    for path in args.paths:
        if os.path.isdir(path):
            if not args.recursive:
                _error(f"{path} is a folder: add --recursive to store the files under it")
                status = EXIT_USAGE
                continue
            files.extend(_walk(path))
        else:
            files.append(path)
    counts = Counter()
    for result in tier.put_many(files, skip_existing=not args.overwrite, max_workers=args.max_workers,
                                progress=args.progress, total=len(files)):
        counts[result.status] += 1
        if result.ok:
            print(f"{result.key}  {result.path}", flush=True)
        elif result.status == "invalid":
            _error(result.error)
            status = max(status, EXIT_USAGE)
        else:
            _error(f"cannot store {result.path} in {tier.name}: {result.error}")
            status = EXIT_FAILED
    if len(files) > 1 or args.recursive:
        print(f"bitstore put -> {tier.name}: {plural(counts['stored'], 'file')} stored, {counts['skipped']:,} "
              f"already there, {counts['invalid']:,} unreadable, {counts['failed']:,} failed", file=sys.stderr)
    return status


def _walk(folder: str) -> list[str]:
    """The files under ``folder``, sorted (symlinked folders are not followed; temporary files of ours skipped)."""
    found = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        found.extend(os.path.join(root, n) for n in sorted(names) if not n.startswith(".bitstore-"))
    return found


def _tier_index(spec, wanted: str) -> int:
    """The index of the tier named ``wanted`` (its ``name``, its built name, or its 1-based number)."""
    if wanted.isdigit() and 1 <= int(wanted) <= len(spec.tiers):
        return int(wanted) - 1
    names = []
    for index, tier in enumerate(spec.tiers):
        name = tier.get("name") or spec.build_tier(index).name
        if wanted in (tier.get("name"), name):
            return index
        names.append(name)
    raise UsageError(f"no tier named {wanted!r}; the tiers are: {', '.join(repr(n) for n in names)} (or 1-"
                     f"{len(spec.tiers)})")


def _fetch(args: argparse.Namespace) -> int:
    from ..core.store import DEFAULT_MAX_BYTES_IN_FLIGHT
    from ..integrations.fetchjob import DEFAULT_BATCH_ROWS, fetch_on_engine, fetch_to_file, process_allocator
    from ..integrations.tables import check_output

    if args.spark_conf and args.engine != "spark":
        raise UsageError("--spark-conf is for --engine spark")
    if args.engine == "beam":
        return _fetch_on_beam(args)
    check_output(args.output)
    process_allocator()
    spec = _load_spec(args)
    keys = _open_input(args, spec)
    options = {"max_workers": args.max_workers or spec.max_workers or 64,
               "batch_size": args.batch_size or DEFAULT_BATCH_ROWS,
               "max_bytes_in_flight": args.max_bytes_in_flight or spec.max_bytes_in_flight
               or DEFAULT_MAX_BYTES_IN_FLIGHT}
    if args.engine == "local":
        summary = fetch_to_file(spec.build, keys, args.output, progress=args.progress, total=keys.total, **options)
    else:
        if args.engine == "spark":
            options["spark_conf"] = dict(args.spark_conf)
        summary = fetch_on_engine(args.engine, spec, keys, args.output, **options)
    print(f"bitstore fetch -> {args.output}", file=sys.stderr)
    for line in summary.lines():
        print(line, file=sys.stderr)
    return EXIT_FAILED if summary.failed else EXIT_OK


def _fetch_on_beam(args: argparse.Namespace) -> int:
    """The same job as ``python -m beam_transforms.pipeline`` (run as that module: bitstore imports no Beam code)."""
    import subprocess

    if args.input == "-":
        raise UsageError("--engine beam reads its keys from a file, not from stdin")
    if args.url or args.cache_url:
        raise UsageError("--engine beam takes its tiers from --spec (write the --url tiers as a spec file)")
    argv = [sys.executable, "-m", "beam_transforms.pipeline", "--input", args.input, "--output", args.output,
            *(["--column", args.column] if args.column else []), *(["--spec", args.spec] if args.spec else []),
            *(["--max_workers", str(args.max_workers)] if args.max_workers else [])]
    return subprocess.run(argv).returncode


def _stat(args: argparse.Namespace) -> int:
    import pyarrow as pa

    from ..integrations.fetchjob import failure_cause, write_rows
    from ..integrations.tables import check_output

    if args.output:
        check_output(args.output)
    spec = _load_spec(args)
    keys = _open_input(args, spec)
    store = spec.build()
    counts, by_source, causes = Counter(), Counter(), Counter()

    def infos(stream):
        for info in store.stat_many(stream, max_workers=args.max_workers or spec.max_workers or 64,
                                    progress=args.progress, total=keys.total):
            counts[info.status] += 1
            if info.ok:
                by_source[info.source] += info.size
            elif info.status == "failed":
                causes[failure_cause(info.error or "", info.key)] += 1
            yield info

    if args.output:
        added = [pa.field("status", pa.string(), nullable=False), pa.field("size", pa.int64()),
                 pa.field("source", pa.string())]
        write_rows(keys, args.output, added,
                   lambda stream: ((_shown_key(store, i), i.status, i.size, i.source) for i in infos(stream)))
    else:
        for info in infos(iter(keys)):
            print(f"{_shown_key(store, info)}\t{info.status}\t{'' if info.size is None else info.size}\t"
                  f"{info.source or ''}", flush=False)
        sys.stdout.flush()
    total = sum(counts.values())
    print(f"bitstore stat{' -> ' + args.output if args.output else ''}: {plural(total, 'key')}: "
          + ", ".join(f"{s} {counts[s]:,}" for s in ("found", "missing", "invalid", "failed")), file=sys.stderr)
    for source, size in by_source.most_common():
        print(f"  {source}: {human_size(size)}", file=sys.stderr)
    _print_causes(causes)
    return EXIT_FAILED if counts["failed"] else EXIT_OK


def _warm(args: argparse.Namespace) -> int:
    from ..core.upkeep import WARM_STATUSES, warm_many

    spec = _load_spec(args)
    if spec.cache_index is None:
        raise UsageError('warm fills the cache tier: the spec has none (give a tier role = "cache")')
    keys = _open_input(args, spec)
    store = spec.build()
    counts, causes = Counter(), Counter()
    for outcome in warm_many(store, keys, max_workers=args.max_workers or spec.max_workers or 64,
                             progress=args.progress, total=keys.total):
        counts[outcome.status] += 1
        if outcome.status == "failed":
            causes[_cause(outcome)] += 1
    print(f"bitstore warm -> {store.cache.name}: {plural(sum(counts.values()), 'key')}: "
          + ", ".join(f"{s} {counts[s]:,}" for s in WARM_STATUSES), file=sys.stderr)
    usage = store.cache.usage() if callable(getattr(store.cache, "usage", None)) else None
    if usage is not None:  # a bounded cache (max_bytes)
        from ..ground.sizes import human_bytes

        print(f"  {store.cache.name}: {human_bytes(usage.bytes_used)} of {human_bytes(usage.max_bytes)} used, "
              f"{usage.evictions:,} evicted", file=sys.stderr)
    _print_causes(causes)
    return EXIT_FAILED if counts["failed"] else EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from ..core.upkeep import VERIFY_STATUSES, verify_many

    spec = _load_spec(args)
    if spec.keys == "uri":
        raise UsageError('verify checks blobs against their hash: it needs a spec with keys = "sha1" or "sha256"')
    index = _tier_index(spec, args.tier) if args.tier is not None else spec.write_index
    if index is None:
        raise UsageError("the spec has no tier to verify but api sources: name one with --tier")
    tier = spec.build_tier(index)
    keys = _open_input(args, spec)
    composite = spec.build()
    canonical = (composite.canonical_key(k) if composite.accepts(k) else k for k in keys)
    counts, causes = Counter(), Counter()
    for outcome in verify_many(tier, canonical, max_workers=args.max_workers, progress=args.progress,
                               total=keys.total):
        counts[outcome.status] += 1
        if outcome.status == "corrupt":
            print(f"{outcome.key}  corrupt in {tier.name}: {outcome.error}", flush=True)
        elif outcome.status == "failed":
            causes[_cause(outcome)] += 1
    print(f"bitstore verify {tier.name}: {plural(sum(counts.values()), 'key')}: "
          + ", ".join(f"{s} {counts[s]:,}" for s in VERIFY_STATUSES), file=sys.stderr)
    _print_causes(causes)
    if counts["corrupt"]:
        return EXIT_MISSING
    return EXIT_FAILED if counts["failed"] else EXIT_OK


def _ls(args: argparse.Namespace) -> int:
    spec = _load_spec(args)
    store = spec.build_tier(_tier_index(spec, args.tier)) if args.tier is not None else spec.build()
    out = sys.stdout
    for key in _listing(store, args.start_after):
        out.write(f"{key}\n")
    out.flush()
    return EXIT_OK


def _listing(store, start_after):
    try:
        return store.iter_keys(start_after=start_after)
    except NotImplementedError as exc:
        raise UsageError(str(exc)) from None


def _scrub(args: argparse.Namespace) -> int:
    import json

    from ..core.scrub import SCRUB_STATUSES, scrub
    from ..ground.errors import BitstoreError

    spec = _load_spec(args)
    index = _tier_index(spec, args.tier) if args.tier is not None else spec.write_index
    if index is None:
        raise UsageError("the spec has no tier to scrub but api sources: name one with --tier")
    tier = spec.build_tier(index)
    counts, causes, last, broken = Counter(), Counter(), None, None
    _listing(tier, args.start_after)  # a tier that cannot list: a usage error, before anything is read
    try:
        for result in scrub(tier, start_after=args.start_after, max_workers=args.max_workers,
                            delete_corrupt=args.delete_corrupt, progress=args.progress):
            counts[result.status] += 1
            last = result.key
            if result.status == "ok":
                continue
            if args.json:
                print(json.dumps({"key": result.key, "status": result.status, "size": result.size,
                                  "error": result.error, "tier": tier.name}), flush=True)
            else:
                print(f"{result.key}  {result.status} in {tier.name}: {result.error}", flush=True)
            if result.status == "failed":
                causes[_cause(result)] += 1
    except (BitstoreError, OSError) as exc:  # the listing failed midway: what was checked is still reported
        broken = _one_line(exc)
    if args.json:
        print(json.dumps({"tier": tier.name, "checked": sum(counts.values()),
                          **{s: counts[s] for s in SCRUB_STATUSES}, "last_key": last, "error": broken}))
    print(f"bitstore scrub {tier.name}: {plural(sum(counts.values()), 'blob')}: "
          + ", ".join(f"{s} {counts[s]:,}" for s in SCRUB_STATUSES), file=sys.stderr)
    _print_causes(causes)
    if last is not None:
        print(f"  last key checked: {last} (resume with --start-after {last})", file=sys.stderr)
    if broken is not None:
        _error(f"the listing failed: {broken}")
    if counts["corrupt"]:
        return EXIT_MISSING
    return EXIT_FAILED if counts["failed"] or broken is not None else EXIT_OK


def _replicate(args: argparse.Namespace) -> int:
    from ..core.replicate import replicate
    from ..core.store import DEFAULT_MAX_BYTES_IN_FLIGHT

    spec = _load_spec(args)
    src, dst = _store_arg(spec, args.source, "--from"), _store_arg(spec, args.target, "--to")
    try:
        report = replicate(src, dst, start_after=args.start_after, max_workers=args.max_workers,
                           max_bytes_in_flight=args.max_bytes_in_flight or DEFAULT_MAX_BYTES_IN_FLIGHT,
                           progress=args.progress)
    except NotImplementedError as exc:
        raise UsageError(str(exc)) from None
    for key, status, error in report.problems:
        print(f"{key}  {status}: {error}", flush=False)
    sys.stdout.flush()
    print(f"bitstore replicate {src.name} -> {dst.name}: copied {report.copied:,} ({human_size(report.bytes)}), "
          f"skipped {report.skipped:,}, corrupt {report.corrupt:,}, failed {report.failed:,}", file=sys.stderr)
    if report.last_key is not None:
        print(f"  last key: {report.last_key}", file=sys.stderr)
    if report.corrupt:
        return EXIT_MISSING
    return EXIT_FAILED if report.failed else EXIT_OK


def _store_arg(spec, value: str, option: str):
    """A tier of the spec (its name or number), else a store URL (``bitstore.from_url``) or a local folder."""
    try:
        return spec.build_tier(_tier_index(spec, value))
    except UsageError:
        pass
    from ..ground.errors import SpecError
    from ..spec.url_stores import from_url

    if "://" not in value:  # a local folder, also when it does not exist yet
        value = os.path.join(os.path.abspath(value), "")
    try:
        return from_url(value)
    except SpecError as exc:
        raise UsageError(f"{option} {value!r} is neither a tier of the spec nor a store URL ({exc})") from None


def _open_input(args: argparse.Namespace, spec):
    """The keys of ``--input``, counted first when it is a text or CSV file (for the progress bar's total). The
    key column (``--column``, and the one column of text input) is named after the spec's keys by default:
    ``sha1``, or ``sha256`` for SHA-256 keys."""
    from ..core.keys import key_column
    from ..engine.batch import want_progress
    from ..integrations.inputs import open_keys

    keys = open_keys(args.input, args.column, text_column=key_column(spec))
    if keys.total is None and args.input != "-" and want_progress(args.progress):
        keys.count()
    return keys


def _shown_key(store, info) -> str | None:
    from ..ground.results import FetchResult
    from ..integrations.fetchjob import output_row

    return output_row(store, FetchResult(info.key, None, info.status))[0]


def _cause(outcome) -> str:
    from ..integrations.fetchjob import failure_cause

    return failure_cause(outcome.error or "", outcome.key)


def _print_causes(causes: Counter) -> None:
    for cause, count in causes.most_common(5):
        print(f"  failed: {plural(count, 'key')}: {cause}", file=sys.stderr)
    rest = sum(causes.values()) - sum(c for _, c in causes.most_common(5))
    if rest:
        print(f"  ... and {plural(rest, 'more failure')} (other causes)", file=sys.stderr)


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(progress=args.progress)


# --- plumbing ---------------------------------------------------------------------------------------
def _error(message: str) -> None:
    print(f"bitstore: error: {message}", file=sys.stderr, flush=True)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _check_writable(output: str) -> None:
    folder = os.path.dirname(os.path.abspath(output))
    if os.path.isdir(output):
        raise UsageError(f"cannot write {output}: it is a folder")
    if not os.path.isdir(folder):
        raise UsageError(f"cannot write {output}: no such folder {folder}")


def _one_line(exc: BaseException) -> str:
    from ..integrations.fetchjob import failure_cause

    return failure_cause(str(exc), mask_keys=False)


def _setup_logging(verbose: int) -> None:
    """Our loggers only: third-party SDK debug logs (which may echo request headers) stay off."""
    logger = logging.getLogger("bitstore")
    for old in [h for h in logger.handlers if getattr(h, "_bitstore_cli", False)]:
        logger.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("bitstore: %(levelname)s: %(name)s: %(message)s"))
    handler._bitstore_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO if verbose == 1 else logging.WARNING)
    logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    from ..ground.errors import BitstoreError, SpecError
    from ..integrations.inputs import InputError
    from ..integrations.tables import OutputError

    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    args.spec, args.verbose = getattr(args, "spec", None), getattr(args, "verbose", 0)
    args.url, args.cache_url = getattr(args, "url", None) or [], getattr(args, "cache_url", None)
    args.keys = getattr(args, "keys", None)
    _setup_logging(args.verbose)
    previous = _handle_sigterm()
    try:
        return args.run(args)
    except (UsageError, SpecError, InputError, OutputError) as exc:
        _error(str(exc))
        return EXIT_USAGE
    except ImportError as exc:
        _error(str(exc))
        return EXIT_FAILED
    except BitstoreError as exc:
        _error(_one_line(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except Terminated:
        _error("terminated")
        return 143
    except Exception as exc:  # noqa: BLE001 - one line, not a traceback, for anything else
        if args.verbose >= 2:
            traceback.print_exc()
        _error(f"{type(exc).__name__}: {str(exc)[:500]}")
        return EXIT_FAILED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def entry() -> None:
    """The console script: ``main``, then exit. Interrupted or terminated while a fetch thread is still stuck in a
    store's call (an API that never answers), the process exits at once with 130/143 rather than waiting at
    interpreter exit for that thread: the command has already unwound and removed its temp files."""
    code = main()
    if code in (130, 143) and any(t.is_alive() and not t.daemon for t in threading.enumerate()
                                  if t is not threading.main_thread()):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
