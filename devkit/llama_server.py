"""A llama-server on this machine for tests and benchmarks: the pinned build and SmolLM2 from
devkit.llamacpp (built and cached once), on a free loopback port, stopped on exit.

    with running_llama_server(context=4096) as server:
        server.url, server.counters()
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import httpx

from devkit import llamacpp
from devkit.ports import free_port

SMOLLM2 = llamacpp.MODEL_NAME  # the name it answers to first


@dataclass(frozen=True)
class LocalLlama:
    url: str
    process: subprocess.Popen[bytes]

    def counters(self) -> dict[str, float]:
        """llama-server's own /metrics counters (`llamacpp:` prefix dropped)."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        values = {}
        for line in text.splitlines():
            if line.startswith("llamacpp:"):
                name, _, value = line.partition(" ")
                values[name.removeprefix("llamacpp:")] = float(value)
        return values

    def prompt_seen(self) -> tuple[int, int]:
        """(prompt tokens evaluated, prompt tokens taken from the KV cache) so far: their sum
        over a request is the engine's own count of the prompt it received."""
        counters = self.counters()
        return int(counters["prompt_tokens_total"]), int(counters["prompt_tokens_cached_total"])

    def busy(self) -> bool:
        slots = httpx.get(f"{self.url}/slots", timeout=10).json()
        return any(slot.get("is_processing") for slot in slots)


@contextlib.contextmanager
def running_llama_server(
    *, context: int = 32768, slots: int = 1, aliases: Sequence[str] = (SMOLLM2,)
) -> Iterator[LocalLlama]:
    """llama-server with SmolLM2 (its window stretched to `context` per slot, as the sandbox's
    llamacpp hosts run it), answering to each of `aliases`."""
    port = free_port()
    argv = [
        str(llamacpp.ensure_server(log=_quiet)), "-m", str(llamacpp.ensure_model(log=_quiet)),
        "--alias", ",".join(aliases), "--host", "127.0.0.1", "--port", str(port),
        "-c", str(context * slots), "-np", str(slots), "-t", "2", "--metrics",
        "--override-kv", f"llama.context_length=int:{max(context, 8192)}",
    ]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = LocalLlama(f"http://127.0.0.1:{port}", process)
    try:
        _wait_healthy(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_healthy(server: LocalLlama, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"llama-server exited with {server.process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"llama-server at {server.url} did not become healthy in {timeout:g} s")


def _quiet(_line: str) -> None:
    pass
