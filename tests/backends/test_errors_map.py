"""The one error mapping (``bitstore.backends._errors``) on real SDK exception objects."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitstore import BlobTooLarge, FetchFailed, NotFoundInStore, StoreNotAvailable
from bitstore.backends._errors import (
    FastUnsupported,
    HTTPStatusError,
    ShortRead,
    Unconfirmed404,
    azure_error,
    check_size,
    clean,
    gcs_error,
    obstore_error,
    range_refusal,
    read_exactly,
    s3_error,
    status_error,
    write_refusal,
)
from bitstore.ground.retry import TransientError

URI = "s3://bkt/key"


def _client_error(code: str, status: int):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": "msg"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "GetObject")


@pytest.mark.parametrize(("code", "status", "expected"), [
    ("NoSuchKey", 404, NotFoundInStore), ("NoSuchBucket", 404, StoreNotAvailable), ("404", 404, Unconfirmed404),
    ("AccessDenied", 403, StoreNotAvailable), ("InvalidAccessKeyId", 403, StoreNotAvailable),
    ("ExpiredToken", 400, StoreNotAvailable), ("SignatureDoesNotMatch", 403, StoreNotAvailable),
    ("SlowDown", 503, TransientError), ("InternalError", 500, TransientError), ("Throttling", 400, TransientError),
    ("RequestTimeout", 400, TransientError), ("TooManyRequests", 429, TransientError),
    ("InvalidObjectState", 403, NotFoundInStore), ("InvalidObjectState", 400, NotFoundInStore),
    ("InvalidArgument", 400, FetchFailed),
])
def test_s3_client_errors(code, status, expected):
    mapped = s3_error(_client_error(code, status), "s3", URI)
    assert isinstance(mapped, expected)
    if expected is NotFoundInStore:
        assert not isinstance(mapped, FetchFailed)


def test_a_missing_bucket_is_unavailable_naming_it_on_read_and_write():
    for writing in (False, True):
        mapped = s3_error(_client_error("NoSuchBucket", 404), "s3", URI, writing=writing)
        assert isinstance(mapped, StoreNotAvailable) and "does not exist" in str(mapped) and "s3://b" in str(mapped)


def test_a_404_without_an_object_answer_is_never_missing():
    """Emulators and wrong routes answer 404 with no code: the store must settle it, the map never says missing."""
    assert isinstance(status_error(404, None, "Not Found", "s3", URI), Unconfirmed404)
    assert isinstance(status_error(404, "Not Found", "Not Found", "gs", URI), Unconfirmed404)
    assert isinstance(status_error(404, "notFound", "No such object: b/k", "gs", URI), NotFoundInStore)
    assert isinstance(status_error(404, "notFound", "The specified bucket does not exist.", "gs", URI),
                      StoreNotAvailable)


@pytest.mark.parametrize("make", [
    lambda bx: bx.ResponseStreamingError(error="connection cut"),
    lambda bx: bx.IncompleteReadError(actual_bytes=5, expected_bytes=10),
    lambda bx: bx.ReadTimeoutError(endpoint_url="http://127.0.0.1:1/bkt/key"),
    lambda bx: bx.ConnectTimeoutError(endpoint_url="http://127.0.0.1:1/bkt/key"),
    lambda bx: bx.EndpointConnectionError(endpoint_url="http://127.0.0.1:1/bkt/key"),
    lambda bx: bx.ConnectionClosedError(endpoint_url="http://127.0.0.1:1/bkt/key"),
])
def test_s3_transport_errors_are_transient(make):
    from botocore import exceptions as bx

    assert isinstance(s3_error(make(bx), "s3", URI), TransientError)


def test_s3_missing_credentials_are_unavailable():
    from botocore.exceptions import NoCredentialsError, PartialCredentialsError

    for exc in (NoCredentialsError(), PartialCredentialsError(provider="env", cred_var="secret")):
        assert isinstance(s3_error(exc, "s3", URI), StoreNotAvailable)


@pytest.mark.parametrize(("exc_name", "expected"), [
    ("NotFound", Unconfirmed404), ("Forbidden", StoreNotAvailable), ("Unauthorized", StoreNotAvailable),
    ("TooManyRequests", TransientError), ("ServiceUnavailable", TransientError),
    ("InternalServerError", TransientError), ("BadRequest", FetchFailed),
])
def test_gcs_api_errors(exc_name, expected):
    from google.api_core import exceptions as gx

    assert isinstance(gcs_error(getattr(gx, exc_name)("msg"), "gs", "gs://b/k"), expected)


def test_gcs_transport_and_auth_errors():
    import requests
    from google.auth import exceptions as ax

    assert isinstance(gcs_error(requests.exceptions.ChunkedEncodingError("cut"), "gs", "gs://b/k"), TransientError)
    assert isinstance(gcs_error(requests.exceptions.ConnectionError("reset"), "gs", "gs://b/k"), TransientError)
    assert isinstance(gcs_error(ax.RefreshError("revoked"), "gs", "gs://b/k"), StoreNotAvailable)
    assert isinstance(gcs_error(ax.DefaultCredentialsError("none"), "gs", "gs://b/k"), StoreNotAvailable)
    assert isinstance(gcs_error(ax.TransportError("metadata down"), "gs", "gs://b/k"), TransientError)


def test_obstore_errors():
    from obstore import exceptions as ox

    assert isinstance(obstore_error(FileNotFoundError("Object at location k not found"), "s3", URI), Unconfirmed404)
    body = "Object at location k not found: ... 404 Not Found: <?xml ?><Error><Code>{}</Code><Message>m</Message>"
    assert isinstance(obstore_error(FileNotFoundError(body.format("NoSuchKey")), "s3", URI), NotFoundInStore)
    assert isinstance(obstore_error(FileNotFoundError(body.format("NoSuchBucket")), "s3", URI), StoreNotAvailable)
    assert isinstance(obstore_error(ox.InvalidPathError("a//b"), "s3", URI), FastUnsupported)
    unimplemented = ox.GenericError("Error performing GET http://h/b/k - Server returned non-2xx status code: 501")
    assert isinstance(obstore_error(unimplemented, "gs", URI), FastUnsupported)
    assert obstore_error(unimplemented, "gs", URI).endpoint_wide
    config = ox.GenericError("Generic HTTP client error: HTTP error: builder error")
    assert isinstance(obstore_error(config, "s3", URI), StoreNotAvailable)
    assert isinstance(obstore_error(ox.PermissionDeniedError("denied"), "s3", URI), StoreNotAvailable)
    assert isinstance(obstore_error(ox.UnauthenticatedError("no"), "s3", URI), StoreNotAvailable)
    generic = ox.GenericError("Error performing GET http://h/b/k - Server returned non-2xx status code: 503")
    assert isinstance(obstore_error(generic, "s3", URI), TransientError)
    bad = ox.GenericError("Error performing GET http://h/b/k - Client error with status 400 Bad Request")
    assert isinstance(obstore_error(bad, "s3", URI), FetchFailed)


def test_a_ranged_gets_refusal_is_told_from_the_blobs_answer():
    from obstore import exceptions as ox

    def generic(tail: str) -> Exception:
        return ox.GenericError(f"Generic S3 error: Error performing GET http://h/b/k in 1ms - {tail}")

    assert range_refusal(generic("Server returned non-2xx status code: 416 Range Not Satisfiable: <Error>")) == "empty"
    assert range_refusal(ox.GenericError("Generic S3 error: Received non-partial response when range requested")
                         ) == "range"
    assert range_refusal(ox.GenericError("Failed to parse value for CONTENT_RANGE header: x")) == "range"
    assert range_refusal(generic("Client error with status 400 Bad Request: <Error>")) == "request"
    for plain in ("Server returned non-2xx status code: 503 Service Unavailable", "Client error with status 403",
                  "Server returned non-2xx status code: 501 Not Implemented",  # refuses obstore's paths, ranged or not
                  "Client error with status 429 Too Many Requests", "Server returned non-2xx status code: 500",
                  "error sending request: connection reset"):
        assert range_refusal(generic(plain)) is None, plain  # what a plain GET meets too: it stands
    body = "Object at location k not found: ... 404 Not Found: <?xml ?><Error><Code>NoSuchKey</Code>"
    assert range_refusal(FileNotFoundError(body)) is None  # a 404 is the blob's answer


AZ_URI = "az://container/key"


@pytest.mark.parametrize(("status", "code", "expected"), [
    (404, "BlobNotFound", NotFoundInStore), (404, "ContainerNotFound", StoreNotAvailable),
    (404, "ResourceNotFound", Unconfirmed404), (404, None, Unconfirmed404),
    (403, "AuthenticationFailed", StoreNotAvailable), (403, "AuthorizationFailure", StoreNotAvailable),
    (403, "AuthorizationPermissionMismatch", StoreNotAvailable), (401, None, StoreNotAvailable),
    (503, "ServerBusy", TransientError), (429, None, TransientError), (500, "InternalError", TransientError),
    (500, "OperationTimedOut", TransientError), (409, "BlobArchived", NotFoundInStore),
    (400, "InvalidHeaderValue", FetchFailed),
])
def test_azure_service_answers(status, code, expected):
    """Azure's answers as the SDK path reads them (status and ``x-ms-error-code``), through the one map."""
    mapped = azure_error(HTTPStatusError(status, code, "msg"), "az", AZ_URI)
    assert isinstance(mapped, expected), mapped
    if expected is NotFoundInStore:
        assert not isinstance(mapped, FetchFailed)
    if code == "ContainerNotFound":
        assert "container" in str(mapped) or "bucket" in str(mapped)


def test_azure_throttling_is_flagged_for_the_limiter():
    for status, code in ((503, "ServerBusy"), (429, None), (503, None)):
        mapped = azure_error(HTTPStatusError(status, code, "busy", retry_after=2.0), "az", AZ_URI)
        assert isinstance(mapped, TransientError) and mapped.throttled and mapped.retry_after == 2.0
    assert not azure_error(HTTPStatusError(500, "InternalError", "x"), "az", AZ_URI).throttled


def test_azure_sdk_exceptions():
    from azure.core import exceptions as zx

    for exc in (zx.ServiceRequestError("connection refused"), zx.ServiceResponseError("reset by peer"),
                zx.ServiceResponseTimeoutError("read timed out"), zx.IncompleteReadError("cut"),
                ConnectionResetError("reset")):
        assert isinstance(azure_error(exc, "az", AZ_URI), TransientError), exc
    for exc in (zx.ClientAuthenticationError("no credential in the chain"),):
        assert isinstance(azure_error(exc, "az", AZ_URI), StoreNotAvailable)
    assert "configuration error" in str(azure_error(ValueError("bad URL"), "az", AZ_URI))


def test_obstore_azure_answers():
    body = "GET failed: 404 Not Found: <?xml ?><Error><Code>{}</Code><Message>m</Message></Error>"
    assert isinstance(obstore_error(FileNotFoundError(body.format("BlobNotFound")), "az", AZ_URI), NotFoundInStore)
    assert isinstance(obstore_error(FileNotFoundError(body.format("ContainerNotFound")), "az", AZ_URI),
                      StoreNotAvailable)
    assert isinstance(obstore_error(FileNotFoundError("404 Not Found"), "az", AZ_URI), Unconfirmed404)


def test_our_errors_pass_through_and_short_reads_are_transient():
    too_large = BlobTooLarge("s3", URI, 10, 5)
    for mapper in (s3_error, gcs_error, azure_error, obstore_error):
        assert mapper(too_large, "s3", URI) is too_large
        assert isinstance(mapper(ShortRead("cut"), "s3", URI), TransientError)


def test_size_and_length_checks():
    check_size("s3", URI, 5, 5)
    check_size("s3", URI, None, 5)
    with pytest.raises(BlobTooLarge, match="6 bytes"):
        check_size("s3", URI, 6, 5)
    assert read_exactly(b"abc", 3) == b"abc" and read_exactly(b"abc", None) == b"abc"
    with pytest.raises(ShortRead):
        read_exactly(b"ab", 3)


@given(status=st.integers(100, 599), code=st.one_of(st.none(), st.text(max_size=20)))
def test_status_mapping_is_total_and_never_calls_a_failure_missing(status, code):
    mapped = status_error(status, code, "message", "s3", URI)
    assert isinstance(mapped, (NotFoundInStore, StoreNotAvailable, FetchFailed, TransientError, Unconfirmed404))
    if isinstance(mapped, NotFoundInStore):  # missing only on an answer about the object, whatever the status
        assert code in ("NoSuchKey", "notFound", "NoSuchObject", "InvalidObjectState", "BlobNotFound", "BlobArchived")


@given(secret=st.text(st.characters(codec="ascii", categories=("L", "N")), min_size=8, max_size=30))
def test_clean_removes_signed_query_strings(secret):
    text = f"GET https://bkt.s3.amazonaws.com/key?X-Amz-Credential={secret}&X-Amz-Signature={secret} failed"
    cleaned = clean(text)
    assert secret not in cleaned and "https://bkt.s3.amazonaws.com/key" in cleaned


@given(secret=st.text(st.characters(codec="ascii", categories=("L", "N")), min_size=8, max_size=30))
def test_clean_removes_query_strings_of_request_paths_and_connection_string_keys(secret):
    """HTTP libraries quote the request path with its query ("with url: /container/key?...&sig=..."): an Azure
    SAS signature must not reach a message that way, nor an account key from a connection string."""
    text = (f"HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: /acct/ctr/key?sv=1&"
            f"sig={secret} (Caused by NewConnectionError); AccountName=a;AccountKey={secret}==;")
    cleaned = clean(text)
    assert secret not in cleaned and "/acct/ctr/key?<query removed>" in cleaned


def test_a_puts_refusal_is_told_from_the_services_answer():
    from obstore import exceptions as ox

    def generic(tail: str) -> Exception:
        return ox.GenericError(f"Generic GCS error: Error performing PUT http://h/b/k in 1ms - {tail}")

    told = write_refusal(generic('Server returned non-2xx status code: 400 Bad Request: {"error":{"code":400,'
                                 '"message":"invalid uploadType","errors":[{"reason":"Bad Request"}]}}'))
    assert told is not None and "400" in told and "invalid uploadType" in told
    assert "405" in (write_refusal(generic("Client error with status 405 Method Not Allowed")) or "")
    assert "501" in (write_refusal(generic("Server returned non-2xx status code: 501 Not Implemented")) or "")
    unread = write_refusal(ox.GenericError("Generic GCS error: Unable to extract metadata from headers: ETag Header "
                                           "missing from response\n\nDebug source: ..."))
    assert unread is not None and "ETag" in unread and "Debug" not in unread
    for answer in ("Server returned non-2xx status code: 503 Service Unavailable", "Client error with status 403",
                   "Client error with status 401", "Client error with status 429 Too Many Requests",
                   "Server returned non-2xx status code: 500", "error sending request: connection reset"):
        assert write_refusal(generic(answer)) is None, answer  # the service's own answer: mapped as ever
