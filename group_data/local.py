"""Overrides for group `local` (inventories/local.py: the sandbox host).

The sandbox has no internet, so Ollama comes from a local file server on the control machine
serving the Ollama API double's release archive (ollama_double/archive.py). Its URL,
SHA-256 and version are known only at run time: the test harness (or `make`) writes them to
`<sandbox state dir>/ollama_release.json` (default `.sandbox/`, or $SANDBOX_STATE_DIR):

    {"version": "0.32.7", "url": "http://127.0.0.1:PORT/ollama-linux-amd64.tar.zst",
     "sha256": "<hex>"}

pyinfra executes every group_data file for every inventory, so the file is only required when
the loaded inventory really has a `local` group, and only for a deploy: `debug-inventory`, the
host checks and the tunnel helper work without it (the role defaults then apply).
"""

import json
import os
import sys
from pathlib import Path

from pyinfra import inventory
from pyinfra.api.exceptions import InventoryError

__all__ = [
    "ollama_version",
    "ollama_download_url",
    "ollama_sha256",
    "supervisor_log_to_stdout",
]

# supervisord is started daemonized in the sandbox (its stdout is /dev/null): log to files.
supervisor_log_to_stdout = False

__state = Path(
    os.environ.get("SANDBOX_STATE_DIR") or Path(__file__).resolve().parents[1] / ".sandbox"
)
__release_file = __state / "ollama_release.json"
__release = {}
if inventory.get_group("local", default=None):
    try:
        __release = json.loads(__release_file.read_text())
        ollama_version = str(__release["version"])
        ollama_download_url = str(__release["url"])
        ollama_sha256 = str(__release["sha256"])
    except (OSError, ValueError, KeyError):
        if not any(arg.endswith("deploy.py") for arg in sys.argv):
            __all__ = ["supervisor_log_to_stdout"]
        else:
            raise InventoryError(
                f"{__release_file} is missing or incomplete, so the sandbox has no Ollama "
                "release; run the deploy through `python -m sandbox.release -- pyinfra -y "
                "inventories/local.py deploy.py` (or `make deploy`), which builds the archive, "
                "serves it and writes it."
            ) from None
else:
    __all__ = ["supervisor_log_to_stdout"]
