"""Canary secrets never leak (reprs, logs at DEBUG including the SDKs', errors, CLI output, pickles);
LocalRaw confinement; a size cap enforced before the body is buffered."""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import pickle
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitstore import (
    BlobTooLarge,
    GSRaw,
    InvalidURI,
    LocalRaw,
    MemoryRaw,
    RetryPolicy,
    S3Raw,
    Sha1Cache,
    Sha1Composite,
    Sha1Store,
    sha1_hex,
)
from bitstore.cli import main

SECRET = "CANARYsecretKEY0a9b8c7d6e5f4"
TOKEN = "CANARYsessionTOKEN1f2e3d4c5b6a"
ACCESS_TOKEN = "ya29.CANARYaccessTOKEN7e6d5c4b"
BUCKET = "secrets"
DATA = b"a blob guarded by canaries"
KEY = sha1_hex(DATA)
FAST = RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.002)


def assert_clean(text: str | bytes, *canaries: str) -> None:
    for canary in canaries:
        needle = canary.encode() if isinstance(text, bytes) else canary
        assert needle not in text, f"canary {canary[:12]}... leaked"


def log_text(caplog) -> str:
    """Every captured record, formatted, plus its raw message and arguments."""
    parts = [caplog.text]
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.append(repr(record.args))
    return "\n".join(parts)


def exercise(raw, prefix: str, missing_uri: str, unreachable) -> list[str]:
    """Use a store the ways a user would; return every message produced (reprs, results, errors)."""
    store = Sha1Composite(name="tiered")
    store.append_cache(Sha1Cache(MemoryRaw(), "mem://c/"))
    store.append_source(Sha1Store(raw, prefix), cache_result=True)
    seen = [repr(raw), str(raw), raw.name, repr(store), str(store)]
    seen += [repr(r) + str(r.error) for r in store.get_many([KEY, "0" * 40, "junk"], progress=False)]
    for uri in (missing_uri, "not a uri"):
        try:
            raw.get(uri)
        except Exception as exc:
            seen += [repr(exc), str(exc), repr(pickle.loads(pickle.dumps(exc)))]
    for failing in (unreachable.get, lambda uri: unreachable.put(uri, b"x")):
        with pytest.raises(Exception) as raised:
            failing(missing_uri)
        seen += [repr(raised.value), str(raised.value)]
    return seen


@pytest.fixture
def s3_env_canaries(s3, monkeypatch):
    s3.create_bucket(BUCKET)
    s3.put(BUCKET, f"files/{KEY}", DATA)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    return s3


@pytest.mark.parametrize("transport", ["sdk", "fast"])
def test_s3_secrets_from_the_environment_never_leak(s3_env_canaries, caplog, transport):
    s3 = s3_env_canaries
    caplog.set_level(logging.DEBUG)
    raw = S3Raw(endpoint_url=s3.endpoint_url, retry=FAST, transport=transport)
    unreachable = S3Raw(endpoint_url="http://127.0.0.1:9", retry=FAST, timeout=(0.5, 0.5), transport=transport)
    seen = exercise(raw, f"s3://{BUCKET}/files/", f"s3://{BUCKET}/nope", unreachable)
    assert raw.client is not None and "<redacted>" in caplog.text  # the SDK did log its signed requests
    assert_clean("\n".join(seen) + log_text(caplog), SECRET, TOKEN)
    assert_clean(pickle.dumps(raw), SECRET, TOKEN)


def test_s3_secrets_from_a_profile_file_never_leak(s3, tmp_path, monkeypatch, caplog):
    s3.create_bucket(BUCKET)
    s3.put(BUCKET, f"files/{KEY}", DATA)
    profile = tmp_path / "credentials"
    profile.write_text(f"[canary]\naws_access_key_id = AKIACANARYPROFILE\naws_secret_access_key = {SECRET}\n"
                       f"aws_session_token = {TOKEN}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(profile))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    caplog.set_level(logging.DEBUG)
    raw = S3Raw({"profile_name": "canary"}, endpoint_url=s3.endpoint_url, retry=FAST)
    unreachable = S3Raw({"profile_name": "canary"}, endpoint_url="http://127.0.0.1:9", retry=FAST,
                        timeout=(0.5, 0.5))
    seen = exercise(raw, f"s3://{BUCKET}/files/", f"s3://{BUCKET}/nope", unreachable)
    assert raw.get(f"s3://{BUCKET}/files/{KEY}") == DATA
    assert_clean("\n".join(seen) + log_text(caplog), SECRET, TOKEN)
    assert_clean(pickle.dumps(raw), SECRET, TOKEN)


def test_inline_s3_credentials_travel_in_pickles_but_never_show(s3, caplog):
    s3.create_bucket(BUCKET)
    s3.put(BUCKET, f"files/{KEY}", DATA)
    creds = {"aws_access_key_id": "AKIAINLINE", "aws_secret_access_key": SECRET, "aws_session_token": TOKEN,
             "region_name": "us-east-1"}
    caplog.set_level(logging.DEBUG)
    raw = S3Raw(creds, endpoint_url=s3.endpoint_url, retry=FAST)
    unreachable = S3Raw(creds, endpoint_url="http://127.0.0.1:9", retry=FAST, timeout=(0.5, 0.5))
    seen = exercise(raw, f"s3://{BUCKET}/files/", f"s3://{BUCKET}/nope", unreachable)
    assert_clean("\n".join(seen) + log_text(caplog), SECRET, TOKEN)
    clone = pickle.loads(pickle.dumps(raw))  # workers need them: the clone still reads
    assert clone.get(f"s3://{BUCKET}/files/{KEY}") == DATA


def test_cli_output_holds_no_secret(s3_env_canaries, tmp_path, monkeypatch):
    s3 = s3_env_canaries
    monkeypatch.setenv("MY_SECRET_VAR", SECRET)
    monkeypatch.setenv("MY_TOKEN_VAR", TOKEN)
    spec = tmp_path / "spec.toml"
    spec.write_text(f'[[tier]]\ntype = "s3"\nprefix = "s3://{BUCKET}/files/"\nendpoint_url = "{s3.endpoint_url}"\n'
                    'attempts = 2\nbase_delay = 0.001\ncredentials_env = { aws_access_key_id = "AWS_ACCESS_KEY_ID", '
                    'aws_secret_access_key = "MY_SECRET_VAR", aws_session_token = "MY_TOKEN_VAR" }\n')
    keys = tmp_path / "keys.txt"
    keys.write_text(f"{KEY}\n{'0' * 40}\njunk\n")
    outputs = []
    for argv in (["-vv", "get", KEY, "-o", str(tmp_path / "blob")], ["-vv", "get", "0" * 40],
                 ["-vv", "fetch", "--input", str(keys), "--output", str(tmp_path / "o.parquet")]):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["--spec", str(spec), *argv])
        outputs.append((code, out.getvalue() + err.getvalue()))
    assert [code for code, _ in outputs] == [0, 1, 0], outputs
    assert (tmp_path / "blob").read_bytes() == DATA
    assert_clean("\n".join(text for _, text in outputs), SECRET, TOKEN)


def test_pickled_beam_transform_holds_no_resolved_secret(s3_env_canaries):
    from apache_beam.internal import pickler

    from beam_transforms import FetchBlobs

    s3 = s3_env_canaries
    store = Sha1Composite()
    store.append_source(Sha1Store(S3Raw(endpoint_url=s3.endpoint_url, retry=FAST), f"s3://{BUCKET}/files/"))
    assert store.get(KEY) == DATA  # the client (and its resolved credentials) exist in this process
    transform = FetchBlobs(store)
    assert_clean(pickler.dumps(transform), SECRET, TOKEN)
    assert_clean(pickle.dumps(store), SECRET, TOKEN)


# --- GCS: a service-account file, with a token server on 127.0.0.1 -------------------------------------------
@pytest.fixture
def token_server():
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            hits.append(self.path)
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = json.dumps({"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/token", hits
    server.shutdown()
    server.server_close()


@pytest.fixture
def service_account(tmp_path, token_server) -> tuple[str, str, list[str]]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    info = {"type": "service_account", "project_id": "canary-project", "private_key_id": "CANARYkeyID42",
            "private_key": pem, "client_email": "canary@canary-project.iam.gserviceaccount.com",
            "client_id": "1", "token_uri": token_server[0]}
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(info))
    return str(path), pem.splitlines()[5], token_server[1]  # a line from the middle of the key


@pytest.mark.parametrize("transport", ["sdk", "fast"])
def test_gcs_service_account_secrets_never_leak(gcs, service_account, caplog, monkeypatch, transport):
    path, key_line, token_requests = service_account
    monkeypatch.delenv("STORAGE_EMULATOR_HOST")
    gcs.create_bucket(BUCKET)
    gcs.put(BUCKET, f"files/{KEY}", DATA)
    caplog.set_level(logging.DEBUG)
    raw = GSRaw(path, endpoint=gcs.endpoint, retry=FAST, transport=transport)
    unreachable = GSRaw(path, endpoint="http://127.0.0.1:9", retry=FAST, timeout=(0.5, 0.5), transport=transport)
    seen = exercise(raw, f"gs://{BUCKET}/files/", f"gs://{BUCKET}/nope", unreachable)
    assert raw.get(f"gs://{BUCKET}/files/{KEY}") == DATA
    assert token_requests  # the token was obtained from the (local) token server
    canaries = (ACCESS_TOKEN, key_line, "CANARYkeyID42")
    assert_clean("\n".join(seen) + log_text(caplog), *canaries)
    assert_clean(pickle.dumps(raw), *canaries)


# --- LocalRaw confinement -------------------------------------------------------------------------------------
SEGMENTS = st.sampled_from(["..", ".", "a", "b", "out", "link-out", "link-in", "", "%2e%2e", "..%2f", "~"])


@pytest.fixture
def jail(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "a").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret").write_bytes(b"outside the root")
    (root / "a" / "inside").write_bytes(b"inside")
    (root / "link-out").symlink_to(outside, target_is_directory=True)
    (root / "a" / "link-in").symlink_to(root / "a", target_is_directory=True)
    (root / "escape-file").symlink_to(outside / "secret")
    return root, outside


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(segments=st.lists(SEGMENTS, min_size=1, max_size=6), form=st.sampled_from(["rel", "abs", "file", "root"]),
       leaf=st.sampled_from(["secret", "inside", "new", "escape-file", ""]))
def test_local_raw_never_reaches_outside_its_root(jail, segments, form, leaf):
    root, outside = jail
    rel = "/".join([*segments, leaf])
    uri = {"rel": rel, "abs": f"{root}/{rel}", "file": f"file://{root}/{rel}", "root": f"/{rel}"}[form]
    store = LocalRaw(root)
    try:
        data = store.get(uri)
    except InvalidURI:
        data = None
    except Exception as exc:  # missing, or a folder: never a read outside
        data = None
        assert type(exc).__name__ in ("NotFoundInStore", "FetchFailed", "StoreNotAvailable"), exc
    assert data != b"outside the root"
    with contextlib.suppress(Exception):
        store.put(uri, b"written")
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_bytes() == b"outside the root"


# --- size cap before buffering ----------------------------------------------------------------------------------
BIG = 32 * 1024 * 1024
CAP = 1024 * 1024
#: Run in a fresh process (moto serves from the test process, so its own buffers would count here).
_MEASURE = """
import sys, tracemalloc
from bitstore import BlobTooLarge, RetryPolicy, S3Raw
raw = S3Raw(endpoint_url=sys.argv[1], max_blob_bytes=int(sys.argv[2]), transport=sys.argv[3], retry=1)
raw.get(sys.argv[4] + "small")  # connect and warm up outside the measurement
tracemalloc.start()
try:
    raw.get(sys.argv[4] + "big")
except BlobTooLarge as exc:
    print(exc.size, tracemalloc.get_traced_memory()[1])
"""


@pytest.mark.parametrize("transport", ["sdk", "fast"])
def test_s3_size_cap_refuses_before_buffering(s3, transport):
    import subprocess
    import sys

    s3.create_bucket(BUCKET)
    s3.put(BUCKET, "big", os.urandom(1024) * (BIG // 1024))
    s3.put(BUCKET, "small", b"small")
    done = subprocess.run([sys.executable, "-c", _MEASURE, s3.endpoint_url, str(CAP), transport, f"s3://{BUCKET}/"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    size, peak = map(int, done.stdout.split())  # (reading the whole object here peaks at its full size)
    assert size == BIG
    assert peak < BIG // 8, f"{peak:,} bytes allocated by Python while refusing a {BIG:,}-byte object"
    with pytest.raises(BlobTooLarge) as raised:
        s3.raw(max_blob_bytes=CAP, transport=transport).get(f"s3://{BUCKET}/big")
    assert f"{BIG:,}" in str(raised.value) and f"{CAP:,}" in str(raised.value)


def test_size_cap_is_failed_not_missing_in_get_many(s3):
    s3.create_bucket(BUCKET)
    s3.put(BUCKET, "files/" + KEY, DATA * 1000)
    store = Sha1Composite()
    store.append_source(Sha1Store(s3.raw(max_blob_bytes=100), f"s3://{BUCKET}/files/"))
    (result,) = store.get_many([KEY], progress=False)
    assert result.status == "failed" and "over the limit" in result.error


@pytest.fixture
def azure_canaries(azure_blob):
    """Azurite holding the blob; its account key and a SAS signature are the canaries (Azurite's key is public,
    but it is the secret the store is given here, and must show nowhere)."""
    from datetime import datetime, timedelta, timezone

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    azure_blob.create_container(BUCKET)
    azure_blob.put(BUCKET, f"files/{KEY}", DATA)
    server = azure_blob.server
    sas = generate_container_sas(server.account_name, BUCKET, account_key=server.account_key,
                                 permission=ContainerSasPermissions(read=True, write=True),
                                 expiry=datetime.now(timezone.utc) + timedelta(hours=1))
    signature = [p for p in sas.split("&") if p.startswith("sig=")][0][4:]
    return azure_blob, sas, signature


@pytest.mark.parametrize("transport", ["sdk", "fast"])
@pytest.mark.parametrize("how", ["connection string in the environment", "account key argument", "sas argument"])
def test_azure_secrets_never_leak(azure_canaries, caplog, monkeypatch, transport, how):
    from urllib.parse import unquote

    from bitstore import AZRaw

    azure_blob, sas, signature = azure_canaries
    server = azure_blob.server
    canaries = (server.account_key, signature, unquote(signature))
    caplog.set_level(logging.DEBUG)

    def make(endpoint: str, **kwargs):
        if how == "connection string in the environment":  # its BlobEndpoint is the server; an argument wins
            monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", server.connection_string)
            where = {} if endpoint == server.endpoint_url else {"endpoint_url": endpoint}
            return AZRaw(transport=transport, **where, **kwargs)
        secret = {"account_key": server.account_key} if how == "account key argument" else {"sas_token": sas}
        return AZRaw(server.account_name, endpoint_url=endpoint, transport=transport, **secret, **kwargs)

    unreachable = make("http://127.0.0.1:9/devstoreaccount1", retry=FAST, timeout=(0.5, 0.5))
    raw = make(server.endpoint_url, retry=FAST)
    seen = exercise(raw, f"az://{BUCKET}/files/", f"az://{BUCKET}/nope", unreachable)
    assert raw.get(f"az://{BUCKET}/files/{KEY}") == DATA
    assert raw.head(f"az://{BUCKET}/files/{KEY}") == len(DATA)  # through the SDK on both transports (fast puts too)
    assert "<redacted>" in caplog.text or "REDACTED" in caplog.text  # the SDK did log its signed requests
    assert_clean("\n".join(seen) + log_text(caplog), *canaries)
    if how == "connection string in the environment":
        assert_clean(pickle.dumps(raw), *canaries)  # found by the store: never pickled
    else:
        assert pickle.loads(pickle.dumps(raw)).get(f"az://{BUCKET}/files/{KEY}") == DATA  # inline: travels
