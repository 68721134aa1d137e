"""obstore's completions handed to a loop in batches (bitstore.engine.wakeups; a caller's, and the engine's own): one
wake-up for all that came meanwhile, in order, every other callback untouched, a caller's loop's own method back
once no user holds it."""
from __future__ import annotations

import asyncio
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitstore.engine.wakeups import Batched, batch_wakeups, is_completor, release_wakeups


class CheckedCompletor:
    """Stands for pyo3-async-runtimes' completor (recognised by its type's name): settles ``future`` unless it
    was cancelled, as the real one does."""

    def __call__(self, future: asyncio.Future, complete, value) -> None:
        if not future.cancelled():
            complete(value)


def _from_threads(loop: asyncio.AbstractEventLoop, calls: list[tuple]) -> None:
    """Each call made with ``loop.call_soon_threadsafe`` from a thread of its own, one after the other."""
    for call in calls:
        thread = threading.Thread(target=lambda c=call: loop.call_soon_threadsafe(*c))
        thread.start()
        thread.join()


class CountingLoop(asyncio.SelectorEventLoop):
    """A loop that counts the calls of its own ``call_soon_threadsafe`` (each one a wake-up)."""

    def __init__(self) -> None:
        super().__init__()
        self.wakes = 0

    def call_soon_threadsafe(self, callback, *args, context=None):
        self.wakes += 1
        return super().call_soon_threadsafe(callback, *args, context=context)


def test_completions_that_come_together_wake_the_loop_once_in_order():
    async def main() -> tuple[list, int, int]:
        loop = asyncio.get_running_loop()
        assert batch_wakeups(loop)
        futures = [loop.create_future() for _ in range(50)]
        futures[7].cancel()
        _from_threads(loop, [(CheckedCompletor(), f, f.set_result, i) for i, f in enumerate(futures)])
        await asyncio.sleep(0)
        release_wakeups(loop)
        return [f.result() for i, f in enumerate(futures) if i != 7], loop.wakes, len(futures)

    loop = CountingLoop()
    try:
        values, wakes, n = loop.run_until_complete(main())
    finally:
        loop.close()
    assert values == [i for i in range(n) if i != 7]
    assert wakes == 1  # the loop was busy (never awaited) while the threads handed their 50 completions over


def test_other_callbacks_go_to_the_loop_as_they_came():
    async def main() -> list:
        loop = asyncio.get_running_loop()
        assert batch_wakeups(loop)
        seen = []
        done = asyncio.Event()
        handle = loop.call_soon_threadsafe(seen.append, "plain")
        assert isinstance(handle, asyncio.Handle)  # the loop's own answer, cancellable as ever
        cancelled = loop.call_soon_threadsafe(seen.append, "cancelled")
        cancelled.cancel()
        _from_threads(loop, [(seen.append, "from a thread"), (done.set,)])
        await done.wait()
        release_wakeups(loop)
        return seen

    assert asyncio.run(main()) == ["plain", "from a thread"]


def test_a_failing_completion_is_reported_and_the_batch_goes_on():
    async def main() -> tuple[list, list]:
        loop = asyncio.get_running_loop()
        errors = []
        loop.set_exception_handler(lambda _loop, context: errors.append(context["exception"]))
        assert batch_wakeups(loop)
        futures = [loop.create_future() for _ in range(3)]

        def broken(value):
            raise ValueError(value)

        _from_threads(loop, [(CheckedCompletor(), futures[0], futures[0].set_result, 0),
                             (CheckedCompletor(), futures[1], broken, "bad"),
                             (CheckedCompletor(), futures[2], futures[2].set_result, 2)])
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        release_wakeups(loop)
        return [f.done() for f in futures], errors

    done, errors = asyncio.run(main())
    assert done == [True, False, True]
    assert [str(e) for e in errors] == ["bad"]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=12))
def test_the_loops_own_method_is_back_once_every_user_released_it(holds):
    """``holds``: True takes the batching, False releases one (never more than were taken)."""
    loop = asyncio.new_event_loop()
    try:
        users = 0
        for take in holds:
            if take:
                assert batch_wakeups(loop)
                users += 1
            elif users:
                release_wakeups(loop)
                users -= 1
            assert isinstance(loop.__dict__.get("call_soon_threadsafe"), Batched) == (users > 0)
        for _ in range(users):
            release_wakeups(loop)
        assert "call_soon_threadsafe" not in loop.__dict__
    finally:
        loop.close()


def test_a_loop_whose_method_cannot_be_replaced_keeps_its_own():
    class Fixed(asyncio.SelectorEventLoop):
        __slots__ = ()

        def __setattr__(self, name, value):
            if name == "call_soon_threadsafe":
                raise AttributeError(name)
            super().__setattr__(name, value)

    loop = Fixed()
    try:
        assert not batch_wakeups(loop)
        release_wakeups(loop)  # nothing to release: no error
        assert "call_soon_threadsafe" not in loop.__dict__
    finally:
        loop.close()


def test_a_closed_loop_still_refuses_completions():
    loop = asyncio.new_event_loop()
    assert batch_wakeups(loop)
    batched = loop.call_soon_threadsafe
    loop.close()
    future_loop = asyncio.new_event_loop()
    try:
        with pytest.raises(RuntimeError, match="closed"):
            batched(CheckedCompletor(), future_loop.create_future(), print, 1)
    finally:
        future_loop.close()


def test_only_the_completor_is_recognised():
    assert is_completor(CheckedCompletor())
    assert not is_completor(print)
    assert not is_completor(lambda: None)


def test_the_engine_loop_batches_obstores_completions_and_still_sees_their_tails(monkeypatch):
    """The engine's own loop (``engine.loop``): completions of the futures it made for obstore wake it once per
    batch, in order, and each still counts as its tail begun (what exit waits for)."""
    from bitstore.engine import loop as engine_loop

    writes = []
    write_to_self = asyncio.selector_events.BaseSelectorEventLoop._write_to_self
    monkeypatch.setattr(asyncio.selector_events.BaseSelectorEventLoop, "_write_to_self",
                        lambda loop: (writes.append(threading.get_ident()), write_to_self(loop)))

    async def main() -> list:
        loop = asyncio.get_running_loop()
        loop.home = threading.get_ident()
        loop.for_tokio = True
        futures = [loop.create_future() for _ in range(40)]
        loop.for_tokio = False
        assert all(type(f) is engine_loop._TokioFuture and f in engine_loop._unbegun for f in futures)
        _from_threads(loop, [(CheckedCompletor(), f, f.set_result, i) for i, f in enumerate(futures)])
        assert not any(f in engine_loop._unbegun for f in futures)  # every tail seen as begun
        return [await f for f in futures]

    loop = engine_loop._EngineLoop()
    try:
        assert loop.run_until_complete(main()) == list(range(40))
    finally:
        loop.close()
    assert len([w for w in writes if w != threading.get_ident()]) == 1  # one wake-up from the threads, not 40
