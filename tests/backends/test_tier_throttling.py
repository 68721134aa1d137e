"""A cloud tier behind a proxy answering SlowDown / 429: the backend's retries go through the tier's limiter
(each retry waits for its turn and the limiter backs off), and the tier's statistics count them."""
from __future__ import annotations

import pytest

from bitstore import Composite


@pytest.mark.parametrize("fault", ["slowdown", "429", "503"])
def test_backend_throttling_reaches_the_tier_limiter(cloud, fault_proxy, fault):
    cloud.create_bucket("bkt")
    uri = cloud.put("bkt", "blob", b"throttled blob")
    proxy = fault_proxy(cloud.endpoint, fail_first=3, faults=[fault])
    raw = cloud.raw_via(proxy.url, retry={"attempts": 5, "base_delay": 0.001, "max_delay": 0.002})
    store = Composite()
    store.append_source(raw, max_concurrency=2, max_rate=1000)
    assert store.get(uri) == b"throttled blob"
    assert proxy.stats[fault] >= 3
    stats = store.stats()[store.tier_names[0]]
    assert (stats.hits, stats.retries) == (1, 3) and stats.calls == 4
    limiter = store.tiers[0].limiter()
    assert limiter.in_flight == 0 and stats.throttled == limiter.backoffs
    if fault == "slowdown" and cloud.scheme == "gs":
        return  # S3's SlowDown code in a 503 means nothing to GCS: a plain 503 to its SDK, maybe not to obstore
    throttling = fault != "503"  # a plain 503 is retried, but it is not a "slow down"
    assert stats.throttled == (3 if throttling else 0)
    assert (limiter.rate < 1000) is throttling
