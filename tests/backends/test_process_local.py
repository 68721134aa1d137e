"""Per-process clients and fork: a child never frees what it inherited, and stores are no reference cycles."""
from __future__ import annotations

import gc
import os
import weakref

import pytest

from bitstore import GSRaw, S3Raw
from bitstore.backends._client import ProcessLocal


class Tracked:
    """Writes to a pipe when freed, so a parent can tell whether a child freed it."""

    def __init__(self, fd: int):
        self.fd = fd

    def __del__(self):
        if self.fd >= 0:
            os.write(self.fd, b"freed")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_frees_the_value_it_inherited():
    read_end, write_end = os.pipe()
    holder = ProcessLocal(lambda: Tracked(write_end))
    inherited = holder.get()
    pid = os.fork()
    if pid == 0:  # the child: drop every reference it has, collect, build its own value, drop that too
        try:
            del inherited
            gc.collect()
            own = holder.get()
            assert own is not None
            own.fd = -1  # the child's own value may be freed; it must not write
            del holder
            gc.collect()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    os.close(write_end)
    inherited.fd = -1  # the parent's own copy, freed at the end of the test, must not write either
    with os.fdopen(read_end, "rb") as pipe:
        assert pipe.read() == b""  # nothing was freed in the child


@pytest.mark.parametrize("make", [lambda: S3Raw(endpoint_url="http://127.0.0.1:1"),
                                  lambda: GSRaw(endpoint="http://127.0.0.1:1")])
def test_a_store_is_freed_at_once_not_by_the_cyclic_collector(make):
    gc.disable()
    try:
        store = make()
        ref = weakref.ref(store)
        del store
        assert ref() is None
    finally:
        gc.enable()


def test_a_holder_whose_store_is_gone_says_so():
    class Owner:
        def make(self):
            return object()

    owner = Owner()
    holder = ProcessLocal(owner.make)
    assert holder.get() is not None
    other = ProcessLocal(Owner().make)  # its owner is freed at once
    with pytest.raises(RuntimeError, match="no longer exists"):
        other.get()
