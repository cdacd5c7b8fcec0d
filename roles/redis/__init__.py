"""Redis as the proxy's cache: Debian's redis-server, TLS only, on loopback, with a password.

Under systemd the packaged ``redis-server.service`` (already hardened by Debian) runs with
our ``/etc/redis/redis.conf``; without systemd a supervisor program ``redis`` runs the same
binary and file in the foreground.
"""

from __future__ import annotations

from pathlib import Path

from pyinfra import host
from pyinfra.api import DeployError, deploy
from pyinfra.operations import files

from roles import secrets, services
from roles.base import install_packages
from roles.redis.defaults import DEFAULTS

__all__ = ["client_settings", "deploy_redis"]

ROLE_DIR = Path(__file__).parent
CONFIG = "/etc/redis/redis.conf"


@deploy("Deploy Redis", data_defaults=DEFAULTS)
def deploy_redis() -> None:
    """
    Install Redis with TLS material from ``secrets/`` and run it as a program.

    Skipped when ``redis_external_url`` is set: the proxy then uses that server.

    .. code:: python

        deploy_redis()
    """
    data = host.data
    # An external Redis wanted? Then there is nothing to install here.
    if data.redis_external_url:
        host.noop("redis_external_url is set; not installing Redis")
        return

    install_packages(["redis-server"], "Redis")
    ca_crt, _ = secrets.ca()
    crt, key = secrets.server_cert(host.name)
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
        password=secrets.token("redis_password"),
        maxmemory=data.redis_maxmemory,
        maxmemory_policy=data.redis_maxmemory_policy,
        extra_config=str(data.redis_extra_config).strip(),
        # Debian's unit reads this pidfile (systemd makes /run/redis, its RuntimeDirectory);
        # supervisor tracks the pid itself, and /run starts empty after a container restart.
        pidfile="/run/redis/redis-server.pid" if services.uses_systemd() else "",
    )
    services.ensure_program(
        "redis",
        ROLE_DIR,
        restart_on=[conf, *material],
        systemd_unit="redis-server",
        config=CONFIG,
    )


def client_settings() -> tuple[str, str]:
    """
    The Redis URL and CA file (a path on the control machine, or ``""``) the proxy should use.

    Works outside ``deploy_redis`` too, falling back to the role's defaults.
    """
    external = host.data.get("redis_external_url", "")
    if external:
        if not str(external).startswith(("redis://", "rediss://")):
            raise DeployError(
                f"redis_external_url must start with rediss:// (or redis://), not {external[:8]!r}."
            )
        return str(external), str(host.data.get("redis_external_ca_file", ""))
    port = host.data.get("redis_tls_port", DEFAULTS["redis_tls_port"])
    password = secrets.token("redis_password")
    return f"rediss://:{password}@localhost:{port}/0", str(secrets.ca()[0])
