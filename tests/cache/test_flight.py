"""SingleFlight.run says whether the caller's own produce() made its result."""

from __future__ import annotations

import asyncio

import pytest

from proxy_app.flight import SingleFlight

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
