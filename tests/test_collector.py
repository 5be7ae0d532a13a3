"""sim.collector: full collections paused while simulating, thresholds restored."""

from __future__ import annotations

import gc
import os
import signal
import threading
import time

import pytest

from sim import collector
from sim.collector import FULL_COLLECTIONS_PAUSABLE, young_collections_only

pytestmark = pytest.mark.skipif(
    not FULL_COLLECTIONS_PAUSABLE, reason="the collector ignores the third threshold here"
)


def _full_collections() -> int:
    return int(gc.get_stats()[2]["collections"])


def test_the_thresholds_come_back_after_nested_pauses_and_errors() -> None:
    before = gc.get_threshold()
    with young_collections_only():
        inside = gc.get_threshold()
        assert inside[:2] == before[:2] and inside[2] > 10**6
        with young_collections_only():
            assert gc.get_threshold() == inside
        assert gc.get_threshold() == inside  # the outer pause still holds
    assert gc.get_threshold() == before
    with pytest.raises(KeyError), young_collections_only():
        raise KeyError("x")
    assert gc.get_threshold() == before


def test_young_collections_go_on_and_full_ones_wait() -> None:
    class Node:
        def __init__(self) -> None:
            self.me = self  # a cycle: only the collector frees it

    gc.collect()
    # unpaused, a full collection comes once the survivors exceed a quarter of the
    # objects that survived the last one: keep more than that
    n = len(gc.get_objects()) // 2 + 100_000
    full, young = _full_collections(), gc.get_stats()[0]["collections"]
    keep = []
    with young_collections_only():
        for _ in range(n):
            keep.append(Node())
            Node()  # garbage, found young
    assert _full_collections() == full
    assert gc.get_stats()[0]["collections"] > young + 100
    del keep


def test_pauses_in_threads_restore_the_thresholds_once() -> None:
    before = gc.get_threshold()
    start = threading.Barrier(4)
    seen: list[int] = []

    def work() -> None:
        start.wait()
        for _ in range(200):
            with young_collections_only():
                seen.append(gc.get_threshold()[2])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 800 and min(seen) > 10**6  # paused inside every one
    assert gc.get_threshold() == before


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_a_forked_child_is_not_stuck_on_a_lock_held_in_the_parent() -> None:
    with collector._lock:  # as if another thread of the parent held it at the fork
        pid = os.fork()
        if pid == 0:  # the child: never back into the test session
            code = 1
            try:
                with young_collections_only():
                    pass
                code = 0
            finally:
                os._exit(code)
    for _ in range(100):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the child waited for the parent's lock")
