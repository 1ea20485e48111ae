"""Waves: independent calls sent together, results in call order, failures after the wave."""

from __future__ import annotations

import threading
import time
from functools import partial

import pytest

from remediate.salesforce import mdclient, waves


def test_results_come_back_in_call_order() -> None:
    assert waves.run_wave([partial(pow, i, 2) for i in range(12)], limit=4) == \
        [i * i for i in range(12)]


def test_calls_of_a_wave_are_in_flight_together_up_to_the_limit() -> None:
    barrier = threading.Barrier(3, timeout=10)  # breaks unless three calls wait at once

    def call() -> int:
        return barrier.wait()

    assert sorted(waves.run_wave([call, call, call], limit=3)) == [0, 1, 2]


def _most_in_flight(limit: int, calls: int = 5) -> int:
    """The most calls of one wave running at the same moment; each call stays in flight long
    enough (20 ms) for another thread to start beside it, were the wave to allow it."""
    lock = threading.Lock()
    running, most = [0], [0]

    def call() -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1

    waves.run_wave([call] * calls, limit=limit)
    return most[0]


def test_limit_one_runs_the_calls_one_after_another() -> None:
    assert _most_in_flight(limit=1) == 1


def test_a_wave_never_has_more_than_its_limit_in_flight() -> None:
    assert _most_in_flight(limit=2) == 2


def test_every_call_finishes_before_the_first_failure_is_raised() -> None:
    done: list[int] = []

    def ok(i: int) -> int:
        done.append(i)
        return i

    def bad(message: str) -> int:
        raise ValueError(message)

    calls = [lambda: bad("first"), lambda: ok(1), lambda: bad("second"), lambda: ok(3)]
    with pytest.raises(ValueError, match="first"):
        waves.run_wave(calls, limit=4)
    assert sorted(done) == [1, 3]


def test_calls_know_they_run_inside_a_wave() -> None:
    assert waves.inside() is False
    assert waves.run_wave([waves.inside, waves.inside], limit=2) == [True, True]
    assert waves.run_wave([waves.inside], limit=2) == [True]
    assert waves.inside() is False


@pytest.mark.parametrize(("calls", "limit", "rounds"),
                         [(0, 8, 0), (1, 8, 1), (8, 8, 1), (9, 8, 2), (17, 8, 3), (5, 1, 5)])
def test_rounds_of_a_wave(calls: int, limit: int, rounds: int) -> None:
    assert waves.rounds_for(calls, limit) == rounds


def test_the_metadata_wsdl_is_parsed_once_per_process() -> None:
    """Once per process: the trimmed WSDL, plus the full one only if some client needed a type
    the trimmed one lacks (ADR 0028)."""
    first = mdclient.wsdl_document()
    parsed = mdclient.parse_count()
    assert mdclient.wsdl_document() is first
    assert mdclient.parse_count() == parsed <= 2
