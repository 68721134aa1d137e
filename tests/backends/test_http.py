"""The http tier against a real HTTP server on 127.0.0.1 (``tests/servers/http_blobs.py``), on both transports:
what each status means, retries and the limiter, short bodies, headers as secrets, plain-http refusal, read-only.
"""
from __future__ import annotations

import hashlib
import logging
import pickle

import pytest

from bitstore import FetchFailed, HTTPRaw, NotFoundInStore, Sha1Composite, Sha1Store, StoreNotAvailable, from_url
from bitstore.engine.batch import ENGINES
from bitstore.ground.limits import ManualClock
from bitstore.ground.retry import RetryPolicy
from tests.conformance._rows import RecordingSleep, blob, policy

pytestmark = pytest.mark.timeout(60)

TRANSPORTS = ("sdk", "fast")
TOKEN = "s3cr3t-token-value-42"


def raw(transport: str, **kwargs) -> HTTPRaw:
    kwargs.setdefault("retry", policy(RecordingSleep(), attempts=3))
    kwargs.setdefault("timeout", (2.0, 2.0))
    return HTTPRaw(transport=transport, **kwargs)


def answer(store, uri):
    try:
        return "bytes", bytes(store.get(uri))
    except NotFoundInStore as exc:
        return "missing", exc
    except StoreNotAvailable as exc:
        return "unavailable", exc
    except FetchFailed as exc:
        return "failed", exc


# --- statuses -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("kind", "expected", "requests"), [
    ("404", "missing", 1), ("410", "missing", 1), ("401", "unavailable", 1), ("403", "unavailable", 1),
    ("500", "failed", 3), ("502", "failed", 3), ("503", "failed", 3), ("429", "failed", 3), ("short", "failed", 3),
    ("400", "failed", 1),
])
def test_every_status_means_the_same_on_both_transports(blob_server, transport, kind, expected, requests):
    data = blob(5000)
    name = blob_server.put(data)
    blob_server.always(name, kind)
    got, detail = answer(raw(transport), f"{blob_server.url}/blobs/{name}")
    assert got == expected, f"{transport} {kind}: {got} {detail}"
    assert blob_server.requests[name] == requests, f"{transport} {kind}: {blob_server.requests[name]} requests"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_found_and_missing(blob_server, transport):
    data = blob(70_000)
    name = blob_server.put(data)
    store = raw(transport)
    assert store.get(f"{blob_server.url}/blobs/{name}") == data
    with pytest.raises(NotFoundInStore):
        store.get(f"{blob_server.url}/blobs/{'0' * 40}")
    assert store.head(f"{blob_server.url}/blobs/{name}") == len(data)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_short_body_once_is_retried_and_never_a_truncated_blob(blob_server, transport):
    data = blob(70_000)
    name = blob_server.put(data)
    blob_server.answer(name, "short", "short")
    assert raw(transport).get(f"{blob_server.url}/blobs/{name}") == data
    assert blob_server.requests[name] == 3


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_5xx_then_found(blob_server, transport):
    data = blob(3000)
    name = blob_server.put(data)
    blob_server.answer(name, "500", "503")
    sleep = RecordingSleep()
    assert raw(transport, retry=policy(sleep)).get(f"{blob_server.url}/blobs/{name}") == data
    assert len(sleep.waits) == 2


# --- throttling reaches the tier's limiter -------------------------------------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("status", ["429", "503"])
def test_retry_after_is_honoured_and_backs_the_tier_off(blob_server, transport, status):
    data = blob(2000)
    sha1 = blob_server.put(data)
    blob_server.retry_after = 2
    blob_server.answer(sha1, status, status)
    sleep = RecordingSleep()
    store = Sha1Composite(clock=ManualClock())  # the limiter's waits on a fake clock: no real sleep
    store.append_source(Sha1Store(raw(transport, retry=policy(sleep)), f"{blob_server.url}/blobs/"), max_rate=1000.0)
    assert store.get(sha1) == data
    honoured = [w for w in sleep.waits if w >= 2.0]
    unseen = 1 if transport == "fast" else 0  # obstore does not show Retry-After: a blob's first one is not seen
    assert len(honoured) == 2 - unseen, sleep.waits
    limiter = store.tiers[0].limiter()
    assert limiter.backoffs >= 1, "the tier's limiter never heard of the throttling"
    assert store.stats().tiers[0].retries == 2 if hasattr(store.stats(), "tiers") else True


# --- headers are secrets ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_headers_env_is_sent_and_a_wrong_token_is_unavailable(blob_server, transport, monkeypatch):
    data = blob(1000)
    name = blob_server.put(data)
    blob_server.token = TOKEN
    monkeypatch.setenv("BLOB_TOKEN", f"Bearer {TOKEN}")
    store = raw(transport, headers_env={"Authorization": "BLOB_TOKEN"})
    assert store.get(f"{blob_server.url}/blobs/{name}") == data
    monkeypatch.setenv("BLOB_TOKEN", "Bearer wrong-token-value")
    got, error = answer(raw(transport, headers_env={"Authorization": "BLOB_TOKEN"}), f"{blob_server.url}/blobs/{name}")
    assert got == "unavailable"
    assert "wrong-token-value" not in str(error)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_header_values_never_in_repr_str_pickle_errors_or_logs(blob_server, transport, monkeypatch, caplog):
    name = blob_server.put(blob(100))
    blob_server.token = TOKEN
    monkeypatch.setenv("BLOB_TOKEN", f"Bearer {TOKEN}")
    caplog.set_level(logging.DEBUG)
    env_store = raw(transport, headers_env={"Authorization": "BLOB_TOKEN"})
    inline_store = raw(transport, headers={"X-Api-Key": "inline-key-value-99"})
    assert env_store.get(f"{blob_server.url}/blobs/{name}")
    blob_server.token = None
    blob_server.always(name, "500")
    with pytest.raises(FetchFailed) as failed:
        inline_store.get(f"{blob_server.url}/blobs/{name}")
    composite = from_url(f"{blob_server.url}/blobs/", transport=transport, headers_env={"Authorization": "BLOB_TOKEN"})
    shown = [repr(env_store), str(env_store), repr(inline_store), repr(inline_store.headers), repr(vars(env_store)),
             repr(vars(inline_store)), str(failed.value), repr(composite), str(composite.stats()), caplog.text]
    for text in shown:
        assert TOKEN not in text and "inline-key-value-99" not in text, text[:300]
    pickled = pickle.dumps(env_store) + pickle.dumps(composite)
    assert TOKEN.encode() not in pickled
    blob_server._always.clear()
    blob_server.token = TOKEN
    assert pickle.loads(pickle.dumps(env_store)).get(f"{blob_server.url}/blobs/{name}")  # read again from the env


def test_a_server_that_echoes_the_token_does_not_get_it_into_a_message(blob_server, monkeypatch):
    from bitstore.backends._errors import mask

    assert mask(f"bad token {TOKEN} given", [TOKEN]) == "bad token *** given"
    assert "abc" not in mask("Authorization: Bearer abc.def", [])


# --- plain http, read-only, templates ------------------------------------------------------------------------
def test_plain_http_only_to_loopback_unless_allowed():
    from bitstore.backends.http import http_refused

    store = HTTPRaw(transport="sdk", retry=1)
    with pytest.raises(StoreNotAvailable, match="allow_http"):
        store.get("http://blobs.example.com/blobs/x")  # refused before any connection is made
    assert http_refused("http://blobs.example.com/x", allow_http=True) is None
    assert http_refused("https://blobs.example.com/x", allow_http=False) is None
    for host in ("127.0.0.1", "localhost", "[::1]", "127.3.4.5"):
        assert http_refused(f"http://{host}:8080/x", allow_http=False) is None


def test_put_is_refused_naming_the_tier():
    store = HTTPRaw(name="cdn")
    with pytest.raises(NotImplementedError, match="cdn"):
        store.put("https://example.com/x", b"data")


@pytest.mark.parametrize("transport", ["sdk", "auto"])
def test_a_query_template(blob_server, transport):
    data = blob(1234)
    sha1 = blob_server.put(data)
    store = from_url(blob_server.url + "/api/files?hash={sha1}", transport=transport)
    assert store.get(sha1.upper()) == data
    assert [r.status for r in store.get_many([sha1, "1" * 40], progress=False)] == ["found", "missing"]


def test_explicit_fast_refuses_a_url_it_cannot_address(blob_server):
    store = HTTPRaw(transport="fast", retry=1)
    with pytest.raises(StoreNotAvailable, match="transport"):
        store.get(f"{blob_server.url}/api/files?hash=abc")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_get_many_and_the_event_loop_route_agree(blob_server, transport):
    present = {blob_server.put(blob(500 + i, seed=i)): blob(500 + i, seed=i) for i in range(20)}
    absent = [hashlib.sha1(str(i).encode()).hexdigest() for i in range(10)]
    store = from_url(f"{blob_server.url}/blobs/", transport=transport)
    keys = [*present, *absent]
    for engine in ENGINES:
        results = list(store.get_many(keys, progress=False, engine=engine))
        assert [r.status for r in results] == ["found"] * 20 + ["missing"] * 10, engine
        assert all(r.data == present[r.key] for r in results[:20])


def test_pickled_store_rebuilds_its_pool(blob_server):
    data = blob(100)
    name = blob_server.put(data)
    store = raw("sdk")
    assert store.get(f"{blob_server.url}/blobs/{name}") == data
    copy = pickle.loads(pickle.dumps(store))
    assert copy.get(f"{blob_server.url}/blobs/{name}") == data
    assert copy.timeout == store.timeout and copy.retry == store.retry


def test_retry_policy_is_the_one_policy():
    assert isinstance(HTTPRaw(retry={"attempts": 2}).retry, RetryPolicy)


# --- through the fault proxy: a present blob is never missing ------------------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_present_blob_is_never_missing_under_any_fault(blob_server, fault_proxy, transport):
    from tests.servers.faults import FAULTS

    present = {blob_server.put(blob(3000 + i, seed=i)): blob(3000 + i, seed=i) for i in range(24)}
    absent = [hashlib.sha1(f"absent{i}".encode()).hexdigest() for i in range(8)]
    proxy = fault_proxy(blob_server.url, rate=0.6, faults=list(FAULTS), stall_seconds=0.6, seed=7)
    store = raw(transport, timeout=(1.0, 0.3), retry=policy(RecordingSleep(), attempts=3, deadline=5.0))
    answers = {}
    for key in [*present, *absent]:
        answers[key] = answer(store, f"{proxy.url}/blobs/{key}")
    for key, data in present.items():
        kind, got = answers[key]
        assert kind in ("bytes", "failed"), f"{transport}: a present blob answered {kind}: {got}"
        if kind == "bytes":
            assert got == data
    for key in absent:
        assert answers[key][0] in ("missing", "failed"), answers[key]
    assert sum(proxy.stats[f] for f in FAULTS) > 0, proxy.stats
    assert sum(answers[k][0] == "bytes" for k in present) >= 12, "the retries should carry most blobs through"
