"""Provision every inventory host: its engine with the model, Redis over TLS, then proxy_app.

    pyinfra -y inventories/vast.py deploy.py      # vast.ai instances
    pyinfra -y inventories/local.py deploy.py     # the local sandbox host

Run from the repository root so group_data/ and config.py are found. Variables: docs/deploying.md.
Values one role takes from another are wired here: the engine role returns its URL, models,
context length (and Ollama its keep-alive), the Redis role its client URL and CA; the proxy
role takes both. Host data ``engine`` picks the engine: "ollama" (default) or "llamacpp".
"""

from roles import deploy_proxy, deploy_redis
from roles.base import check_platform, install_base
from roles.engine import deploy_engine
from roles.services import ensure_manager

check_platform()  # fails the host with a sentence on anything but Ubuntu/Debian, amd64/arm64
install_base()
manager = ensure_manager()  # systemd if it is PID 1's init, else supervisord (installed if missing)
engine = deploy_engine(manager)  # Ollama's or llama-server's URL, model(s) and window
redis = deploy_redis(manager)
deploy_proxy(manager, engine, redis)  # Ollama's API, or llama-server's OpenAI-compatible one
