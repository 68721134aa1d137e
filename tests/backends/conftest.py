"""``cloud``: one fixture for the behaviour S3Raw and GSRaw share, run on each backend with each transport."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest


@dataclass
class Cloud:
    """A backend under test: its server env (``s3`` or ``gcs`` fixture), scheme and transport."""

    env: Any
    scheme: str
    transport: str

    @property
    def endpoint(self) -> str:
        return self.env.endpoint_url if self.scheme == "s3" else self.env.endpoint

    def create_bucket(self, name: str) -> str:
        return self.env.create_bucket(name)

    def put(self, bucket: str, key: str, data: bytes) -> str:
        return self.env.put(bucket, key, data)

    def raw(self, **kwargs):
        kwargs.setdefault("transport", self.transport)
        if "endpoint" in kwargs and self.scheme == "s3":
            kwargs["endpoint_url"] = kwargs.pop("endpoint")
        return self.env.raw(**kwargs)

    def raw_via(self, url: str, **kwargs):
        """A store for the same buckets, reached through ``url`` (a fault proxy)."""
        return self.raw(endpoint=url, **kwargs)


@pytest.fixture(params=["s3-sdk", "s3-fast", "gs-sdk", "gs-fast"])
def cloud(request) -> Cloud:
    scheme, transport = request.param.split("-")
    env = request.getfixturevalue("s3" if scheme == "s3" else "gcs")
    return Cloud(env, scheme, transport)
