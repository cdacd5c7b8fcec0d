"""Public interface of the proxy role: every key, its default, one comment each."""

DEFAULTS = {
    # Dedicated non-root user, its home, and where the venv and wheels live (root-owned).
    "proxy_user": "proxy",
    "proxy_home": "/var/lib/proxy_app",
    "proxy_dir": "/opt/proxy_app",
    # A wheel on the control machine to install instead; "" = build one from this repository.
    "proxy_wheel": "",
    # Listen address; loopback by default (reach it through `ssh -L 8000:localhost:8000`).
    "proxy_bind": "127.0.0.1",
    "proxy_port": 8000,
    # The engine: its URL, the model Claude ids map to, its context window and keep-alive.
    # Empty (0) = the host's engine role's (host data `engine`): Ollama's URL, first model,
    # context length and keep-alive, or llama-server's URL, model name and tokens per slot
    # (keep-alive: Ollama's only). proxy_ollama_url is the older name of proxy_engine_url.
    "proxy_engine_url": "",
    "proxy_ollama_url": "",
    "proxy_default_model": "",
    "proxy_num_ctx": 0,
    "proxy_keep_alive": "",
    # Model for Claude Code's Haiku-class background calls, used when Ollama has it ("" = off);
    # None = the Ollama role's second model (off when it has one model).
    "proxy_background_model": None,
    # More PROXY_* settings for the env file, e.g. {"PROXY_CACHE_TTL": "3600"}.
    "proxy_extra_env": {},
    # Lines added to the systemd unit's [Service] section (escape hatch; systemd hosts only).
    "proxy_unit_extra": "",
    # Seconds to wait for /health after a (re)start.
    "proxy_wait_timeout": 60,
}
