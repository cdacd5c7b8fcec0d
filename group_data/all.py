"""Data for every host: the values most worth changing. No secrets here (they live in secrets/).

Each role's defaults.py documents every key; README.md lists them with defaults.
"""

# Ollama: the pinned release (from its sha256sum.txt, line ./ollama-linux-amd64.tar.zst).
ollama_version = "0.32.7"
ollama_download_url = (
    "https://github.com/ollama/ollama/releases/download/v{version}/ollama-linux-amd64.tar.zst"
)
ollama_sha256 = "ed1e39fe8fea90bd7f4c723bd949a2cea3153e111220ec0a183ea5b8dc8b2cae"
# The main model, then the small one that serves Claude Code's background calls (README,
# "Model selection"); ollama_max_loaded_models keeps both loaded.
ollama_models = ["qwen2.5-coder:7b", "qwen2.5-coder:1.5b"]
ollama_context_length = 32768
ollama_keep_alive = "30m"
ollama_port = 11434

# Redis: the proxy's response cache, TLS only on loopback.
redis_tls_port = 6379
redis_maxmemory = "512mb"

# proxy_app: same model and window as Ollama.
proxy_port = 8000
proxy_ollama_url = f"http://127.0.0.1:{ollama_port}"
proxy_default_model = ollama_models[0]
proxy_background_model = ollama_models[1]
proxy_num_ctx = ollama_context_length
proxy_keep_alive = ollama_keep_alive

# Program logs under supervisord: stdout (vast.ai's log view) or /var/log/supervisor/<name>.log.
supervisor_log_to_stdout = True

# `make status` compares the fleet's cost with Anthropic's API list prices, in $ per million
# tokens, by the model class Claude Code asked for (tokens of other ids count as sonnet). Read on
# 2026-11-30 from a stored copy of Anthropic's pricing page listing Claude Opus 4.6, Sonnet 4.6
# and Haiku 4.5; override the whole table in group_data/vast.py when prices change.
fleet_anthropic_prices = {
    "date": "2026-11-30",
    "source": "https://platform.claude.com/docs/en/about-claude/pricing",
    "opus": {"input": 5.0, "output": 25.0},
    "sonnet": {"input": 3.0, "output": 15.0},
    "haiku": {"input": 1.0, "output": 5.0},
}
