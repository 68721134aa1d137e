"""The ``bitstore`` console script: ``get``, ``put``, ``fetch`` and ``demo`` over a store spec.

Exit codes: 0 success, 1 blob missing (``get``), 2 invalid input or usage, 3 a fetch or write failed,
130 interrupted (Ctrl-C), 143 terminated (SIGTERM); both remove the temp files of writes under way.
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
from collections.abc import Sequence

from .spec import load_spec_or_default

__all__ = ["main", "EXIT_OK", "EXIT_MISSING", "EXIT_USAGE", "EXIT_FAILED"]

EXIT_OK, EXIT_MISSING, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3


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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    # Global options are accepted before or after the subcommand; SUPPRESS keeps a subcommand from
    # resetting a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--spec", metavar="PATH", default=argparse.SUPPRESS,
                        help="store spec (TOML); default: the local store under $BITSTORE_HOME (~/.bitstore)")
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="log more (-v info, -vv debug)")
    parser = argparse.ArgumentParser(prog="bitstore", parents=[common],
                                     description="Tiered, SHA1-addressed blob storage.")
    parser.add_argument("--version", action="version", version=f"bitstore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    get = sub.add_parser("get", parents=[common], help="write one blob to stdout or a file",
                         description="Exit 0 found, 1 missing, 2 invalid key, 3 failed.")
    get.add_argument("sha1", help="<sha1> or sha1://<sha1>")
    get.add_argument("-o", "--output", metavar="FILE", help="write the blob to FILE instead of stdout")
    get.set_defaults(run=_get)

    put = sub.add_parser("put", parents=[common], help="store files under their SHA1 and print the SHA1s",
                         description="Writes to the spec's cache tier, else its first writable tier.")
    put.add_argument("files", nargs="+", metavar="FILE")
    put.set_defaults(run=_put)

    fetch = sub.add_parser("fetch", parents=[common], help="fetch the keys of a file into a Parquet file",
                           description="Input format from the extension: .txt (one key a line), .csv (with a "
                                       "header), .parquet; '-' reads one key a line from stdin. Output columns: "
                                       "sha1, blob, status, source. Exit 3 when any key failed.")
    fetch.add_argument("--input", "-i", required=True, metavar="PATH")
    fetch.add_argument("--column", default="sha1", help="the key column of a .csv or .parquet input (default: sha1)")
    fetch.add_argument("--output", "-o", required=True, metavar="PATH.parquet")
    fetch.add_argument("--max-workers", type=_positive_int, metavar="N",
                       help="concurrent fetches (default: the spec's max_workers, else 64)")
    fetch.add_argument("--max-bytes-in-flight", type=_positive_int, metavar="BYTES",
                       help="bytes fetched and not yet written (default: the spec's, else 256 MiB)")
    fetch.add_argument("--batch-size", type=_positive_int, metavar="N", default=None,
                       help="rows per Parquet row group (default: 4096)")
    fetch.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="show a progress bar (default: only on a terminal)")
    fetch.set_defaults(run=_fetch)

    demo = sub.add_parser("demo", help="build a sample tiered store in a temporary folder and fetch from it twice")
    demo.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                      help="show a progress bar (default: only on a terminal)")
    demo.set_defaults(run=_demo)
    return parser


# --- commands ---------------------------------------------------------------------------------------
def _get(args: argparse.Namespace) -> int:
    store = load_spec_or_default(args.spec).build()
    if not store.accepts(args.sha1):
        hint = getattr(store, "URI_HINT", None)
        raise UsageError(f"not a valid key: {args.sha1[:100]!r}" + (f" (expected {hint})" if hint else ""))
    result = store.fetch(args.sha1)
    if result.status == "missing":
        _error(f"not found: {args.sha1}")
        return EXIT_MISSING
    if result.status != "found":
        _error(result.error or result.status)
        return EXIT_USAGE if result.status == "invalid" else EXIT_FAILED
    if args.output:
        try:
            with open(args.output, "wb") as f:
                f.write(result.data)
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror or type(exc).__name__}") from None
    else:
        _write_stdout(result.data)
    logging.getLogger("bitstore.cli").info("%s: %d bytes from %s", args.sha1, len(result.data), result.source)
    return EXIT_OK


def _put(args: argparse.Namespace) -> int:
    from .sha1 import sha1_hex

    spec = load_spec_or_default(args.spec)
    if spec.keys != "sha1":
        raise UsageError('put stores files under their SHA1: it needs a spec with keys = "sha1"')
    index = spec.write_index
    if index is None:
        raise UsageError("the spec has no writable tier (only api sources)")
    tier = spec.build_tier(index)
    status = EXIT_OK
    for path in args.files:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            _error(f"cannot read {path}: {exc.strerror or type(exc).__name__}")
            status = max(status, EXIT_USAGE)
            continue
        sha1 = sha1_hex(data)
        try:
            stored = tier.put(sha1, data)
        except Exception as exc:  # a backend's error, already free of secrets
            stored, reason = False, f"{type(exc).__name__}: {exc}"
        else:
            reason = "the tier refused it (see the warning above)"
        if stored is False:
            _error(f"cannot store {path} in {tier.name}: {reason}")
            status = EXIT_FAILED
            continue
        print(f"{sha1}  {path}", flush=True)
    return status


def _fetch(args: argparse.Namespace) -> int:
    from .fetchjob import DEFAULT_BATCH_ROWS, fetch_to_parquet
    from .inputs import open_keys
    from .store import DEFAULT_MAX_BYTES_IN_FLIGHT

    folder = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(folder):
        raise UsageError(f"cannot write {args.output}: no such folder {folder}")
    if os.path.isdir(args.output):
        raise UsageError(f"cannot write {args.output}: it is a folder")
    spec = load_spec_or_default(args.spec)
    keys = open_keys(args.input, args.column)
    store = spec.build()
    summary = fetch_to_parquet(
        store, keys, args.output,
        max_workers=args.max_workers or spec.max_workers or 64,
        batch_size=args.batch_size or DEFAULT_BATCH_ROWS,
        max_bytes_in_flight=args.max_bytes_in_flight or spec.max_bytes_in_flight or DEFAULT_MAX_BYTES_IN_FLIGHT,
        progress=args.progress,
        total=keys.total,
    )
    print(f"bitstore fetch -> {args.output}", file=sys.stderr)
    for line in summary.lines():
        print(line, file=sys.stderr)
    return EXIT_FAILED if summary.failed else EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(progress=args.progress)


# --- plumbing ---------------------------------------------------------------------------------------
def _error(message: str) -> None:
    print(f"bitstore: error: {message}", file=sys.stderr, flush=True)


def _write_stdout(data: bytes) -> None:
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError:  # e.g. `bitstore get ... | head -c 10`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


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
    from .errors import BitstoreError, SpecError
    from .inputs import InputError

    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    args.spec, args.verbose = getattr(args, "spec", None), getattr(args, "verbose", 0)
    _setup_logging(args.verbose)
    previous = _handle_sigterm()
    try:
        return args.run(args)
    except (UsageError, SpecError, InputError) as exc:
        _error(str(exc))
        return EXIT_USAGE
    except ImportError as exc:
        _error(str(exc))
        return EXIT_FAILED
    except BitstoreError as exc:
        _error(str(exc))
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


if __name__ == "__main__":
    sys.exit(main())
