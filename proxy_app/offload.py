"""The worker pool: CPU-heavy steps run here so the event loop only waits.

Rendering and tokenizing a prompt, translating and parsing a large body are pure CPU work;
on the event loop one large request froze every other request and /health for seconds.
`Offload.run` hands such a step to a pool of PROXY_WORKER_THREADS threads and awaits it.
Threads, not processes: the token counter's memo and calibration are shared state, and a
hand-off costs tens of microseconds, not a copy of the request. tiktoken encodes without
the GIL; what still holds it (building a large body's Python objects in orjson and
pydantic) is bounded by PROXY_MAX_BODY_BYTES (docs/proxy_app.md).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

# Past these sizes a step goes to the pool; below, the hand-off would cost more than the step.
# Claude Code's requests are 50-150 KB with a few hundred content blocks at most; a 1 MiB
# body parses in 2-20 ms, 100,000 content blocks took 60-90 ms of the loop to translate.
INLINE_BODY_BYTES = 256 * 1024
INLINE_BLOCKS = 2000


class Offload:
    """A bounded pool of worker threads for CPU-heavy steps."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="proxy-cpu")

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` on a worker thread; its exception is raised here.

        A caller cancelled while waiting (its client left) does not stop the step, which
        finishes on its thread; the pool's size bounds how many run at once.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    async def run_if(self, heavy: bool, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn` on the pool when the step is `heavy`, else right here."""
        if heavy:
            return await self.run(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    def close(self) -> None:
        """Drop queued steps; running ones finish on their threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)
