"""Redis: TLS only on loopback, the CA and the password both required, an evicting cache."""

from __future__ import annotations

import shlex
from typing import Any

import pytest
from testinfra.host import Host

from roles.redis import CONFIG
from roles.secrets import secrets_dir

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
def password() -> str:
    path = secrets_dir() / "redis_password"
    if not path.is_file():
        pytest.fail(f"{path} is missing: these hosts were not deployed from this machine.")
    return path.read_text().strip()


def _cli(data: dict[str, Any], *args: str, ca: bool = True, tls: bool = True) -> str:
    """redis-cli on the host against the TLS port (add the password with REDISCLI_AUTH)."""
    argv = ["redis-cli", "-h", "127.0.0.1", "-p", str(data["redis_tls_port"])]
    if tls:
        argv.append("--tls")
    if ca:
        argv += ["--cacert", f"{data['redis_tls_dir']}/ca.crt"]
    return shlex.join([*argv, *args]) + " 2>&1"


def _authed(data: dict[str, Any], password: str, *args: str) -> str:
    return f"REDISCLI_AUTH={shlex.quote(password)} {_cli(data, *args)}"


def test_runs_under_its_manager(program) -> None:
    assert program("redis", unit="redis-server").is_running


@pytest.mark.parametrize("address, listening", [("127.0.0.1", True), ("0.0.0.0", False)])
def test_tls_port_on_loopback_only(
    host: Host, host_data: dict[str, Any], address: str, listening: bool
) -> None:
    assert host.socket(f"tcp://{address}:{host_data['redis_tls_port']}").is_listening is listening


def test_plaintext_port_is_off(host: Host, host_data: dict[str, Any], password: str) -> None:
    out = host.run(_authed(host_data, password, "CONFIG", "GET", "port")).stdout
    assert out.split() == ["port", "0"]


def test_plaintext_client_gets_no_answer(host: Host, host_data: dict[str, Any]) -> None:
    out = host.run(_cli(host_data, "PING", tls=False, ca=False)).stdout
    assert "PONG" not in out and "NOAUTH" not in out


def test_ping_with_ca_and_password(host: Host, host_data: dict[str, Any], password: str) -> None:
    result = host.run(_authed(host_data, password, "PING"))
    assert result.stdout.strip() == "PONG", "TLS PING with the CA and the password failed"


def test_without_password_noauth(host: Host, host_data: dict[str, Any]) -> None:
    assert "NOAUTH" in host.run(_cli(host_data, "PING")).stdout


def test_without_the_ca_handshake_fails(host: Host, host_data: dict[str, Any]) -> None:
    out = host.run(_cli(host_data, "PING", ca=False)).stdout
    assert "certificate verify failed" in out.lower()


def test_eviction_policy(host: Host, host_data: dict[str, Any], password: str) -> None:
    out = host.run(_authed(host_data, password, "CONFIG", "GET", "maxmemory-policy")).stdout
    assert out.split() == ["maxmemory-policy", host_data["redis_maxmemory_policy"]]


@pytest.mark.parametrize("name", ["redis.key", "redis.crt", "ca.crt"])
def test_tls_files_root_owned_redis_readable(
    host: Host, host_data: dict[str, Any], name: str
) -> None:
    f = host.file(f"{host_data['redis_tls_dir']}/{name}")
    assert (f.user, f.group) == ("root", "redis")
    assert f.mode & 0o022 == 0  # nobody but root writes it


@pytest.mark.parametrize("path", ["{tls_dir}/redis.key", CONFIG])
def test_secret_files_not_world_readable(host: Host, host_data: dict[str, Any], path: str) -> None:
    f = host.file(path.format(tls_dir=host_data["redis_tls_dir"]))
    assert f.exists and f.group == "redis" and f.mode & 0o007 == 0
