"""The S3 tier's boto3 sessions: one botocore data loader per process (a new store's client does not parse the
service models again), and S3's timestamps read without dateutil yet to the same instants botocore gives."""
from __future__ import annotations

from datetime import datetime, timezone

import boto3
import pytest
from botocore.utils import parse_timestamp
from hypothesis import given
from hypothesis import strategies as st

from bitstore.backends.s3 import _session, _timestamp_parser

_KEYS = {"aws_access_key_id": "k", "aws_secret_access_key": "s", "region_name": "us-east-1"}


def test_sessions_share_one_loader_and_its_search_paths_do_not_grow():
    first, second = _session(boto3, **_KEYS), _session(boto3, **_KEYS)
    loader = first._session.get_component("data_loader")
    paths = list(loader.search_paths)
    third = _session(boto3, **_KEYS)
    assert second._session.get_component("data_loader") is loader
    assert third._session.get_component("data_loader") is loader and third._loader is loader
    assert loader.search_paths == paths
    assert first.client("s3").meta.service_model.service_name == "s3"


def test_sessions_keep_their_own_credentials():
    one = _session(boto3, **_KEYS)
    two = _session(boto3, aws_access_key_id="other", aws_secret_access_key="x", region_name="eu-west-1")
    assert one.get_credentials().access_key == "k" and two.get_credentials().access_key == "other"
    assert two.region_name == "eu-west-1"


@given(st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31)),
       st.sampled_from(["", ".%f", ".000", ".5"]))
def test_s3_timestamps_parse_to_the_instant_botocore_gives(when, fraction):
    text = when.strftime(f"%Y-%m-%dT%H:%M:%S{fraction}Z")
    ours = _timestamp_parser()(text)
    assert ours == parse_timestamp(text)
    assert ours.utcoffset().total_seconds() == 0


@pytest.mark.parametrize("text", ["Wed, 01 Jan 2025 00:00:00 GMT", "2025-01-01T00:00:00+02:00", "1735689600",
                                  "2025-01-01T00:00:00.1234567Z", "2024-02-30T00:00:00Z", "1999-12-31T23:59:60Z",
                                  "not a time"])
def test_other_forms_are_botocores(text):
    try:
        expected = parse_timestamp(text)
    except ValueError:
        with pytest.raises(ValueError):
            _timestamp_parser()(text)
        return
    assert _timestamp_parser()(text) == expected


def test_a_client_of_a_session_parses_timestamps_in_responses():
    """The parser is installed where botocore's response parsers read it."""
    factory = _session(boto3, **_KEYS)._session.get_component("response_parser_factory")
    parser = factory.create_parser("rest-xml")
    assert parser._timestamp_parser is _timestamp_parser()
    assert parser._timestamp_parser("2025-01-01T00:00:00.000Z") == datetime(2025, 1, 1, tzinfo=timezone.utc)
