"""Pytest plugin: a real, TLS-only `redis-server` on 127.0.0.1 with throwaway certificates.

Register with ``pytest_plugins = ["devkit.redis_tls"]``. Needs the ``redis-server`` binary
(Debian package ``redis-server``, built with TLS); tests using the fixtures are skipped without it.

Fixtures
    redis_tls_certs          (session)  RedisTLSCerts: CA, server cert (SAN DNS:localhost,
                                        IP:127.0.0.1), client cert for mTLS, an unrelated CA.
    redis_tls_server         (session)  running RedisTLSServer (tls-auth-clients optional);
                                        shared by tests, so use unique keys.
    redis_tls_server_fn      (function) a private RedisTLSServer for kill/restart tests.
    redis_tls_server_factory (function) make_server(auth_clients="yes"|"no"|"optional",
                                        server_cert_file=..., server_key_file=...) -> a started
                                        private server; all are killed at teardown.

The helpers (``make_certs``, ``RedisTLSServer``) work without pytest, e.g. for bench/.
"""

from __future__ import annotations

import atexit
import secrets
import shutil
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import trustme

from devkit.ports import free_port

__all__ = [
    "RedisTLSCerts",
    "RedisTLSServer",
    "free_port",
    "make_certs",
    "redis_tls_certs",
    "redis_tls_server",
    "redis_tls_server_factory",
    "redis_tls_server_fn",
]

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class RedisTLSCerts:
    directory: Path
    ca_file: Path  # CA that signed the server and client certs
    server_cert_file: Path  # chain, SAN DNS:localhost + IP:127.0.0.1
    server_key_file: Path
    client_cert_file: Path  # for mutual TLS
    client_key_file: Path
    wrong_ca_file: Path  # an unrelated CA: verification against it must fail


def make_certs(directory: Path) -> RedisTLSCerts:
    """Write a fresh CA, server and client certificates and an unrelated CA into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="llm-selfhost test CA")
    server = ca.issue_cert("localhost", HOST)
    client = ca.issue_cert("proxy-client.test")
    wrong = trustme.CA(organization_name="unrelated CA")

    certs = RedisTLSCerts(
        directory=directory,
        ca_file=directory / "ca.crt",
        server_cert_file=directory / "server.crt",
        server_key_file=directory / "server.key",
        client_cert_file=directory / "client.crt",
        client_key_file=directory / "client.key",
        wrong_ca_file=directory / "wrong-ca.crt",
    )
    ca.cert_pem.write_to_path(str(certs.ca_file))
    wrong.cert_pem.write_to_path(str(certs.wrong_ca_file))
    for leaf, cert_path, key_path in (
        (server, certs.server_cert_file, certs.server_key_file),
        (client, certs.client_cert_file, certs.client_key_file),
    ):
        cert_path.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(key_path))
        key_path.chmod(0o600)
    return certs


_LIVE: weakref.WeakSet[RedisTLSServer] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_LIVE):
        server.stop()


class RedisTLSServer:
    """A TLS-only redis-server subprocess (``port 0``) on 127.0.0.1 with a random password.

    ``stop()`` kills it, ``start()`` starts it again on the same port (data is not persisted).
    """

    def __init__(
        self,
        certs: RedisTLSCerts,
        workdir: Path,
        *,
        port: int | None = None,
        password: str | None = None,
        auth_clients: str = "optional",
        server_cert_file: Path | None = None,
        server_key_file: Path | None = None,
    ) -> None:
        self.certs = certs
        self.server_cert_file = server_cert_file or certs.server_cert_file
        self.server_key_file = server_key_file or certs.server_key_file
        self.workdir = workdir
        self.port = port or free_port()
        self.password = password or secrets.token_urlsafe(18)
        self.auth_clients = auth_clients
        self.host = HOST
        self.process: subprocess.Popen[bytes] | None = None
        self.conf_file = workdir / f"redis-{self.port}.conf"
        self.log_file = workdir / f"redis-{self.port}.log"
        workdir.mkdir(parents=True, exist_ok=True)
        _LIVE.add(self)

    # connection details -------------------------------------------------------------
    @property
    def url(self) -> str:
        """``rediss://:<password>@127.0.0.1:<port>/0``."""
        return f"rediss://:{self.password}@{self.host}:{self.port}/0"

    @property
    def url_without_password(self) -> str:
        return f"rediss://{self.host}:{self.port}/0"

    def client(self, **overrides: object) -> redis.Redis:
        """A synchronous admin client (verifies the server cert, no client cert)."""
        kwargs: dict[str, object] = {
            "host": self.host,
            "port": self.port,
            "password": self.password,
            "ssl": True,
            "ssl_ca_certs": str(self.certs.ca_file),
            "ssl_cert_reqs": "required",
            "socket_timeout": 2.0,
            "socket_connect_timeout": 2.0,
        }
        if self.auth_clients == "yes":
            kwargs["ssl_certfile"] = str(self.certs.client_cert_file)
            kwargs["ssl_keyfile"] = str(self.certs.client_key_file)
        kwargs.update(overrides)
        return redis.Redis(**kwargs)  # type: ignore[arg-type]

    # lifecycle ----------------------------------------------------------------------
    def _write_conf(self) -> None:
        lines = [
            f"bind {self.host}",
            "protected-mode yes",
            "port 0",
            f"tls-port {self.port}",
            f"tls-cert-file {self.server_cert_file}",
            f"tls-key-file {self.server_key_file}",
            f"tls-ca-cert-file {self.certs.ca_file}",
            f"tls-auth-clients {self.auth_clients}",
            'tls-protocols "TLSv1.2 TLSv1.3"',
            f"requirepass {self.password}",
            'save ""',
            "appendonly no",
            "daemonize no",
            f"dir {self.workdir}",
            f"logfile {self.log_file}",
            "maxmemory 64mb",
            "maxmemory-policy allkeys-lru",
        ]
        self.conf_file.write_text("\n".join(lines) + "\n")
        self.conf_file.chmod(0o600)

    def start(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self._write_conf()
        self.process = subprocess.Popen(
            [REDIS_SERVER, str(self.conf_file)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                # Liveness probe only: the chain is verified, the name is not (a test may serve
                # a deliberately mismatched certificate).
                probe = self.client(
                    socket_timeout=0.5, socket_connect_timeout=0.5, ssl_check_hostname=False
                )
                with probe as admin:
                    if admin.ping():
                        return
            except (redis.RedisError, OSError) as exc:
                last = exc
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer within {timeout}s: {last}\n")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.kill()
        process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"


# ---------------------------------------------------------------------------- fixtures


def _need_redis_server() -> None:
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed (apt-get install redis-server)")


@pytest.fixture(scope="session")
def redis_tls_certs(tmp_path_factory: pytest.TempPathFactory) -> RedisTLSCerts:
    return make_certs(tmp_path_factory.mktemp("redis-tls-certs"))


@pytest.fixture(scope="session")
def redis_tls_server(
    redis_tls_certs: RedisTLSCerts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisTLSServer]:
    _need_redis_server()
    server = RedisTLSServer(redis_tls_certs, tmp_path_factory.mktemp("redis-tls-session"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_tls_server_factory(
    redis_tls_certs: RedisTLSCerts, tmp_path: Path
) -> Iterator[Callable[..., RedisTLSServer]]:
    _need_redis_server()
    servers: list[RedisTLSServer] = []

    def make(auth_clients: str = "optional", **kwargs: Any) -> RedisTLSServer:
        server = RedisTLSServer(
            redis_tls_certs,
            Path(tempfile.mkdtemp(prefix="redis-", dir=tmp_path)),
            auth_clients=auth_clients,
            **kwargs,
        )
        servers.append(server)
        server.start()
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def redis_tls_server_fn(
    redis_tls_server_factory: Callable[..., RedisTLSServer],
) -> RedisTLSServer:
    return redis_tls_server_factory()
