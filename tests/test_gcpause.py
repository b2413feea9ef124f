"""The cyclic collector pauses for a request and resumes after the last concurrent one; it is
never turned on if the host had turned it off, and overlapping requests do not starve it."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from triage.gcpause import GcPause


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_the_collector_is_off_during_a_request_and_on_after_it() -> None:
    gc.enable()
    pause = GcPause()

    with pause():
        assert not gc.isenabled()

    assert gc.isenabled()


def test_it_resumes_only_when_the_last_of_overlapping_requests_ends() -> None:
    gc.enable()
    pause = GcPause()
    first_in, second_done = threading.Event(), threading.Event()

    def other() -> None:
        with pause():
            first_in.set()
            second_done.wait(5)

    thread = threading.Thread(target=other)
    thread.start()
    first_in.wait(5)
    with pause():
        pass
    assert not gc.isenabled()  # the other request still runs
    second_done.set()
    thread.join(5)

    assert gc.isenabled()


def test_a_collector_the_host_turned_off_stays_off() -> None:
    gc.disable()
    pause = GcPause()

    with pause():
        pass

    assert not gc.isenabled()


def test_requests_that_overlap_for_longer_than_the_limit_collect_once_meanwhile() -> None:
    gc.enable()
    now = [0.0]
    pause = GcPause(longest=5.0, clock=lambda: now[0])
    collections = gc.get_stats()[2]["collections"]

    outer = pause()
    outer.__enter__()
    now[0] = 6.0
    with pause():
        pass  # ends while `outer` still runs, 6 s after the pause began

    assert gc.get_stats()[2]["collections"] == collections + 1
    assert not gc.isenabled()
    outer.__exit__(None, None, None)
    assert gc.isenabled()
