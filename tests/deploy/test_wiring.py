"""Values one role takes from another: the proxy follows what the host's engine serves.

deploy.py hands the engine role's result (Ollama's or llama-server's) to the proxy role; each
`proxy_*` key left empty takes the engine's value, one set explicitly wins. Pure functions of
data, no host needed.
"""

from __future__ import annotations

from typing import Any

import pytest
from pyinfra.api.exceptions import DeployError

from roles.base import local_address
from roles.llamacpp.defaults import DEFAULTS as LLAMACPP
from roles.llamacpp.endpoint import LlamaServer
from roles.ollama.defaults import DEFAULTS as OLLAMA
from roles.ollama.endpoint import OllamaServer
from roles.proxy.defaults import DEFAULTS as PROXY
from roles.proxy.settings import backend_settings

SERVER = OllamaServer("http://10.0.0.5:11500", ("main:7b", "small:1b"), 16384, "5m")


def test_role_defaults_give_the_proxy_ollamas_values() -> None:
    # The values group_data/all.py used to copy from the Ollama keys by hand.
    settings = backend_settings(PROXY, OllamaServer.from_data(OLLAMA))
    assert settings == {
        "PROXY_ENGINE": "ollama",
        "PROXY_ENGINE_URL": f"http://127.0.0.1:{OLLAMA['ollama_port']}",
        "PROXY_DEFAULT_MODEL": OLLAMA["ollama_models"][0],
        "PROXY_NUM_CTX": OLLAMA["ollama_context_length"],
        "PROXY_KEEP_ALIVE": OLLAMA["ollama_keep_alive"],
        "PROXY_BACKGROUND_MODEL": OLLAMA["ollama_models"][1],
    }


def test_empty_proxy_keys_follow_an_overridden_ollama_role() -> None:
    assert backend_settings(PROXY, SERVER) == {
        "PROXY_ENGINE": "ollama",
        "PROXY_ENGINE_URL": "http://10.0.0.5:11500",
        "PROXY_DEFAULT_MODEL": "main:7b",
        "PROXY_NUM_CTX": 16384,
        "PROXY_KEEP_ALIVE": "5m",
        "PROXY_BACKGROUND_MODEL": "small:1b",
    }


def test_proxy_keys_set_explicitly_win() -> None:
    data: dict[str, Any] = {
        **PROXY,
        "proxy_ollama_url": "http://gpu-box:11434",
        "proxy_default_model": "other:14b",
        "proxy_num_ctx": 8192,
        "proxy_keep_alive": "1h",
        "proxy_background_model": "tiny:0.5b",
    }
    assert backend_settings(data, SERVER) == {
        "PROXY_ENGINE": "ollama",
        "PROXY_ENGINE_URL": "http://gpu-box:11434",
        "PROXY_DEFAULT_MODEL": "other:14b",
        "PROXY_NUM_CTX": 8192,
        "PROXY_KEEP_ALIVE": "1h",
        "PROXY_BACKGROUND_MODEL": "tiny:0.5b",
    }


def test_the_older_name_of_the_engine_url_still_counts() -> None:
    settings = backend_settings({**PROXY, "proxy_ollama_url": "http://gpu-box:11434"}, SERVER)
    assert settings["PROXY_ENGINE_URL"] == "http://gpu-box:11434"
    both = {**PROXY, "proxy_ollama_url": "http://old:1", "proxy_engine_url": "http://new:2"}
    assert backend_settings(both, SERVER)["PROXY_ENGINE_URL"] == "http://new:2"


def test_a_llamacpp_host_gives_the_proxy_its_openai_compatible_server() -> None:
    server = LlamaServer.from_data({**LLAMACPP, "llamacpp_port": 8081})
    assert backend_settings(PROXY, server) == {
        "PROXY_ENGINE": "openai",
        "PROXY_ENGINE_URL": "http://127.0.0.1:8081",
        "PROXY_DEFAULT_MODEL": LLAMACPP["llamacpp_model_name"],
        "PROXY_NUM_CTX": server.context_length,
        "PROXY_BACKGROUND_MODEL": "",  # one model per llama-server
    }


@pytest.mark.parametrize(
    ("models", "background", "expected"),
    [
        (("main:7b",), None, ""),  # one model: no background model
        (("main:7b", "small:1b"), "", ""),  # switched off explicitly
    ],
    ids=["one-model", "switched-off"],
)
def test_background_model_can_be_off(
    models: tuple[str, ...], background: str | None, expected: str
) -> None:
    server = OllamaServer(SERVER.url, models, SERVER.context_length, SERVER.keep_alive)
    settings = backend_settings({**PROXY, "proxy_background_model": background}, server)
    assert settings["PROXY_BACKGROUND_MODEL"] == expected


def test_no_model_anywhere_is_refused_with_a_sentence() -> None:
    server = OllamaServer(SERVER.url, (), SERVER.context_length, SERVER.keep_alive)
    with pytest.raises(DeployError, match="proxy_default_model is empty and ollama_models names"):
        backend_settings(PROXY, server)


@pytest.mark.parametrize(
    ("bind", "address"),
    [("", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"), ("::", "127.0.0.1"), ("10.0.0.5", "10.0.0.5")],
)
def test_a_wildcard_bind_is_reached_on_loopback(bind: str, address: str) -> None:
    assert local_address(bind) == address


def test_ollama_server_is_reached_where_it_binds() -> None:
    data = {**OLLAMA, "ollama_bind": "0.0.0.0", "ollama_port": 11500}
    assert OllamaServer.from_data(data).url == "http://127.0.0.1:11500"
