"""A cloud tier behind a proxy answering SlowDown / 429: the backend's retries go through the tier's limiter
(each retry waits for its turn and the limiter backs off on "slow down" answers), and the tier's statistics
count them."""
from __future__ import annotations

import pytest

from bitstore import Composite


@pytest.mark.parametrize("fault", ["slowdown", "429", "503", "reset"])
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
    # the backend's retries (3, or more when a transport's own check is retried too) are calls of the tier
    assert stats.hits == 1 and stats.retries >= 3 and stats.calls == stats.retries + 1
    limiter = store.tiers[0].limiter()
    assert limiter.in_flight == 0 and stats.throttled == limiter.backoffs
    throttling = fault != "reset"  # the backends flag 429, 503 and SlowDown as load; a reset is retried only
    assert (stats.throttled >= 3) if throttling else (stats.throttled == 0)
    assert (limiter.rate < 1000) is throttling
