"""The llamacpp role's pure parts: the window from the GPU profile, llama-server's command line,
what a unit or supervisor line cannot carry, and the release asset's architecture."""

from __future__ import annotations

import pytest

from roles.llamacpp.defaults import DEFAULTS
from roles.llamacpp.endpoint import (
    LlamaServer,
    asset_problem,
    command_line,
    profile_for,
    server_args,
    unsafe_args,
    window,
)


@pytest.mark.parametrize(
    ("vram_mib", "context", "parallel"),
    [(0, 32768, 1), (8192, 16384, 1), (12288, 32768, 1), (16384, 32768, 2), (24564, 32768, 1),
     (49140, 65536, 2), (4096, 16384, 1)],
)  # fmt: skip
def test_window_comes_from_the_gpu_profile(vram_mib: int, context: int, parallel: int) -> None:
    assert window(DEFAULTS, vram_mib) == (context, parallel)
    assert (profile_for(vram_mib).context, profile_for(vram_mib).parallel) == (context, parallel)


def test_window_set_in_the_data_wins() -> None:
    data = {**DEFAULTS, "llamacpp_context_length": 16384, "llamacpp_parallel": 3}
    assert window(data, 49140) == (16384, 3)


def test_ctx_size_holds_every_slot() -> None:
    """llama-server splits --ctx-size between its slots: each slot gets the whole window."""
    data = {**DEFAULTS, "llamacpp_context_length": 16384, "llamacpp_parallel": 2}
    args = server_args(data, "/m.gguf")
    assert args[args.index("--ctx-size") + 1] == "32768"
    assert args[args.index("--parallel") + 1] == "2"


def test_server_args_bind_loopback_with_metrics_and_extras() -> None:
    data = {**DEFAULTS, "llamacpp_extra_args": ["--override-kv", "llama.context_length=int:32768"]}
    args = server_args(data, "/models/m.gguf")
    assert args[:6] == ["--model", "/models/m.gguf", "--alias", "qwen2.5-coder:7b", "--host",
                        "127.0.0.1"]  # fmt: skip
    assert "--metrics" in args
    assert args[-2:] == ["--override-kv", "llama.context_length=int:32768"]


def test_served_endpoint() -> None:
    served = LlamaServer.from_data({**DEFAULTS, "llamacpp_bind": "0.0.0.0"})
    assert served == LlamaServer("http://127.0.0.1:8080", "qwen2.5-coder:7b", 32768, 1)


def test_command_line_quotes_blanks_only() -> None:
    assert command_line(["/bin/x", "a b", "c"]) == '/bin/x "a b" c'


@pytest.mark.parametrize("arg", ["", "it's", 'say "x"', "100%", "$HOME", "a\\b", "a\nb"])
def test_unsafe_args_are_found(arg: str) -> None:
    assert unsafe_args(["--ok", arg]) == [arg]


@pytest.mark.parametrize(
    ("url", "arch", "ok"),
    [("https://x/llama-b1-bin-ubuntu-vulkan-x64.tar.gz", "amd64", True),
     ("https://x/llama-b1-bin-ubuntu-cuda-13.4-arm64.tar.gz", "arm64", True),
     ("https://x/llama-b1-bin-ubuntu-vulkan-x64.tar.gz", "arm64", False),
     ("https://x/llama-b1-bin-win-cpu-x64.zip", "amd64", False)],
)  # fmt: skip
def test_release_asset_must_match_the_host(url: str, arch: str, ok: bool) -> None:
    assert (asset_problem(url, arch) is None) is ok
