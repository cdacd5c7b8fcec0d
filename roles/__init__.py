"""Roles of the llm-selfhost deploy: Ollama, Redis (TLS) and proxy_app."""

from roles.ollama import deploy_ollama
from roles.proxy import deploy_proxy
from roles.redis import deploy_redis

__all__ = ["deploy_ollama", "deploy_proxy", "deploy_redis"]
