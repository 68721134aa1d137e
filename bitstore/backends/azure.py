"""``AZRaw``: ``az://container/key`` (also ``abfs://``, ``azure://``) on Azure Blob Storage or Azurite.

Credentials are resolved once per process, in this order: the arguments (``connection_string``, ``account_key``,
``sas_token``, ``credential``; one of them at most), then ``AZURE_STORAGE_CONNECTION_STRING``, then
``AZURE_STORAGE_ACCOUNT_KEY`` (with ``AZURE_STORAGE_ACCOUNT_NAME``), then azure-identity's
``DefaultAzureCredential``. ``anonymous=True`` sends unsigned requests (a public container). Both transports use
the credential so resolved, for the same account URL: the SDK (azure-storage-blob, its own retries off, its GETs
read by us as they arrive, within the blob's deadline) and the fast transport (obstore's ``AzureStore``).

A secret the store finds itself (in the environment) is read in each process and never kept on the store; one
passed as an argument travels with the store to its workers, and is never shown (repr, messages, logs).
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

from ..ground.errors import SpecError, StoreNotAvailable
from ..ground.fields import COMMON, Build, Field, TierType, env_name, keyname
from ..ground.retry import Attempt, RetryPolicy
from . import _redact
from ._body import read_body, read_up_to
from ._client import EnvVar, endpoint_problem, require
from ._cloud import CLOUD, DEFAULT_POOL, DEFAULT_TIMEOUT, CloudRaw, cloud_options
from ._errors import HTTPStatusError, azure_error, check_size, config_error, retry_after_of

__all__ = ["AZRaw"]

#: Azurite's well-known development account (``UseDevelopmentStorage=true``); public, documented by Microsoft.
_DEV_ACCOUNT = "devstoreaccount1"
_DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_DEV_ENDPOINT = "http://127.0.0.1:10000/devstoreaccount1"
_AZURE_HOSTS = (".blob.core.windows.net", ".blob.core.chinacloudapi.cn", ".blob.core.usgovcloudapi.net",
                ".dfs.core.windows.net")
_MESSAGE = re.compile(rb"<Message>([^<]{0,300})</Message>")


class _Secret:
    """A credential passed as an argument: pickled with the store (its workers need it), never shown."""

    __slots__ = ("value",)

    def __init__(self, value: str | EnvVar):
        self.value = value

    def get(self) -> str:
        return self.value.value() if isinstance(self.value, EnvVar) else self.value

    def __repr__(self) -> str:
        return repr(self.value) if isinstance(self.value, EnvVar) else "<secret>"

    def __reduce__(self):
        return _Secret, (self.value,)


class _Auth:
    """This process's resolved account URL, account name and credential (``kind``: key | sas | token | anonymous)."""

    __slots__ = ("account_url", "account_name", "kind", "secret", "source")

    def __init__(self, account_url: str, account_name: str | None, kind: str, secret: Any, source: str):
        self.account_url, self.account_name, self.kind, self.secret, self.source = (
            account_url, account_name, kind, secret, source)

    def __repr__(self) -> str:
        return f"_Auth({self.account_url!r}, {self.account_name!r}, {self.kind}, from {self.source})"

    def __reduce__(self):
        raise TypeError("resolved Azure credentials are per process and never pickled")


class _Conn(NamedTuple):
    """This process's SDK client and the credential it was built with."""

    client: Any
    auth: _Auth


class AZRaw(CloudRaw):
    """Blobs in Azure Blob Storage containers.

    ``account_name``: the storage account (else ``AZURE_STORAGE_ACCOUNT_NAME``, the connection string, or the
    account in ``endpoint_url``). Credentials, one at most: ``account_key``, ``sas_token``, ``connection_string``,
    or ``credential`` (an azure-identity credential object); none: the environment, then ``DefaultAzureCredential``.
    ``anonymous=True``: unsigned requests (a public container). ``endpoint_url``: the account URL of Azurite
    (``http://127.0.0.1:10000/devstoreaccount1``) or another endpoint; else ``https://<account>.blob.core.windows.net``.
    ``retry``, ``max_blob_bytes``, ``transport``, ``timeout``: as for ``S3Raw``.
    """

    URI_HINT = "az://container/key"
    KIND = "az"
    BUCKET_WORD = "container"
    _URI = re.compile(r"(?:az|abfs|azure)://([^/@]+)/(.+)", re.DOTALL)
    _sdk_error = staticmethod(azure_error)

    def __init__(self, account_name: str | EnvVar | None = None, *, account_key: str | EnvVar | None = None,
                 sas_token: str | EnvVar | None = None, connection_string: str | EnvVar | None = None,
                 credential: Any = None, anonymous: bool = False, endpoint_url: str | None = None,
                 retry: RetryPolicy | dict | int | None = None, max_blob_bytes: int | None = None,
                 max_pool_connections: int = DEFAULT_POOL, timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 name: str | None = None, transport: str = "auto"):
        super().__init__(retry=retry, max_blob_bytes=max_blob_bytes, max_pool_connections=max_pool_connections,
                         timeout=timeout, name=name, transport=transport)
        given = [n for n, v in (("account_key", account_key), ("sas_token", sas_token),
                                ("connection_string", connection_string), ("credential", credential)) if v is not None]
        if anonymous:
            given.insert(0, "anonymous")
        if len(given) > 1:
            raise ValueError(f"AZRaw takes one credential at most, got {' and '.join(given)}")
        for arg, value in (("account_name", account_name), ("account_key", account_key), ("sas_token", sas_token),
                           ("connection_string", connection_string), ("endpoint_url", endpoint_url)):
            if value is not None and not isinstance(value, (str, EnvVar)):
                raise TypeError(f"AZRaw {arg} must be a string, not {type(value).__name__}")
        self.account_name = account_name
        self.account_key = None if account_key is None else _Secret(account_key)
        self.sas_token = None if sas_token is None else _Secret(sas_token)
        self.connection_string = None if connection_string is None else _Secret(connection_string)
        self.credential = credential
        self.is_anonymous = bool(anonymous)
        self.endpoint_url = endpoint_url.rstrip("/") if endpoint_url else None

    @classmethod
    def anonymous(cls, **kwargs: Any) -> AZRaw:
        """A store for public containers (or Azurite's): unsigned requests, no credentials looked up."""
        return cls(anonymous=True, **kwargs)

    # --- io: one attempt each (CloudRaw retries them and maps their errors) -------------------------
    def _blob_url(self, auth: _Auth, container: str, key: str) -> str:
        return f"{auth.account_url}/{quote(container, safe='')}/{quote(key, safe='~/')}"

    def _send(self, method: str, url: str, headers: dict[str, str] | None = None) -> Any:
        """One request through the SDK's pipeline (its signing, no retries), the body left to stream."""
        from azure.core.pipeline.transport import HttpRequest

        client = self._conn.get().client
        request = HttpRequest(method, url, headers={"x-ms-version": client.api_version, **(headers or {})})
        return client._pipeline.run(request, stream=True).http_response

    def _get_once(self, bucket: str, key: str, uri: str, attempt: Attempt) -> bytes:
        response = self._send("GET", self._blob_url(self._conn.get().auth, bucket, key))
        raw = response.internal_response
        try:
            if response.status_code != 200:
                raise _status_error(response, attempt)
            header = response.headers.get("Content-Length")
            length = int(header) if header is not None and header.isdigit() else None
            check_size(self, uri, length, self.max_blob_bytes)
            return read_body(raw.raw, length, attempt, self, uri, self.max_blob_bytes)
        finally:
            raw.close()

    def _exists(self, url: str) -> bool:
        """A HEAD told by its status alone: 200 yes, 404 no, else raises (within one read-idle timeout)."""
        response = self._send("HEAD", url)
        try:
            if response.status_code == 404:
                return False
            if response.status_code != 200:
                raise _status_error(response, self._check_attempt())
            return True
        finally:
            response.internal_response.close()

    def _sdk_has(self, bucket: str, key: str) -> bool:
        return self._exists(self._blob_url(self._conn.get().auth, bucket, key))

    def _bucket_exists(self, bucket: str) -> bool:
        auth = self._conn.get().auth
        return self._exists(f"{auth.account_url}/{quote(bucket, safe='')}?restype=container")

    def _put_once(self, bucket: str, key: str, body: bytes) -> None:
        blob = self._conn.get().client.get_blob_client(bucket, key)
        blob.upload_blob(body, overwrite=True, blob_type="BlockBlob")

    def _put_stream_once(self, bucket: str, key: str, stream: Any) -> None:
        blob = self._conn.get().client.get_blob_client(bucket, key)
        blob.upload_blob(stream, overwrite=True, blob_type="BlockBlob")

    def _delete_once(self, bucket: str, key: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self._conn.get().client.get_blob_client(bucket, key).delete_blob()
        except ResourceNotFoundError as exc:  # the blob (fine) or its container (not)
            if getattr(exc, "error_code", None) != "BlobNotFound" and not self._bucket_exists(bucket):
                raise StoreNotAvailable(self, f"container {bucket!r} does not exist") from None

    def _list_page_once(self, bucket: str, folder: str, after: str | None, token: str | None,
                        size: int) -> tuple[list[tuple[str, int | None]], str | None]:
        """One page of ``walk_blobs`` (Azure has no start-after: ``list_names`` leaves out the names up to it)."""
        container = self._conn.get().client.get_container_client(bucket)
        pages = container.walk_blobs(name_starts_with=folder or None, delimiter="/",
                                     results_per_page=size).by_page(continuation_token=token)
        page = next(pages, None)
        items = [] if page is None else [(b.name, b.size) for b in page if hasattr(b, "size")]  # not BlobPrefix
        return items, pages.continuation_token or None

    @property
    def endpoint_label(self) -> str | None:
        if self.endpoint_url:
            return _without_credentials(self.endpoint_url)
        try:
            url = self._conn.get().auth.account_url
        except Exception:
            return None
        return None if _is_azure(url) else _without_credentials(url)

    # --- credentials and clients (per process) ---------------------------------------------------------
    def _resolve(self) -> _Auth:
        """The credential of this process, by the order in the module docstring."""
        env = os.environ
        name = _read(self.account_name, self, "account_name") or env.get("AZURE_STORAGE_ACCOUNT_NAME") or None
        if self.is_anonymous:
            return self._auth(name, "anonymous", None, "anonymous=True")
        if self.connection_string is not None:
            return self._from_connection_string(_read(self.connection_string, self, "connection_string"),
                                                "the connection_string argument")
        if self.account_key is not None:
            return self._auth(name, "key", _read(self.account_key, self, "account_key"), "the account_key argument")
        if self.sas_token is not None:
            return self._auth(name, "sas", _read(self.sas_token, self, "sas_token"), "the sas_token argument")
        if self.credential is not None:
            return self._auth(name, "token", self.credential, "the credential argument")
        if env.get("AZURE_STORAGE_CONNECTION_STRING"):
            return self._from_connection_string(env["AZURE_STORAGE_CONNECTION_STRING"],
                                                "AZURE_STORAGE_CONNECTION_STRING")
        key = env.get("AZURE_STORAGE_ACCOUNT_KEY")
        env_account = env.get("AZURE_STORAGE_ACCOUNT_NAME")
        if key and (self.account_name is None or env_account in (None, "", name)):
            return self._auth(name, "key", key, "AZURE_STORAGE_ACCOUNT_KEY")
        identity = require("azure.identity", "azure")
        return self._auth(name, "token", identity.DefaultAzureCredential(), "the default credential chain")

    def _auth(self, name: str | None, kind: str, secret: Any, source: str, blob_endpoint: str | None = None) -> _Auth:
        """The account URL (``endpoint_url``, else the connection string's, else Azure's for the account) and the
        account name (given, else the endpoint's), checked: a configuration that cannot work fails at once."""
        url = self.endpoint_url or blob_endpoint
        if url:
            problem = endpoint_problem(url)
            if problem:
                raise config_error(self, problem)
            url = url.rstrip("/")
            name = name or _account_in(url)
        elif name:
            url = f"https://{name}.blob.core.windows.net"
        else:
            raise StoreNotAvailable(self, "no storage account: pass account_name, endpoint_url or a connection "
                                          "string, or set AZURE_STORAGE_ACCOUNT_NAME")
        if kind == "key" and not name:
            raise config_error(self, f"an account key needs the account name ({source}): pass account_name")
        if kind == "token" and url.startswith("http://"):
            raise config_error(self, f"a token credential ({source}) needs an https:// endpoint, not "
                                     f"{_without_credentials(url)}")
        return _Auth(url, name, kind, secret, source)

    def _from_connection_string(self, text: str, source: str) -> _Auth:
        parts = _parse_connection_string(text)
        if parts is None:
            raise config_error(self, f"the connection string ({source}) is not a valid Azure Storage connection "
                                     "string (Key=value pairs separated by ';')")
        if parts.get("usedevelopmentstorage", "").lower() == "true":
            endpoint = parts.get("developmentstorageproxyuri") or _DEV_ENDPOINT
            return self._auth(_DEV_ACCOUNT, "key", _DEV_KEY, source, endpoint)
        name = parts.get("accountname") or None
        endpoint = parts.get("blobendpoint")
        if not endpoint and name:
            protocol = parts.get("defaultendpointsprotocol", "https")
            endpoint = f"{protocol}://{name}.blob.{parts.get('endpointsuffix', 'core.windows.net')}"
        if parts.get("accountkey"):
            return self._auth(name, "key", parts["accountkey"], source, endpoint)
        if parts.get("sharedaccesssignature"):
            return self._auth(name, "sas", parts["sharedaccesssignature"], source, endpoint)
        raise config_error(self, f"the connection string ({source}) has neither AccountKey nor SharedAccessSignature")

    def _connect(self) -> _Conn:
        blob = require("azure.storage.blob", "azure")
        import requests
        from azure.core.pipeline.transport import RequestsTransport
        from requests.adapters import HTTPAdapter

        _redact.install()
        auth = self._resolve()
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self.max_pool_connections, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        transport = RequestsTransport(session=session, session_owner=False, connection_timeout=self.timeout[0],
                                      read_timeout=self.timeout[1])
        if auth.kind == "key":
            credential: Any = {"account_name": auth.account_name, "account_key": auth.secret}
        elif auth.kind == "sas":
            from azure.core.credentials import AzureSasCredential

            credential = AzureSasCredential(auth.secret.lstrip("?"))
        else:
            credential = auth.secret  # a token credential, or None (anonymous)
        try:
            client = blob.BlobServiceClient(auth.account_url, credential=credential, retry_total=0,
                                            transport=transport)
        except (ValueError, TypeError) as exc:
            raise config_error(self, f"the SDK refused the configuration ({type(exc).__name__})") from None
        return _Conn(client, auth)

    def _build_fast(self, conn: _Conn) -> Any:
        from ._fast import AzureFast

        return AzureFast(conn.auth, max_blob_bytes=self.max_blob_bytes, timeout=self.timeout,
                         deadline=self.retry.deadline)

    # --- inspect and stream: one attempt each, SDK path (CloudRaw.head/open retry them and map their errors) --
    def _head_once(self, bucket: str, key: str, uri: str, attempt: Attempt) -> int:
        response = self._send("HEAD", self._blob_url(self._conn.get().auth, bucket, key))
        try:
            if response.status_code != 200:
                raise _status_error(response, attempt)
            size = response.headers.get("Content-Length")
        finally:
            response.internal_response.close()
        if size is None or not str(size).isdigit():
            raise HTTPStatusError(200, None, "blob properties without a size")
        return int(size)

    def _range_once(self, bucket: str, key: str, start: int, stop: int, attempt: Attempt) -> bytes:
        url = self._blob_url(self._conn.get().auth, bucket, key)
        response = self._send("GET", url, {"x-ms-range": f"bytes={start}-{stop - 1}"})
        try:
            whole = response.status_code == 200 and start == 0  # a server may ignore the range: take the start
            if response.status_code != 206 and not whole:
                raise _status_error(response, attempt)
            uri = f"az://{bucket}/{key}"
            raw = response.internal_response.raw
            if whole:
                return read_body(raw, None, attempt, self, uri, None)[:stop]
            return read_body(raw, stop - start, attempt, self, uri, None)
        finally:
            response.internal_response.close()


def _read(value: Any, store: AZRaw, arg: str) -> Any:
    """An argument's value: a ``_Secret``'s or an ``EnvVar``'s read now (unset: unavailable, naming the variable)."""
    try:
        if isinstance(value, _Secret):
            return value.get()
        return value.value() if isinstance(value, EnvVar) else value
    except KeyError as exc:
        raise StoreNotAvailable(store, f"{arg}: {exc.args[0]}") from None


def _status_error(response: Any, attempt: Attempt) -> HTTPStatusError:
    """The service's error: its code from ``x-ms-error-code``, its message from the XML body (first 64 KiB,
    read within the deadline), and ``Retry-After``."""
    headers = response.headers
    code = headers.get("x-ms-error-code")
    message = ""
    try:
        found = _MESSAGE.search(read_up_to(response.internal_response.raw, 1 << 16, attempt))
        if found:
            message = found.group(1).decode("utf-8", "replace").strip().split("\n", 1)[0]
    except (OSError, ValueError, AttributeError):
        pass
    if code is None and not message:
        message = str(getattr(response, "reason", "") or "")
    return HTTPStatusError(response.status_code, code, message, retry_after_of(headers.get("Retry-After")))


def _parse_connection_string(text: str) -> dict[str, str] | None:
    """``Key=value;...`` as a dict with lowercase keys (values may hold ``=``), or None when malformed."""
    parts: dict[str, str] = {}
    for item in str(text).strip().split(";"):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            return None
        parts[key.strip().lower()] = value.strip()
    return parts or None


def _account_in(url: str) -> str | None:
    """The account an account URL names: ``<account>.blob.core.windows.net``, or the first path segment
    (Azurite's path style, ``http://127.0.0.1:10000/devstoreaccount1``)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if _is_azure(url):
        return host.split(".", 1)[0]
    segment = parts.path.strip("/").split("/", 1)[0]
    return segment or None


def _is_azure(url: str) -> bool:
    return (urlsplit(url).hostname or "").endswith(_AZURE_HOSTS)


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{parts.hostname}{f':{port}' if port else ''}{parts.path.rstrip('/')}"


# --- the azure tier of a store spec (``bitstore.spec`` validates and builds through this declaration) -------
_CREDENTIAL_KEYS = ("account_name", "account_key", "sas_token")
_CREDENTIALS_ENV = ("must be a table mapping AZRaw arguments to environment variable names, e.g. "
                    "{ account_name = \"MY_ACCOUNT_VAR\", account_key = \"MY_KEY_VAR\" }")


def _credentials_env(env: Mapping[str, Any], key: str, fail: Any) -> dict:
    if not env:
        fail(_CREDENTIALS_ENV, key)
    for arg, var in env.items():
        if arg not in _CREDENTIAL_KEYS:
            fail(f"not an AZRaw credential argument (one of: {', '.join(_CREDENTIAL_KEYS)})", f"{key}.{keyname(arg)}")
        env_name(var, f"{key}.{arg}", fail)
    if "account_key" in env and "sas_token" in env:
        fail("use account_key or sas_token, not both", f"{key}.sas_token")
    return dict(env)


def _build_tier(tier: dict, build: Build) -> AZRaw:
    kwargs: dict[str, Any] = {}
    if tier.get("anonymous"):
        kwargs["anonymous"] = True
    if "account_name" in tier:
        kwargs["account_name"] = tier["account_name"]
    for arg, var in tier.get("credentials_env", {}).items():
        where = f"{build.where}.credentials_env.{arg}"
        if arg in kwargs:
            raise SpecError("account_name is given both directly and through credentials_env", key=where,
                            source=build.source)
        build.env(var, where)  # set now, or a clear SpecError
        kwargs[arg] = EnvVar(var)  # read again by each process's client, never stored as a value
    if "connection_string_env" in tier:
        var = tier["connection_string_env"]
        build.env(var, f"{build.where}.connection_string_env")
        kwargs["connection_string"] = EnvVar(var)
    return AZRaw(endpoint_url=tier.get("endpoint_url"), **kwargs, **cloud_options(tier), **build.raw_name(tier))


TIER = TierType("azure", (
    Field("prefix", str, "`az://container/folder/` (sha1 keys; `abfs://` and `azure://` too)", "az://container/blobs/"),
    *COMMON,
    *CLOUD,
    Field("endpoint_url", str, "the Blob service's account URL (Azurite: `http://127.0.0.1:10000/devstoreaccount1`)",
          "http://127.0.0.1:10000/devstoreaccount1"),
    Field("account_name", str, "the storage account", "myaccount"),
    Field("credentials_env", Mapping, "account name, key or SAS token from environment variables, "
          "`{ account_key = \"VAR\", ... }`", {"account_key": "AZ_KEY_VAR"}, _credentials_env,
          reference="env", wrong_kind=_CREDENTIALS_ENV),
    Field("connection_string_env", str, "a variable holding an Azure Storage connection string", "AZ_CONN_VAR",
          env_name, reference="env", wrong_kind="must be the NAME of an environment variable (letters, digits, _), "
          "not a value"),
), _build_tier, retry=True, exclusive=(("connection_string_env", "credentials_env"),))
