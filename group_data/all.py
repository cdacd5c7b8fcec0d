"""Data for every host: overrides of the roles' defaults only. No secrets here (see secrets/).

Each role's defaults.py is the one place its keys and defaults live (docs/deploying.md lists them);
a value set here wins over that default on every host, e.g. a bigger profile
(docs/proxy_app.md, "Model selection"):

    ollama_models = ["qwen2.5-coder:14b", "qwen2.5-coder:1.5b"]

The proxy follows the Ollama role's models, context length and keep-alive unless its own
proxy_* key is set (deploy.py wires them). Nothing is overridden for every host today.
"""
