"""The on-start hook every rented instance runs, shared by `fleet up` and the deploy.

vast.ai writes an instance's `onstart` command into the container (/root/onstart.sh) and runs it
on every container start, after its own sshd set-up (SSH launch mode). The deploy installs
``ONSTART_SCRIPT`` to bring the services back after a stop/start; until the first deploy the
file does not exist and the command does nothing.
"""

ONSTART_SCRIPT = "/opt/llm-selfhost/onstart.sh"
ONSTART_COMMAND = f"if [ -x {ONSTART_SCRIPT} ]; then {ONSTART_SCRIPT}; fi"
