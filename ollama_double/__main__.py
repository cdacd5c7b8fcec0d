"""``python3 -m ollama_double ...``: the stand-in ``ollama`` CLI (test double, not Ollama)."""

import sys

from .cli import main

sys.exit(main())
