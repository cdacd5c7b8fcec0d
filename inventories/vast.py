"""Dynamic inventory: running vast.ai instances as group `vast`, hosts named `vast-<id>`.

Run from the repository root (pyinfra puts the cwd on sys.path and reads group_data/ there):
    pyinfra -y inventories/vast.py deploy.py
Environment: VAST_API_KEY (else vast.ai's key files), VAST_LABEL (default `llm-selfhost`, as
`python -m fleet up` labels its rentals; `*` for every running instance), VAST_HOSTS, VAST_URL,
VAST_SSH_KEY, VAST_KNOWN_HOSTS, VAST_DATA_FILE; see docs/vast.md.
"""

import os
from typing import Any

from inventories.vast_api import HostEntry, build_hosts, ensure_known_hosts, known_hosts_file

_known_hosts = known_hosts_file(os.environ)
# Raises VastInventoryError with a sentence instead of handing pyinfra zero hosts (exit 0).
vast: tuple[list[HostEntry], dict[str, Any]] = (build_hosts(os.environ, _known_hosts), {})
ensure_known_hosts(_known_hosts)
