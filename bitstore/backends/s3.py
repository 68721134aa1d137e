"""``S3Raw``: ``s3://bucket/key`` on AWS S3 or any S3-compatible endpoint (MinIO, R2, moto), through boto3.

One client per process, built on first use and shared by threads; its connection pool is sized for
``get_many``. botocore's own retries are off (one attempt per call): ``RetryPolicy`` retries the whole GET,
body included, and errors are mapped once, in ``_errors``. With obstore installed (``bitstore[fast]``) GETs,
listings and PUTs of bytes go through it, with the same credentials, endpoint, retries and error mapping
(``put_stream``, ``head``, ``open`` and ``delete`` stay on boto3).
"""
from __future__ import annotations

import functools
import importlib.util
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from ..ground.errors import StoreNotAvailable
from ..ground.fields import COMMON, Build, Field, TierType, env_name, keyname
from ..ground.retry import Attempt, RetryPolicy
from . import _redact
from ._awsenv import EnvResolved
from ._awsenv import resolve as resolve_from_env
from ._body import read_body
from ._client import EnvVar, endpoint_problem, require, resolve_env
from ._cloud import ANONYMOUS, CLOUD, DEFAULT_POOL, DEFAULT_TIMEOUT, CloudRaw, cloud_options
from ._errors import HTTPStatusError, check_size, config_error, s3_error

__all__ = ["S3Raw", "ANONYMOUS"]


class _Conn(NamedTuple):
    """This process's client and the boto3 session it came from (None when anonymous)."""

    client: Any
    session: Any


class S3Raw(CloudRaw):
    """Objects in S3 buckets.

    ``credentials``: None (boto3's default chain: environment, profiles, instance roles...), a dict of
    ``boto3.Session`` keyword arguments, a list of those tried in order (the first that resolves and passes
    ``_test_access`` is used), or ``"anonymous"`` (unsigned requests, for public buckets).
    ``retry``: a ``RetryPolicy`` (or its fields as a dict, or a total attempt count).
    ``max_blob_bytes``: refuse larger objects (``BlobTooLarge``) before reading them.
    ``transport``: ``"auto"`` (obstore when installed), ``"fast"`` (obstore) or ``"sdk"`` (boto3 only).
    ``endpoint_url``: an S3-compatible endpoint; else boto3 resolves it (``AWS_ENDPOINT_URL_S3``,
    ``AWS_ENDPOINT_URL``, the profile's ``endpoint_url``, AWS itself), for both transports alike.
    ``timeout``: ``(connect, read_idle)`` seconds; the overall deadline per blob is ``retry.deadline``.
    """

    URI_HINT = "s3://bucket/key"
    KIND = "s3"
    _URI = re.compile(r"s3://([^/]+)/(.+)", re.DOTALL)
    _sdk_error = staticmethod(s3_error)

    def __init__(self, credentials: None | str | Mapping[str, Any] | Sequence[Mapping[str, Any] | str | None] = None,
                 *, endpoint_url: str | None = None, retry: RetryPolicy | dict | int | None = None,
                 max_blob_bytes: int | None = None, max_pool_connections: int = DEFAULT_POOL,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT, name: str | None = None, transport: str = "auto"):
        super().__init__(retry=retry, max_blob_bytes=max_blob_bytes, max_pool_connections=max_pool_connections,
                         timeout=timeout, name=name, transport=transport)
        self.credentials = _credential_options(credentials)
        self.endpoint_url = endpoint_url

    # --- io: one attempt each (CloudRaw retries them and maps their errors) -------------------------
    def _get_once(self, bucket: str, key: str, uri: str, attempt: Attempt) -> bytes:
        response = self._conn.get().client.get_object(Bucket=bucket, Key=key)
        body = response["Body"]
        length = response.get("ContentLength")
        try:
            check_size(self, uri, length, self.max_blob_bytes)
            return read_body(body._raw_stream, length, attempt, self, uri, self.max_blob_bytes)
        finally:
            body.close()

    def _sdk_has(self, bucket: str, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._conn.get().client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise
        return True

    def _bucket_exists(self, bucket: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._conn.get().client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise
        return True

    @property
    def endpoint_label(self) -> str | None:
        if self.endpoint_url:
            return _without_credentials(self.endpoint_url)
        try:
            env = self._env_resolved()
            resolved = env.endpoint if env is not None else self._conn.get().client.meta.endpoint_url
        except Exception:
            return None
        if resolved is None:
            return None
        return None if _is_aws(resolved) else _without_credentials(resolved)

    def _put_once(self, bucket: str, key: str, body: bytes) -> None:
        self._conn.get().client.put_object(Bucket=bucket, Key=key, Body=body)

    def _put_stream_once(self, bucket: str, key: str, stream: Any) -> None:
        from boto3.s3.transfer import TransferConfig

        self._conn.get().client.upload_fileobj(stream, bucket, key, Config=TransferConfig(use_threads=False))

    def _delete_once(self, bucket: str, key: str) -> None:
        self._conn.get().client.delete_object(Bucket=bucket, Key=key)  # S3 answers 204 for a key not there

    def _list_page_once(self, bucket: str, folder: str, after: str | None, token: str | None,
                        size: int) -> tuple[list[tuple[str, int | None]], str | None]:
        request: dict[str, Any] = {"Bucket": bucket, "Prefix": folder, "Delimiter": "/", "MaxKeys": size}
        if token is not None:
            request["ContinuationToken"] = token
        elif after is not None:
            request["StartAfter"] = after
        page = self._conn.get().client.list_objects_v2(**request)
        items = [(o["Key"], o.get("Size")) for o in page.get("Contents", ())]
        if not page.get("IsTruncated"):
            return items, None
        token = page.get("NextContinuationToken")
        if not token:
            raise HTTPStatusError(200, None, "a truncated listing page without a continuation token")
        return items, token

    # --- clients -----------------------------------------------------------------------------------
    def _config(self, **extra: Any) -> Any:
        from botocore.config import Config

        return Config(retries={"total_max_attempts": 1, "mode": "standard"},
                      max_pool_connections=self.max_pool_connections,
                      connect_timeout=self.timeout[0], read_timeout=self.timeout[1], **extra)

    def _connect(self) -> _Conn:
        boto3 = require("boto3", "aws")
        _redact.install()
        tried = []
        for option in self.credentials:
            if option == ANONYMOUS:
                from botocore import UNSIGNED

                return _Conn(self._client(_session(boto3), signature_version=UNSIGNED), None)
            try:
                session = _session(boto3, **resolve_env(option or {}))
                if session.get_credentials() is None:
                    tried.append("no credentials found")
                    continue
            except Exception as exc:  # a bad profile, a malformed config file...
                tried.append(type(exc).__name__)
                continue
            client = self._client(session)
            if self._test_access(client):
                return _Conn(client, session)
            tried.append("access test failed")
        reasons = ", ".join(f"option {i + 1}: {why}" for i, why in enumerate(tried)) or "an empty list"
        raise StoreNotAvailable(self, f"no usable credentials ({reasons})")

    def _client(self, session: Any, **config: Any) -> Any:
        """An S3 client of ``session`` for the endpoint boto3 resolves; an endpoint no transport can use is a
        configuration error, raised at once."""
        try:
            client = session.client("s3", endpoint_url=self.endpoint_url, config=self._config(**config))
        except ValueError as exc:  # botocore: an endpoint it cannot parse
            where = repr(self.endpoint_url) if self.endpoint_url else "set in the environment or profile"
            raise config_error(self, f"the endpoint {where} is not a valid URL ({exc})") from None
        problem = endpoint_problem(client.meta.endpoint_url)
        if problem:
            raise config_error(self, problem)
        return client

    def _test_access(self, client: Any) -> bool:
        """Whether ``client``'s credentials are accepted. Override for a better check; the default lists
        buckets and fails only when the credentials are missing or rejected (a network error is left for the
        data path to report and retry)."""
        try:
            client.list_buckets()
        except Exception as exc:
            mapped = s3_error(exc, self, "s3://")
            return not isinstance(mapped, StoreNotAvailable)
        return True

    def _fast_conn(self) -> _Conn | EnvResolved:
        """The environment's credentials, region and endpoint when boto3 would read nothing else (boto3 is then
        not imported for the fast transport: a short command's start), else this process's boto3 client."""
        resolved = self._env_resolved()
        return resolved if resolved is not None else self._conn.get()

    def _env_resolved(self) -> EnvResolved | None:
        """``_awsenv.resolve`` for a store of one credentials option and the default access test (a list of
        options, or an access test of the user's, is boto3's to settle), with boto3 installed (its absence is
        reported on first use, as ever)."""
        if len(self.credentials) != 1 or getattr(self._test_access, "__func__", None) is not S3Raw._test_access:
            return None
        if type(self)._connect is not S3Raw._connect or importlib.util.find_spec("boto3") is None:
            return None
        return resolve_from_env(self.credentials[0], self.endpoint_url)

    def _build_fast(self, conn: _Conn | EnvResolved) -> Any:
        from ._fast import S3Fast

        if isinstance(conn, EnvResolved):
            credentials, region, resolved = conn.credentials, conn.region, conn.endpoint
        else:  # what boto3 made of the argument, environment and profile
            credentials, region, resolved = conn.session, conn.client.meta.region_name, conn.client.meta.endpoint_url
        return S3Fast(credentials, region=region, endpoint_url=None if _is_aws(resolved) else resolved,
                      max_blob_bytes=self.max_blob_bytes, timeout=self.timeout, deadline=self.retry.deadline)

    # --- inspect and stream: one attempt each, SDK path (CloudRaw.head/open retry them and map their errors) --
    def _head_once(self, bucket: str, key: str, uri: str, attempt: Attempt) -> int:
        return int(self._conn.get().client.head_object(Bucket=bucket, Key=key)["ContentLength"])

    def _range_once(self, bucket: str, key: str, start: int, stop: int, attempt: Attempt) -> bytes:
        response = self._conn.get().client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{stop - 1}")
        body = response["Body"]
        try:
            return read_body(body._raw_stream, stop - start, attempt, self, f"s3://{bucket}/{key}", None)
        finally:
            body.close()


_loaders: dict[Any, Any] = {}  # botocore data path -> its loader, shared by this process's sessions
_loaders_lock = threading.Lock()


def _session(boto3: Any, **kwargs: Any) -> Any:
    """A ``boto3.Session(**kwargs)`` whose botocore data loader (the parsed JSON service models: most of a new
    client's cost) is the one every session of this process with the same data path uses, so a second store's
    client costs about a fifth of the first's. The loader holds no credentials or configuration."""
    session = boto3.Session(**kwargs)
    core = session._session
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_timestamp_parser())
    path = core.get_config_variable("data_path")
    key = tuple(path) if isinstance(path, list) else path
    with _loaders_lock:
        shared = _loaders.setdefault(key, session._loader)
    if shared is not session._loader:
        core.register_component("data_loader", shared)
        session._loader = shared
    return session


_ISO_UTC = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?Z")


@functools.cache
def _timestamp_parser() -> Callable[[Any], Any]:
    """botocore's timestamp parser, with S3's own form (``2025-01-01T00:00:00.000Z``, on every object of a listing)
    read here: an aware ``datetime`` of the same instant as botocore's dateutil parse gives (in UTC), at a fraction
    of its cost (it took most of an SDK listing's time). Any other form goes to botocore's parser."""
    from datetime import datetime

    from botocore.utils import parse_timestamp
    from dateutil.tz import tzutc

    utc, match_iso = tzutc(), _ISO_UTC.fullmatch

    def parse(value: Any) -> Any:
        match = match_iso(value) if isinstance(value, str) else None
        if match is not None:
            year, month, day, hour, minute, second, fraction = match.groups()
            try:
                return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                                int(fraction.ljust(6, "0")) if fraction else 0, tzinfo=utc)
            except ValueError:  # a leap second, a day that does not exist: botocore says what it makes of it
                pass
        return parse_timestamp(value)

    return parse


def _is_aws(endpoint: str | None) -> bool:
    """Whether ``endpoint`` is AWS's own S3 (the fast transport then addresses buckets itself, by region)."""
    host = urlsplit(endpoint or "").hostname or ""
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn")) or host == "amazonaws.com"


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path.rstrip('/')}"


def _credential_options(credentials: Any) -> list:
    """The credentials forms as a list of options: None, session-kwargs dicts, or ``"anonymous"``."""
    options = list(credentials) if isinstance(credentials, (list, tuple)) else [credentials]
    # An empty list builds, as in the original, and answers StoreNotAvailable on use ("no usable credentials").
    for option in options:
        if option is not None and option != ANONYMOUS and not isinstance(option, Mapping):
            raise TypeError("credentials must be None, 'anonymous', a dict of boto3.Session arguments, or a list "
                            f"of those; got {type(option).__name__}")
    return [dict(o) if isinstance(o, Mapping) else o for o in options]



# --- the s3 tier of a store spec (``bitstore.spec`` validates and builds through this declaration) ---------
_SESSION_KEYS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token", "region_name", "profile_name")
_SESSION_ENV = ("must be a table mapping boto3 Session arguments to environment variable names, e.g. "
                "{ aws_access_key_id = \"MY_KEY_ID_VAR\", aws_secret_access_key = \"MY_SECRET_VAR\" }")


def _session_env(env: Mapping[str, Any], key: str, fail: Any) -> dict:
    if not env:
        fail(_SESSION_ENV, key)
    for arg, var in env.items():
        if arg not in _SESSION_KEYS:
            fail(f"not a boto3 Session argument (one of: {', '.join(_SESSION_KEYS)})", f"{key}.{keyname(arg)}")
        env_name(var, f"{key}.{arg}", fail)
    return dict(env)


def _build_tier(tier: dict, build: Build) -> S3Raw:
    if tier.get("anonymous"):
        credentials: Any = ANONYMOUS
    else:
        credentials = {}
        for arg, var in tier.get("credentials_env", {}).items():
            build.env(var, f"{build.where}.credentials_env.{arg}")  # set now, or a clear SpecError
            credentials[arg] = EnvVar(var)  # read again by each process's client, never stored as a value
        if "profile" in tier:
            credentials["profile_name"] = tier["profile"]
        if "region" in tier:
            credentials["region_name"] = tier["region"]
        credentials = credentials or None
    return S3Raw(credentials, endpoint_url=tier.get("endpoint_url"), **cloud_options(tier), **build.raw_name(tier))


TIER = TierType("s3", (
    Field("prefix", str, "`s3://bucket/folder/` (hash keys)", "s3://bucket/blobs/"),
    *COMMON,
    *CLOUD,
    Field("endpoint_url", str, "any S3-compatible endpoint (MinIO, R2, ...)", "http://127.0.0.1:9000"),
    Field("profile", str, "a boto3 profile", "prod", reference="profile"),
    Field("region", str, "the bucket's region", "eu-west-1"),
    Field("credentials_env", Mapping, "boto3 Session arguments from environment variables, "
          "`{ aws_access_key_id = \"VAR\", ... }`", {"aws_access_key_id": "KEY_ID_VAR"}, _session_env,
          reference="env", wrong_kind=_SESSION_ENV),
), _build_tier, retry=True)
