"""``bitstore demo`` as a user runs it: exit 0, the second pass served by the cache."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from bitstore.cli.demo import build_demo_store


def _run_demo(*args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("bitstore")
    cmd = [str(script), "demo", *args] if script.exists() else [sys.executable, "-m", "bitstore.cli", "demo", *args]
    env = {**os.environ, "BITSTORE_HOME": os.devnull}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)


def test_demo_console_script():
    proc = _run_demo()
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    pass1 = re.search(r"pass 1: .*?(\d+) API calls -> (.*)", out)
    pass2 = re.search(r"pass 2: .*?(\d+) API calls -> (.*)", out)
    assert pass1 and pass2, out
    served1 = dict(re.findall(r"([\w-]+): (\d+)", pass1.group(2)))
    served2 = dict(re.findall(r"([\w-]+): (\d+)", pass2.group(2)))
    assert int(served1["paid-api"]) > 0 and "cache" not in served1
    assert "paid-api" not in served2
    assert served2["cache"] == served1["paid-api"]  # what the API served first, the cache serves second
    assert served2["archive"] == served1["archive"]
    # on the second pass the keys nobody has are answered by the negative cache: no API call at all
    assert int(pass2.group(1)) == 0 < int(served2["missing"]) == int(served1["missing"]) == 3
    peak = re.search(r"at most (\d+) API calls at once \(max_concurrency=(\d+)\)", out)
    assert peak and 1 <= int(peak.group(1)) <= int(peak.group(2)) == 4
    assert "the 3 keys no tier has were answered from memory on pass 2" in out
    stats = re.search(r"paid-api: (\d+) calls, (\d+) hits, (\d+) misses, 0 failed", out)
    assert stats and (int(stats.group(1)), int(stats.group(2)), int(stats.group(3))) == (
        int(pass1.group(1)), int(served1["paid-api"]), 3)
    assert "second pass served from the cache: yes" in out
    assert proc.stderr == ""  # not a terminal: no progress bar


def test_demo_module_entry_point():
    proc = subprocess.run([sys.executable, "-m", "bitstore.cli", "demo", "--no-progress"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "second pass served from the cache: yes" in proc.stdout


def test_demo_store_in_process(tmp_path):
    store, api, keys = build_demo_store(str(tmp_path), n_archive=5, n_api=5, api_delay=0)
    first = {r.key: r for r in store.get_many(keys)}
    second = {r.key: r for r in store.get_many(keys)}
    assert sum(r.source == "paid-api" for r in first.values()) == 5
    assert sum(r.source == "cache" for r in second.values()) == 5
    assert sum(r.status == "missing" for r in second.values()) == 3
    assert api.calls == 5 + 3  # hits once, the 3 missing keys once: pass 2 answers them from the negative cache
    assert api.peak <= 4 and store.stats()["paid-api"].calls == 8
    assert len(os.listdir(tmp_path / "cache")) == 5
