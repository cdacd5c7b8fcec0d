"""Overrides for group `local` (inventories/local.py: the sandbox fleet).

The Ollama release each sandbox host installs comes from the inventory's host data (the fleet's
local release server), not from here.
"""

# supervisord is started daemonized by the on-start hook (its stdout is /dev/null): log to files.
supervisor_log_to_stdout = False
