"""Provision every inventory host: Ollama with its model, Redis over TLS, then proxy_app.

    pyinfra -y inventories/vast.py deploy.py      # vast.ai instances
    pyinfra -y inventories/local.py deploy.py     # the local sandbox host

Run from the repository root so group_data/ and config.py are found. Variables: README.md.
"""

from roles import deploy_ollama, deploy_proxy, deploy_redis
from roles.base import check_platform, install_base
from roles.services import ensure_manager

arch = check_platform()  # fails the host with a sentence on anything but Ubuntu/Debian
install_base()
ensure_manager()  # systemd if it is PID 1's init, else supervisord (installed if missing)
deploy_ollama(arch)
deploy_redis()
deploy_proxy()
