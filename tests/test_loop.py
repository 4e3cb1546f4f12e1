from __future__ import annotations

import asyncio
import threading

import pytest

from ib_nice_funcs._loop import LoopThread
from ib_nice_funcs.errors import RequestTimeoutError


@pytest.fixture
def loop_thread():
    lt = LoopThread(name="test-loop")
    yield lt
    lt.stop()


def test_coroutine_is_built_and_run_in_the_loop_thread(loop_thread):
    seen = {}

    async def work():
        seen["thread"] = threading.current_thread().name
        seen["loop"] = asyncio.get_running_loop()
        return 42

    assert loop_thread.run(work, 2) == 42
    assert seen["thread"] == "test-loop"
    assert seen["loop"] is loop_thread.loop


def test_timeout_raises_and_cancels(loop_thread):
    cancelled = threading.Event()

    async def hang():
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(RequestTimeoutError, match="within 0.2 s"):
        loop_thread.run(hang, 0.2, "hang")
    assert cancelled.wait(2)


def test_many_threads_at_once(loop_thread):
    results = []

    async def echo(k):
        await asyncio.sleep(0)
        return k

    def worker(k):
        results.append(loop_thread.run(lambda: echo(k), 5))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == list(range(16))


def test_call_from_inside_a_running_event_loop(loop_thread):
    async def caller():  # e.g. a Jupyter cell: a loop is already running here
        return loop_thread.run(lambda: asyncio.sleep(0, result="ok"), 2)

    assert asyncio.run(caller()) == "ok"


def test_call_from_the_loop_thread_is_refused(loop_thread):
    async def reenter():
        return loop_thread.run(lambda: asyncio.sleep(0), 1)

    with pytest.raises(RuntimeError, match="own event-loop thread"):
        loop_thread.run(reenter, 2)


def test_stop_runs_hooks_and_joins(loop_thread):
    ran = threading.Event()

    async def hook():
        ran.set()

    loop_thread.run(lambda: asyncio.sleep(0), 2)
    loop_thread.add_shutdown_hook(hook)
    loop_thread.stop()
    assert ran.is_set()
    # it restarts lazily
    assert loop_thread.run(lambda: asyncio.sleep(0, result=1), 2) == 1
