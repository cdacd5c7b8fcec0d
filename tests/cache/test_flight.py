"""SingleFlight.run says whether the caller's own produce() made its result."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from proxy_app.cache.flight import SingleFlight

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_leader_generated_followers_did_not() -> None:
    flights = SingleFlight()
    gate = asyncio.Event()

    async def produce() -> dict[str, str]:
        await gate.wait()
        return {"answer": "shared"}

    callers = [asyncio.create_task(flights.run("k", produce)) for _ in range(3)]
    await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.wait_for(asyncio.gather(*callers), 2)
    assert [generated for _, generated in results] == [True, False, False]
    assert all(value == {"answer": "shared"} for value, _ in results)


async def test_a_follower_that_reruns_after_a_failure_generated() -> None:
    flights = SingleFlight()
    gate = asyncio.Event()
    calls = 0

    async def produce() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await gate.wait()
            raise RuntimeError("upstream died")
        return "own"

    leader = asyncio.create_task(flights.run("k", produce))
    await asyncio.sleep(0.01)
    follower = asyncio.create_task(flights.run("k", produce))
    await asyncio.sleep(0.01)
    gate.set()
    with pytest.raises(RuntimeError):
        await leader
    assert await asyncio.wait_for(follower, 2) == ("own", True)


async def test_a_request_that_arrived_during_the_flight_joins_it_after_it_ended() -> None:
    """The burst race: looked up the cache while the flight ran, reached the table after."""
    flights = SingleFlight()
    calls = 0

    async def produce() -> dict[str, int]:
        nonlocal calls
        calls += 1
        return {"call": calls}

    arrived = time.perf_counter()
    first = await flights.run("k", produce)
    late = await flights.run("k", produce, arrived=arrived)
    assert (first, late) == (({"call": 1}, True), ({"call": 1}, False))
    assert late[0] is not first[0]  # a copy: the leader's object stays its own
    assert flights.in_flight() == 0


async def test_a_request_that_arrived_after_the_flight_ended_starts_its_own() -> None:
    flights = SingleFlight()
    calls = 0

    async def produce() -> int:
        nonlocal calls
        calls += 1
        return calls

    await flights.run("k", produce)
    assert await flights.run("k", produce, arrived=time.perf_counter()) == (2, True)


async def test_a_finished_flight_is_forgotten_after_its_linger() -> None:
    flights = SingleFlight(linger=0.05)
    arrived = time.perf_counter()

    async def produce() -> str:
        return "answer"

    await flights.run("k", produce)
    await asyncio.sleep(0.1)
    assert await flights.run("k", produce, arrived=arrived) == ("answer", True)


async def test_a_flight_whose_answer_was_not_stored_does_not_linger() -> None:
    """`no-store`: a finished flight is joined only by requests that overlapped it."""
    flights = SingleFlight()
    calls = 0

    async def produce() -> int:
        nonlocal calls
        calls += 1
        return calls

    arrived = time.perf_counter()
    assert await flights.run("k", produce, linger=False) == (1, True)
    assert await flights.run("k", produce, arrived=arrived) == (2, True)


async def test_a_lookup_that_failed_open_joins_a_stored_answer_that_finished_before_it() -> None:
    """Redis busy or down when the request looked (arrived = -inf, routes/messages.py): the
    lingering stored answer is the hit it missed."""
    flights = SingleFlight()
    calls = 0

    async def produce() -> int:
        nonlocal calls
        calls += 1
        return calls

    await flights.run("k", produce)
    assert await flights.run("k", produce, arrived=-math.inf) == (1, False)
