"""What boto3 would resolve for an S3 client from the environment alone, read without importing boto3.

The fast transport needs three things from boto3: the credentials, the region and the endpoint. Importing boto3
and building its first client costs about 0.3 s of a short command (``bitstore replicate`` with nothing to do).
When boto3 would read nothing but a few environment variables, ``resolve`` reads them the way it does; whenever
anything else could take part (a shared config file, a profile, a credential process, instance roles, an
expiring key, an unusual partition), it answers None and the store asks boto3, as it always did. A property test
holds the two answers equal (tests/backends/test_s3_env.py).
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from ._client import EnvVar, endpoint_problem

__all__ = ["EnvResolved", "resolve"]

ANONYMOUS = "anonymous"
#: Session arguments read here; any other (``profile_name``, ``aws_account_id``...) goes to boto3.
_KEYS = frozenset({"aws_access_key_id", "aws_secret_access_key", "aws_session_token", "region_name"})
#: Variables that bring more than the environment into boto3's answer: then boto3 is asked.
_DEFER = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CREDENTIAL_EXPIRATION", "AWS_DATA_PATH")
#: botocore's check of a region name (``validate_region_name``).
_REGION = re.compile(r"^(?![0-9]+$)(?!-)[a-zA-Z0-9-]{,63}(?<!-)$")
#: Regions of AWS's own S3 hosts (amazonaws.com, .com.cn), where the fast transport addresses buckets itself.
_AWS_REGION = re.compile(r"(?:us|eu|ap|sa|ca|me|af|il|mx)-(?:gov-)?[a-z]+-\d+|cn-[a-z]+-\d+")
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")


class EnvResolved(NamedTuple):
    """``credentials``: ``(key id, secret, token or None)``, or None for unsigned requests; ``region`` as the
    client's (``us-east-1`` when none is set); ``endpoint``: the one configured, None for AWS's own."""

    credentials: tuple[str, str, str | None] | None
    region: str
    endpoint: str | None


def resolve(option: Any, endpoint_url: str | None, environ: Mapping[str, str] | None = None) -> EnvResolved | None:
    """What ``boto3.Session(**option).client("s3", endpoint_url=endpoint_url)`` resolves, or None when boto3
    might read more than the environment (``option``: one credentials option of ``S3Raw``)."""
    env = os.environ if environ is None else environ
    if any(name in env for name in _DEFER) or "AWS_CONFIG_FILE" in env and not env["AWS_CONFIG_FILE"]:
        return None
    if os.path.exists(os.path.expanduser(env.get("AWS_CONFIG_FILE", "~/.aws/config"))):
        return None
    args: dict[str, Any] = {}
    if option != ANONYMOUS and option is not None:
        if not isinstance(option, Mapping) or not set(option) <= _KEYS:
            return None
        for name, value in option.items():
            if isinstance(value, EnvVar):
                if value.name not in env:
                    return None  # the store says which variable is missing
                value = env[value.name]
            if value is not None and not isinstance(value, str):
                return None
            args[name] = value
    credentials = None if option == ANONYMOUS else _credentials(args, env)
    if credentials is False:
        return None
    region = _region(args, env)
    if region is False:
        return None
    endpoint = _endpoint(endpoint_url, env)
    if endpoint is False:
        return None
    if endpoint is None and region is not None and not _AWS_REGION.fullmatch(region):
        return None  # another partition's hosts (ISO, sovereign clouds): boto3 knows them
    return EnvResolved(credentials, region or "us-east-1", endpoint)  # type: ignore[arg-type]


def _credentials(args: dict[str, Any], env: Mapping[str, str]) -> tuple[str, str, str | None] | bool:
    """The session's keys when given, else the environment's (the first link of boto3's chain); False when
    boto3 would go further down its chain or refuse."""
    key, secret, token = (args.get(k) for k in ("aws_access_key_id", "aws_secret_access_key", "aws_session_token"))
    if key or secret or token:
        return (key, secret, token or None) if key and secret else False
    key, secret = env.get("AWS_ACCESS_KEY_ID", ""), env.get("AWS_SECRET_ACCESS_KEY", "")
    if not key or not secret:
        return False
    token = env.get("AWS_SECURITY_TOKEN", "") or env.get("AWS_SESSION_TOKEN", "")
    return key, secret, token or None


def _region(args: dict[str, Any], env: Mapping[str, str]) -> str | None | bool:
    region = args.get("region_name")
    if region is None:
        region = env.get("AWS_DEFAULT_REGION")
    if region is None:
        return None
    return region if region and _REGION.match(region) else False


def _endpoint(endpoint_url: str | None, env: Mapping[str, str]) -> str | None | bool:
    """The endpoint argument, else ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL`` (unless
    ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` is true); False for one boto3 should judge."""
    url = endpoint_url
    if url is None and env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() != "true":
        url = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
    if url is None:
        return None
    if endpoint_problem(url) is not None:
        return False
    from urllib.parse import urlsplit

    netloc = urlsplit(url).netloc
    host = netloc[:netloc.find("]") + 1] if netloc.startswith("[") else netloc.split(":", 1)[0]
    return url if _HOST.fullmatch(host) and not any(c in url for c in " \t\r\n@") else False
