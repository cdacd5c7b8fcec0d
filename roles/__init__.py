"""Roles of the llm-selfhost deploy: Ollama or llama.cpp, Redis (TLS) and proxy_app."""

from roles.llamacpp import deploy_llamacpp
from roles.ollama import deploy_ollama
from roles.proxy import deploy_proxy
from roles.redis import deploy_redis

__all__ = ["deploy_llamacpp", "deploy_ollama", "deploy_proxy", "deploy_redis"]
