"""Redis as the proxy's cache: Debian's redis-server, TLS only, on loopback, with a password.

Under systemd the packaged ``redis-server.service`` (already hardened by Debian) runs with
our ``/etc/redis/redis.conf``; without systemd a supervisor program ``redis`` runs the same
binary and file in the foreground.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pyinfra.api.exceptions import DeployError
from pyinfra.context import host
from pyinfra.operations import files

from roles import secrets, services
from roles.base import deploy, install_packages
from roles.redis.defaults import DEFAULTS
from roles.services import Manager

__all__ = ["RedisClient", "deploy_redis"]

ROLE_DIR = Path(__file__).parent
CONFIG = "/etc/redis/redis.conf"


@dataclass(frozen=True)
class RedisClient:
    """How a client reaches the Redis the role set up (or ``redis_external_url``)."""

    url: str = field(repr=False)  # rediss://:password@host:port/db: holds the password
    ca_file: str  # the CA certificate on the control machine, "" = the system's trust store


@deploy("Deploy Redis", data_defaults=DEFAULTS)
def deploy_redis(manager: Manager) -> RedisClient:
    """
    Install Redis with TLS material from ``secrets/`` and run it as a program.

    Skipped when ``redis_external_url`` is set: the proxy then uses that server.

    + manager: the host's service manager, from ``services.ensure_manager``

    .. code:: python

        redis = deploy_redis(manager)  # redis.url, redis.ca_file for the proxy
    """
    data = host.data
    # An external Redis wanted? Then there is nothing to install here.
    if data.redis_external_url:
        host.noop("redis_external_url is set; not installing Redis")
        return _external_client()

    install_packages(["redis-server"], "Redis")
    ca_crt, _ = secrets.ca()
    crt, key = secrets.server_cert(host.name)
    password = secrets.token("redis_password")
    tls_dir = data.redis_tls_dir
    files.directory(
        name="Create the Redis TLS folder", path=tls_dir, user="root", group="redis", mode="2750"
    )
    material = [
        files.put(
            name=f"Upload {dest}",
            src=str(src),
            dest=f"{tls_dir}/{dest}",
            user="root",
            group="redis",
            mode=mode,
        )
        for src, dest, mode in (
            (ca_crt, "ca.crt", "644"),
            (crt, "redis.crt", "644"),
            (key, "redis.key", "640"),
        )
    ]
    conf = files.template(
        name="Render redis.conf",
        src=str(ROLE_DIR / "templates" / "redis.conf.j2"),
        dest=CONFIG,
        user="root",
        group="redis",
        mode="640",
        jinja_env_kwargs=services.jinja_options(),
        bind=data.redis_bind,
        tls_port=data.redis_tls_port,
        tls_dir=tls_dir,
        tls_auth_clients=data.redis_tls_auth_clients,
        tls_protocols=data.redis_tls_protocols,
        password=password,
        maxmemory=data.redis_maxmemory,
        maxmemory_policy=data.redis_maxmemory_policy,
        extra_config=str(data.redis_extra_config).strip(),
        # Debian's unit reads this pidfile (systemd makes /run/redis, its RuntimeDirectory);
        # supervisor tracks the pid itself, and /run starts empty after a container restart.
        pidfile="/run/redis/redis-server.pid" if manager.systemd else "",
    )
    manager.ensure_program(
        "redis",
        ROLE_DIR,
        restart_on=[conf, *material],
        systemd_unit="redis-server",
        config=CONFIG,
    )
    return RedisClient(f"rediss://:{password}@localhost:{data.redis_tls_port}/0", str(ca_crt))


def _external_client() -> RedisClient:
    """``redis_external_url`` and its CA file, checked to be a Redis URL."""
    url = str(host.data.redis_external_url)
    if not url.startswith(("redis://", "rediss://")):
        raise DeployError(
            f"redis_external_url must start with rediss:// (or redis://), not {url[:8]!r}."
        )
    return RedisClient(url, str(host.data.redis_external_ca_file))
