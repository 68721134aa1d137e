"""glibc malloc tuning (``bitstore.engine.allocator``): applied once per process by get_many, skipped when the user
tunes glibc or opts out, and it does stop freed blob memory from going back to the kernel (measured in page
faults, in fresh processes)."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

PROBE = textwrap.dedent("""
    import resource, sys
    from bitstore import MemoryRaw
    from bitstore.engine import allocator as _memory

    list(MemoryRaw().get_many([], progress=False))  # get_many tunes the allocator
    faults = []
    for _ in range(6):  # 64 live 1 MiB blobs at once, then all freed, as a window of fetched blobs is
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        blobs = [b"\x01" * (1 << 20) for _ in range(64)]  # written, so its pages are touched
        del blobs
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(_memory._tuned, sum(faults[2:]) // 4)
""")


def probe(**env: str) -> tuple[bool, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "BITSTORE_TUNE_MALLOC"}
    run = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True,
                         check=True)
    tuned, faults = run.stdout.split()
    return tuned == "True", int(faults)


@pytest.mark.skipif(not GLIBC, reason="the tuning is for glibc's malloc")
def test_get_many_tunes_glibc_so_freed_blob_memory_is_reused():
    tuned, faults = probe()
    untuned, untuned_faults = probe(BITSTORE_TUNE_MALLOC="0")
    assert tuned and not untuned
    # 64 MiB of blobs is 16,384 pages: without the tuning each round faults most of them in again.
    assert untuned_faults > 8_000, untuned_faults
    assert faults < untuned_faults / 8, (faults, untuned_faults)


@pytest.mark.skipif(not GLIBC, reason="the tuning is for glibc's malloc")
@pytest.mark.parametrize("env", [{"BITSTORE_TUNE_MALLOC": "off"}, {"MALLOC_TRIM_THRESHOLD_": "1000000"},
                                 {"MALLOC_MMAP_THRESHOLD_": "65536"}])
def test_tuning_is_skipped_when_the_user_chose(env):
    tuned, _ = probe(**env)
    assert not tuned


def test_tune_allocator_is_idempotent_and_never_raises():
    from bitstore.engine import allocator as _memory

    first = _memory.tune_allocator()
    assert _memory.tune_allocator() is first
    assert first == (GLIBC and os.environ.get("BITSTORE_TUNE_MALLOC", "1") not in ("0", "off")
                     and not any(k.startswith("MALLOC_") and k.endswith("_") for k in os.environ))

