"""The contenders that fetch SHA1-addressed blobs over the S3 and GCS protocols from ``benchmarks.server``, and
over the Azure Blob protocol from Azurite (``benchmarks.azurite``).

Every contender reads the same keys from the same server. Clients that find their endpoint in the
environment (the original library) get it from ``AWS_ENDPOINT_URL`` / ``STORAGE_EMULATOR_HOST``, which
``point_sdks_at`` sets; the others are given it explicitly.
"""
from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .measure import Contender, Fetcher, Unavailable

__all__ = ["Target", "point_sdks_at", "remote_contenders", "bitstore_store", "obstore_async", "obstore_store",
           "obstore_fetcher", "OBSTORE_BUFFER", "OBSTORE_BYTES"]

OBSTORE_IN_FLIGHT = 64
OBSTORE_BUFFER = f"obstore async, {OBSTORE_IN_FLIGHT} in flight"
OBSTORE_BYTES = f"obstore async, {OBSTORE_IN_FLIGHT} in flight, copied to bytes"
EPIC_WORKERS = 16
SEQUENTIAL_MAX_N = 300
#: The slow threaded contenders run at a steady rate: this many keys measure it, and keep the run short.
SLOW_MAX_N = 1000


@dataclass(frozen=True)
class Target:
    protocol: str  # "s3" | "gcs" | "azure"
    endpoint: str
    bucket: str
    prefix: str  # object name prefix inside the bucket; the object is prefix + sha1
    account_name: str | None = None  # azure: the account and key (Azurite's well-known development account)
    account_key: str | None = None

    @property
    def uri_prefix(self) -> str:
        scheme = {"s3": "s3", "gcs": "gs", "azure": "az"}[self.protocol]
        return f"{scheme}://{self.bucket}/{self.prefix}"


def point_sdks_at(endpoint: str) -> None:
    """Send every SDK in this process to the local server, with dummy credentials and no metadata lookups."""
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true", STORAGE_EMULATOR_HOST=endpoint,
    )
    for name in ("apache_beam", "google", "botocore", "epic", "bitstore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)  # "pool is full" with 16+ threads


def _need(module: str, why: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise Unavailable(f"{why}: {exc}") from None


# --- naive sequential SDK loops -------------------------------------------------------------------------
def _sdk_loop(t: Target) -> Fetcher:
    if t.protocol == "s3":
        boto3 = _need("boto3", "boto3 not installed")
        client = boto3.client("s3", endpoint_url=t.endpoint)

        def get(key: str) -> bytes:
            return client.get_object(Bucket=t.bucket, Key=t.prefix + key)["Body"].read()
    elif t.protocol == "azure":
        blob = _need("azure.storage.blob", "azure-storage-blob not installed")
        container = blob.BlobServiceClient(t.endpoint, credential={"account_name": t.account_name,
                                                                   "account_key": t.account_key}
                                           ).get_container_client(t.bucket)

        def get(key: str) -> bytes:
            return container.download_blob(t.prefix + key).readall()
    else:
        storage = _need("google.cloud.storage", "google-cloud-storage not installed")
        from google.auth.credentials import AnonymousCredentials

        client = storage.Client(project="bench", credentials=AnonymousCredentials(),
                                client_options={"api_endpoint": t.endpoint})
        bucket = client.bucket(t.bucket)

        def get(key: str) -> bytes:
            return bucket.blob(t.prefix + key).download_as_bytes()

    def fetch(keys: Sequence[str]) -> tuple[int, int]:
        sizes = [len(get(k)) for k in keys]
        return len(sizes), sum(sizes)

    return fetch


# --- the original library -------------------------------------------------------------------------------
def _epic(t: Target) -> Fetcher:
    if t.protocol == "azure":
        raise Unavailable("epic-bitstore has no Azure backend")
    epic = _need("epic.bitstore", "epic-bitstore not installed (pip install epic-bitstore==1.1.0)")
    from ultima import ultimap

    raw = epic.S3Raw() if t.protocol == "s3" else _epic_gs_raw(epic.GSRaw)()
    store = epic.Sha1Store(raw, t.uri_prefix)

    def fetch(keys: Sequence[str]) -> tuple[int, int]:
        sizes = [len(b) for b in ultimap(store.get, keys, backend="threading", n_workers=EPIC_WORKERS)]
        return len(sizes), sum(sizes)

    return fetch


def _epic_gs_raw(base: type) -> type:
    """The original GSRaw, with the 100-connection pool it mounts for https:// also mounted for http://,
    so that against the plain-http server it behaves as it does against real GCS."""

    class GSRaw(base):
        @staticmethod
        def _configure_connection_pool_size(client):
            from requests.adapters import HTTPAdapter

            base._configure_connection_pool_size(client)
            client._http.mount("http://", HTTPAdapter(pool_maxsize=100))

    return GSRaw


# --- obstore, async, 64 requests in flight ----------------------------------------------------------------
def obstore_async(in_flight: int, copy: bool = False):
    """obstore's async API with ``in_flight`` requests outstanding (64 as the issue's reference figure). Each
    blob comes as obstore's own buffer; with ``copy`` it is copied to ``bytes``, as ``get_many`` returns it."""
    return lambda t: _obstore_async(t, in_flight, copy)


def _obstore_async(t: Target, in_flight: int, copy: bool = False) -> Fetcher:
    return obstore_fetcher(obstore_store(t), t, in_flight, copy)


def obstore_store(t: Target):
    """obstore's ``S3Store`` / ``GCSStore`` / ``AzureStore`` pointed at the server."""
    _need("obstore", "obstore not installed")
    from obstore.store import AzureStore, GCSStore, S3Store

    options = {"allow_http": True}
    if t.protocol == "azure":
        store = AzureStore(t.bucket, account_name=t.account_name, account_key=t.account_key, endpoint=t.endpoint,
                           client_options=options)
    elif t.protocol == "s3":
        store = S3Store(t.bucket, endpoint=t.endpoint, region="us-east-1", access_key_id="bench",
                        secret_access_key="bench", client_options=options)
    else:
        store = GCSStore(t.bucket, base_url=t.endpoint, skip_signature=True, client_options=options)
    return store


def obstore_fetcher(store, t: Target, in_flight: int, copy: bool = False) -> Fetcher:
    """Fetch keys from obstore's ``store`` with ``in_flight`` coroutines under one ``asyncio.run``."""
    import obstore as obs

    async def run(keys: Sequence[str]) -> tuple[int, int]:
        pending = iter(keys)
        totals = [0, 0]

        async def worker() -> None:
            for key in pending:
                data = await (await obs.get_async(store, t.prefix + key)).bytes_async()
                if copy:
                    data = bytes(data)
                totals[0] += 1
                totals[1] += len(data)

        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return totals[0], totals[1]

    return lambda keys: asyncio.run(run(keys))


# --- bitstore -------------------------------------------------------------------------------------------
def bitstore_store(t: Target, transport: str = "auto"):
    """``Sha1Store`` over ``S3Raw``/``GSRaw``/``AZRaw`` pointed at the server with the given transport."""
    bitstore = _need("bitstore", "bitstore not importable")
    module = {"s3": "bitstore.backends.s3", "gcs": "bitstore.backends.gcs", "azure": "bitstore.backends.azure"}[
        t.protocol]
    backend = _need(module, f"{module} not written yet")
    try:
        if t.protocol == "azure":
            raw = backend.AZRaw(t.account_name, account_key=t.account_key, endpoint_url=t.endpoint,
                                transport=transport)
        elif t.protocol == "s3":
            raw = backend.S3Raw(endpoint_url=t.endpoint, transport=transport)
        else:
            raw = backend.GSRaw(endpoint=t.endpoint, transport=transport)
    except ImportError as exc:
        raise Unavailable(f"transport={transport!r}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise Unavailable(f"transport={transport!r} not supported: {exc}") from None
    return bitstore.Sha1Store(raw, t.uri_prefix)


def _count(results) -> tuple[int, int]:
    found = nbytes = 0
    for r in results:
        if r.data is not None:
            found += 1
            nbytes += len(r.data)
    return found, nbytes


def _get_many(transport: str, **options: Any):
    def build(t: Target) -> Fetcher:
        store = bitstore_store(t, transport)
        return lambda keys: _count(store.get_many(keys, progress=False, **options))

    return build


def _enrich_table(t: Target) -> Fetcher:
    arrow = _need("bitstore.arrow", "bitstore.arrow not written yet")
    import pyarrow as pa
    import pyarrow.compute as pc

    store = bitstore_store(t)

    def fetch(keys: Sequence[str]) -> tuple[int, int]:
        blobs = arrow.enrich_table(pa.table({"sha1": pa.array(keys, pa.string())}), store)["blob"]
        return len(blobs) - blobs.null_count, pc.sum(pc.binary_length(blobs)).as_py() or 0

    return fetch


def _fetch_blobs(t: Target) -> Fetcher:
    beam = _need("apache_beam", "apache-beam not installed")
    transforms = _need("beam_transforms", "beam_transforms not importable")
    if not hasattr(transforms, "FetchBlobs"):
        raise Unavailable("beam_transforms.FetchBlobs not written yet")
    from apache_beam.metrics.metric import MetricsFilter
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    store = bitstore_store(t)

    def fetch(keys: Sequence[str]) -> tuple[int, int]:
        pipeline = beam.Pipeline(runner=FnApiRunner())
        _ = pipeline | beam.Create(list(keys)) | transforms.FetchBlobs(store)
        result = pipeline.run()
        result.wait_until_finish()
        counters = result.metrics().query(MetricsFilter().with_namespace("bitstore"))["counters"]
        totals = {c.key.metric.name: c.committed if c.committed is not None else c.attempted for c in counters}
        return int(totals.get("found", 0)), int(totals.get("bytes", 0))

    return fetch


def remote_contenders() -> list[Contender]:
    """Every contender of the S3/GCS table. The reference is ``get_many`` with the default transport
    ("auto": the fast one where obstore is installed); ``[sdk]`` forces the pure boto3/google-cloud path."""
    return [
        Contender("SDK sequential loop", _sdk_loop, warmup=4, max_n=SEQUENTIAL_MAX_N),
        Contender(f"epic-bitstore 1.1.0, ultimap {EPIC_WORKERS} threads", _epic, warmup=EPIC_WORKERS,
                  max_n=SLOW_MAX_N),
        Contender(OBSTORE_BUFFER, obstore_async(OBSTORE_IN_FLIGHT)),
        Contender(OBSTORE_BYTES, obstore_async(OBSTORE_IN_FLIGHT, copy=True)),
        Contender("bitstore get_many", _get_many("auto"), reference=True),
        Contender("bitstore get_many [sdk]", _get_many("sdk"), max_n=SLOW_MAX_N),
        Contender("bitstore get_many(views=True)", _get_many("auto", views=True)),
        Contender("bitstore enrich_table", _enrich_table),
        Contender("beam FetchBlobs (FnApiRunner, start-up incl.)", _fetch_blobs, warmup=0),
    ]
