"""proxy_app: a venv with the wheel built from this repo, an env file, the program, /health."""

from __future__ import annotations

from pathlib import Path

from pyinfra.api.exceptions import DeployError
from pyinfra.api.operation import OperationMeta
from pyinfra.context import host
from pyinfra.operations import files, pip, server

from roles import ops, secrets, services
from roles.base import deploy, host_data, install_packages, local_address
from roles.llamacpp.endpoint import LlamaServer
from roles.ollama.endpoint import OllamaServer
from roles.proxy.defaults import DEFAULTS
from roles.proxy.settings import backend_settings
from roles.proxy.wheel import build_wheel, file_sha256, wheel_installed
from roles.redis import RedisClient
from roles.services import Manager

__all__ = ["deploy_proxy"]

ROLE_DIR = Path(__file__).parent
ENV_DIR = "/etc/proxy_app"
ENV_FILE = f"{ENV_DIR}/proxy.env"


@deploy("Deploy proxy", data_defaults=DEFAULTS)
def deploy_proxy(
    manager: Manager, engine: OllamaServer | LlamaServer, redis: RedisClient
) -> None:
    """
    Install proxy_app into a venv and run ``python -m proxy_app`` as the ``proxy`` user.

    + manager: the host's service manager, from ``services.ensure_manager``
    + engine: what the host's engine role serves (Ollama, or llama-server through its
      OpenAI-compatible API); ``proxy_*`` values left empty follow it
    + redis: the cache to use, from the Redis role (or its ``redis_external_url``)

    The API key comes from ``secrets/proxy_api_key``.

    .. code:: python

        deploy_proxy(manager, deploy_engine(manager), deploy_redis(manager))
    """
    data = host.data
    user, home, venv = data.proxy_user, data.proxy_home, f"{data.proxy_dir}/venv"
    install_packages(["python3-venv"], "proxy")
    server.user(
        name="Create the proxy user",
        user=user,
        system=True,
        home=home,
        shell="/usr/sbin/nologin",
        ensure_home=True,
    )
    files.directory(name=f"Create {ENV_DIR}", path=ENV_DIR, user="root", group=user, mode="750")
    restart_on = [*_install_app(venv), *_configure(user, engine, redis)]
    manager.ensure_program(
        "proxy",
        ROLE_DIR,
        restart_on=restart_on,
        python=f"{venv}/bin/python",
        env_file=ENV_FILE,
        run_as=user,
        home=home,
        unit_extra=str(data.proxy_unit_extra).strip(),
    )
    ops.wait_for_url(
        name="Wait for proxy_app's /health",
        url=f"http://{local_address(str(data.proxy_bind))}:{data.proxy_port}/health",
        timeout=data.proxy_wait_timeout,
        what="proxy_app",
    )


def _install_app(venv: str) -> list[OperationMeta]:
    """Create the venv, upload the wheel (built here unless proxy_wheel names one), install it."""
    wheel = Path(host.data.proxy_wheel) if host.data.proxy_wheel else build_wheel()
    if not wheel.is_file():
        raise DeployError(f"proxy_wheel {wheel} does not exist on this machine.")
    remote = f"{host.data.proxy_dir}/dist/{wheel.name}"
    pip.venv(name="Create the proxy venv", path=venv, python="python3")
    upload = files.put(
        name=f"Upload {wheel.name}",
        src=str(wheel),
        dest=remote,
        user="root",
        group="root",
        mode="644",
    )
    install = wheel_installed(
        name="Install proxy_app into the venv", venv=venv, wheel=remote, sha256=file_sha256(wheel)
    )
    return [upload, install]


def _configure(
    user: str, engine: OllamaServer | LlamaServer, redis: RedisClient
) -> list[OperationMeta]:
    """Upload the Redis CA and render the env file (API key, engine, Redis settings)."""
    data = host.data
    ca_file = redis.ca_file
    changes = []
    if ca_file:
        if not Path(ca_file).is_file():
            raise DeployError(f"redis_external_ca_file {ca_file} does not exist on this machine.")
        changes.append(
            files.put(
                name="Upload the Redis CA certificate",
                src=ca_file,
                dest=f"{ENV_DIR}/redis-ca.crt",
                user="root",
                group=user,
                mode="644",
            )
        )
    env = {
        "PROXY_HOST": data.proxy_bind,
        "PROXY_PORT": data.proxy_port,
        "PROXY_API_KEYS": secrets.token("proxy_api_key"),
        **backend_settings(host_data(), engine),
        "PROXY_REDIS_URL": redis.url,
        "PROXY_REDIS_CA_FILE": f"{ENV_DIR}/redis-ca.crt" if ca_file else "",
        **data.proxy_extra_env,
    }
    bad = [key for key, value in env.items() if "'" in str(value) or "\n" in str(value)]
    if bad:
        raise DeployError(f"Proxy settings {', '.join(bad)} contain a quote or newline; remove it.")
    changes.append(
        files.template(
            name=f"Render {ENV_FILE}",
            src=str(ROLE_DIR / "templates" / "proxy.env.j2"),
            dest=ENV_FILE,
            user=user,
            group=user,
            mode="600",
            jinja_env_kwargs=services.jinja_options(),
            env=env,
        )
    )
    return changes
