"""The event loop's lag: how late it runs a timer, observed into a histogram for /metrics.

Everything the proxy does shares one event loop; a step that holds it (a CPU-heavy count
before proxy_app.offload, a huge trailer) delays every other request and /health by the same
amount. A timer armed every INTERVAL seconds and run that much late shows it.
"""

from __future__ import annotations

import asyncio

from prometheus_client import Histogram

INTERVAL = 0.1


async def watch_lag(histogram: Histogram, interval: float = INTERVAL) -> None:
    """Observe the loop's scheduling delay every `interval` seconds, until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        histogram.observe(max(loop.time() - due, 0.0))
