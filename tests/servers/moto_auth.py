"""moto's S3 server with authentication switched on, in its own subprocess on a free 127.0.0.1 port.

moto reads ``INITIAL_NO_AUTH_ACTION_COUNT`` when it is imported, so it cannot be switched on in the test
process (whose moto serves the other tests without authentication). The first ``free_actions`` requests are
let through unauthenticated: ``start`` spends them creating an IAM user with an S3 policy and an access key,
then a bucket and an object with that key (already checked). After that every request is authenticated:
the user's key with a wrong secret gets ``403 SignatureDoesNotMatch``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from ._ports import free_port, stop_process, wait_http

_POLICY = json.dumps({"Version": "2012-10-17",
                      "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})


class MotoAuthServer:
    """Attributes after ``start``: ``endpoint_url``, ``access_key``, ``secret_key`` (the real ones),
    ``bucket``, ``key`` and ``data`` (an object that exists)."""

    free_actions = 3  # create_user, put_user_policy, create_access_key

    def __init__(self):
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen | None = None
        self.bucket, self.key, self.data = "auth-bucket", "auth-key", b"behind authentication"

    def start(self) -> MotoAuthServer:
        env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(self.free_actions)}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            wait_http(f"{self.endpoint_url}/moto-api/")
            self._provision()
        except Exception:
            self.stop()
            raise
        return self

    def _client(self, service: str, key: str = "x", secret: str = "x"):
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint_url, region_name="us-east-1",
                            aws_access_key_id=key, aws_secret_access_key=secret)

    def _provision(self) -> None:
        iam = self._client("iam")
        iam.create_user(UserName="bitstore")
        iam.put_user_policy(UserName="bitstore", PolicyName="s3", PolicyDocument=_POLICY)
        created = iam.create_access_key(UserName="bitstore")["AccessKey"]
        self.access_key, self.secret_key = created["AccessKeyId"], created["SecretAccessKey"]
        s3 = self._client("s3", self.access_key, self.secret_key)  # authenticated from here on
        s3.create_bucket(Bucket=self.bucket)
        s3.put_object(Bucket=self.bucket, Key=self.key, Body=self.data)
        assert s3.get_object(Bucket=self.bucket, Key=self.key)["Body"].read() == self.data

    def stop(self) -> None:
        stop_process(self._process)
        self._process = None
