"""``cloud``: one fixture for the behaviour S3Raw, GSRaw and AZRaw share, run on each backend with each transport."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.servers.fixtures import TEST_RETRY


@dataclass
class Cloud:
    """A backend under test: its server env (``s3``, ``gcs`` or ``azure_blob`` fixture), scheme and transport."""

    env: Any
    scheme: str
    transport: str

    @property
    def endpoint(self) -> str:
        return self.env.endpoint if self.scheme == "gs" else self.env.endpoint_url

    def create_bucket(self, name: str) -> str:
        if self.scheme == "az":
            return self.env.create_container(name)
        return self.env.create_bucket(name)

    def put(self, bucket: str, key: str, data: bytes) -> str:
        return self.env.put(bucket, key, data)

    def raw(self, **kwargs):
        kwargs.setdefault("transport", self.transport)
        if "endpoint" in kwargs and self.scheme != "gs":
            kwargs["endpoint_url"] = kwargs.pop("endpoint")
        if self.scheme == "az":
            from bitstore.backends.azure import AZRaw

            server = self.env.server
            kwargs.setdefault("endpoint_url", server.endpoint_url)
            kwargs.setdefault("retry", TEST_RETRY)
            return AZRaw(server.account_name, account_key=server.account_key, **kwargs)
        return self.env.raw(**kwargs)

    def raw_via(self, url: str, **kwargs):
        """A store for the same buckets, reached through ``url`` (a fault proxy; Azurite's account path added)."""
        if self.scheme == "az":
            url = f"{url}/{self.env.server.account_name}"
        return self.raw(endpoint=url, **kwargs)


_ENVS = {"s3": "s3", "gs": "gcs", "az": "azure_blob"}


@pytest.fixture(params=["s3-sdk", "s3-fast", "gs-sdk", "gs-fast", "az-sdk", "az-fast"])
def cloud(request) -> Cloud:
    scheme, transport = request.param.split("-")
    return Cloud(request.getfixturevalue(_ENVS[scheme]), scheme, transport)
