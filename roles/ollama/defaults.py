"""Public interface of the ollama role: every key, its default, one comment each."""

DEFAULTS = {
    # Pinned release: version, archive URL ({version} is filled in) and the archive's SHA-256
    # from the release's sha256sum.txt (the line ending in ./ollama-linux-amd64.tar.zst).
    "ollama_version": "0.32.7",
    "ollama_download_url": (
        "https://github.com/ollama/ollama/releases/download/v{version}/ollama-linux-amd64.tar.zst"
    ),
    "ollama_sha256": "ed1e39fe8fea90bd7f4c723bd949a2cea3153e111220ec0a183ea5b8dc8b2cae",
    # Install prefix: the archive unpacks to <prefix>/bin/ollama and <prefix>/lib/ollama/.
    "ollama_prefix": "/usr/local",
    # Dedicated service user and its home (holds Ollama's key pair).
    "ollama_user": "ollama",
    "ollama_home": "/var/lib/ollama",
    # Listen address; keep it on loopback and reach it through the SSH tunnel or the proxy.
    "ollama_bind": "127.0.0.1",
    "ollama_port": 11434,
    # Models to pull (absent ones only); the first one is warmed up after a pull or restart.
    # The second serves Claude Code's background calls (proxy_background_model).
    "ollama_models": ["qwen2.5-coder:7b", "qwen2.5-coder:1.5b"],
    # Model store; "" = /workspace/ollama/models when /workspace exists, else <home>/models.
    "ollama_models_dir": "",
    # Server environment: context window, how long a model stays loaded, flash attention.
    "ollama_context_length": 32768,
    "ollama_keep_alive": "30m",
    "ollama_flash_attention": True,
    # Models kept loaded at once, and slots (parallel requests, each num_ctx of KV cache) each;
    # two models so background calls never evict the conversation's cache.
    "ollama_max_loaded_models": 2,
    "ollama_num_parallel": 1,
    # Refuse models that cannot all stay in the GPU's memory (nvidia-smi; see profiles.py).
    "ollama_check_vram": True,
    # More OLLAMA_* variables for the server, e.g. {"OLLAMA_NUM_PARALLEL": "2"}.
    "ollama_extra_env": {},
    # Seconds to wait for /api/version after a (re)start; seconds allowed for the warm-up.
    "ollama_wait_timeout": 60,
    "ollama_warm_timeout": 600,
}
