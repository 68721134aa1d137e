"""Stores and data shared by the engine tests; importable by the Spark and Ray workers (the fixtures put the
repository on their PYTHONPATH)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from bitstore import Store

#: Worker environment: AWS-style credentials for the moto server, read by specs through ``credentials_env``
#: on the workers (never shipped), and the repository on PYTHONPATH so the workers import this module.
KEY_ID_VAR, SECRET_VAR = "BITSTORE_ENGINE_TEST_KEY_ID", "BITSTORE_ENGINE_TEST_SECRET"
REPO = str(Path(__file__).resolve().parents[2])
WORKER_ENV = {KEY_ID_VAR: "testing", SECRET_VAR: "testing", "PYTHONPATH": REPO}
RETRY = {"attempts": 2, "base_delay": 0.001, "max_delay": 0.01}


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def blobs(n: int, seed: int = 0) -> dict[str, bytes]:
    """``n`` distinct blobs of 0 to ~4 KiB, keyed by SHA1 (sizes vary so offsets and empties are exercised)."""
    out = {}
    for i in range(n):
        data = hashlib.sha256(f"{seed}:{i}".encode()).digest() * (i % 131) + str(i).encode()
        out[sha1(data)] = data
    return out


def write_local(root: Path, items: dict[str, bytes]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for key, data in items.items():
        (root / key).write_bytes(data)


def local_spec(root: Path) -> dict:
    return {"keys": "sha1", "tier": [{"type": "local", "prefix": f"{root}/", "name": "disk"}]}


def failing_spec(root: Path) -> dict:
    """Blobs under ``root`` are found; every other valid key fails: the second tier is an S3 endpoint that
    refuses connections (a closed port on 127.0.0.1), retried twice."""
    return {"keys": "sha1", "retry": RETRY, "tier": [
        {"type": "local", "prefix": f"{root}/", "name": "disk"},
        {"type": "s3", "prefix": "s3://nowhere/", "name": "dead-s3", "endpoint_url": "http://127.0.0.1:9",
         "credentials_env": {"aws_access_key_id": KEY_ID_VAR, "aws_secret_access_key": SECRET_VAR}},
    ]}


def s3_spec(endpoint_url: str, bucket: str) -> dict:
    return {"keys": "sha1", "retry": RETRY, "tier": [
        {"type": "s3", "prefix": f"s3://{bucket}/blobs/", "name": "moto", "endpoint_url": endpoint_url,
         "credentials_env": {"aws_access_key_id": KEY_ID_VAR, "aws_secret_access_key": SECRET_VAR}},
    ]}


class ProcessStore(Store):
    """Answers every key with ``<pid>:<id of this store>``: which process, and which store instance, served it."""

    def is_valid(self, uri: Any) -> bool:
        return isinstance(uri, str)

    def get(self, uri: str) -> bytes:
        return f"{os.getpid()}:{id(self)}".encode()
