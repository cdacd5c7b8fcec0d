"""The one place that branches systemd vs supervisord.

A host runs systemd when ``/run/systemd/system`` exists (the test testinfra uses too); its units
are enabled, so a reboot starts them. Otherwise (vast.ai containers, the sandbox) programs run
under supervisord, installed and started here when missing. A container restart (vast.ai's
stop/start) kills every process and runs only the image's entrypoint and ``/root/onstart.sh``, the
instance's on-start script; so supervisord is started by a hook (``ONSTART_HOOK``) that
``/root/onstart.sh`` calls, the deploy included. ``ensure_manager`` returns the host's
``Manager``, which deploy.py hands to each role. Roles describe a program by its templates:

- ``templates/systemd/<unit>.service.j2`` -> ``/etc/systemd/system/<unit>.service``
- any other ``templates/systemd/<file>.j2`` -> ``/etc/systemd/system/<unit>.service.d/<file>``
- ``templates/supervisor/<program>.conf.j2`` -> ``/etc/supervisor/conf.d/<program>.conf``
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyinfra.api.operation import OperationMeta
from pyinfra.context import host
from pyinfra.facts.files import Directory
from pyinfra.facts.server import Which
from pyinfra.operations import files, server, systemd

from roles import ops
from roles.base import install_packages
from roles.facts import SUPERVISOR_CONF

SUPERVISOR_CONF_DIR = "/etc/supervisor/conf.d"
SUPERVISOR_LOG_DIR = "/var/log/supervisor"
# vast.ai writes the instance's on-start commands here and runs the file on every start.
VAST_ONSTART = "/root/onstart.sh"
ONSTART_HOOK = "/opt/llm-selfhost/onstart.sh"
# The line /root/onstart.sh runs the hook with: `fleet up` rents every instance with it as its
# `onstart`, and the deploy appends it to hosts that lack it. Before the first deploy it does
# nothing. (No regex characters: files.line matches it as a pattern.)
ONSTART_COMMAND = f"test ! -f {ONSTART_HOOK} || sh {ONSTART_HOOK}"
# vast's base images start supervisord from this boot script themselves.
VAST_SUPERVISOR_LAUNCH = "/etc/vast_boot.d/65-supervisor-launch.sh"
TEMPLATES = Path(__file__).with_name("templates")
# supervisord programs log to stdout (vast.ai's log view) unless the data says otherwise.
SUPERVISOR_LOG_TO_STDOUT = True


def jinja_options() -> dict[str, bool]:
    """Jinja settings for every template here: block tags leave no blank lines behind."""
    return {"trim_blocks": True, "lstrip_blocks": True}


def uses_systemd() -> bool:
    """Whether systemd is PID 1's init here (not merely installed)."""
    return bool(host.get_fact(Directory, path="/run/systemd/system"))


@dataclass(frozen=True)
class Manager:
    """What runs this host's programs: systemd, or supervisord and the operation starting it."""

    systemd: bool
    # Starting supervisord (re)starts every program too; None under systemd.
    supervisord_start: OperationMeta | None = None

    def ensure_program(
        self,
        name: str,
        role_dir: Path,
        restart_on: Sequence[OperationMeta] = (),
        systemd_unit: str | None = None,
        **data: object,
    ) -> Callable[[], bool]:
        """
        Install, enable and run one long-lived program; restart it when its files changed.

        + name: supervisor program name (and unit name unless ``systemd_unit`` is given)
        + role_dir: the role's directory, holding ``templates/systemd`` and
          ``templates/supervisor``
        + restart_on: earlier operations (config files, binaries) whose change means a restart
        + systemd_unit: a unit shipped by a package (e.g. ``redis-server``), used as is; without
          systemd, a copy its SysV script started on ``apt install`` is stopped first
        + data: template variables

        Returns a callable telling, at execute time, whether the program was (re)started.

        .. code:: python

            started = manager.ensure_program("ollama", ROLE_DIR, restart_on=[unpack], env=env)
            server.shell(..., _if=started)
        """
        if self.systemd:
            return _systemd_program(systemd_unit or name, role_dir, restart_on, data)
        program = _supervisor_program(name, role_dir, restart_on, systemd_unit, data)
        boot = [self.supervisord_start] if self.supervisord_start else []
        return _changed([*boot, *program])


def ensure_manager() -> Manager:
    """On hosts without systemd, install supervisor if missing and start supervisord."""
    if uses_systemd():
        host.noop("systemd manages the programs")
        return Manager(systemd=True)
    # Supervisor missing? vast base images ship their own; install Debian's otherwise.
    if not host.get_fact(Which, command="supervisorctl"):
        install_packages(["supervisor"], "supervisor")
    files.template(
        name="Install the on-start hook that starts supervisord",
        src=str(TEMPLATES / "onstart.sh.j2"),
        dest=ONSTART_HOOK,
        user="root",
        group="root",
        mode="755",
        supervisor_conf=SUPERVISOR_CONF,
        vast_supervisor_launch=VAST_SUPERVISOR_LAUNCH,
    )
    # Every container start runs /root/onstart.sh (vast.ai's SSH/Jupyter launch modes).
    files.line(
        name=f"Run the on-start hook from {VAST_ONSTART}",
        path=VAST_ONSTART,
        line=ONSTART_COMMAND,
    )
    start = ops.supervisord_running(
        name="Start supervisord if it is not running", hook=ONSTART_HOOK
    )
    return Manager(systemd=False, supervisord_start=start)


def _changed(ops_: Sequence[OperationMeta]) -> Callable[[], bool]:
    return lambda: any(op.did_change() for op in ops_)


def _systemd_program(
    unit: str, role_dir: Path, restart_on: Sequence[OperationMeta], data: Mapping[str, Any]
) -> Callable[[], bool]:
    unit_files = []
    for template in sorted((role_dir / "templates" / "systemd").glob("*.j2")):
        basename = template.name.removesuffix(".j2")
        dest = f"/etc/systemd/system/{basename}"
        if basename != f"{unit}.service":
            dest = f"/etc/systemd/system/{unit}.service.d/{basename}"
        unit_files.append(
            files.template(
                name=f"Render {dest}",
                src=str(template),
                dest=dest,
                user="root",
                group="root",
                mode="644",
                jinja_env_kwargs=jinja_options(),
                unit=unit,
                **data,
            )
        )
    systemd.daemon_reload(name=f"Reload systemd if {unit} files changed", _if=_changed(unit_files))
    # Restart before the "running" check, so a stopped unit is started once, not twice.
    restart = systemd.service(
        name=f"Restart {unit} if its files or config changed",
        service=unit,
        running=True,
        restarted=True,
        _if=_changed([*unit_files, *restart_on]),
    )
    running = systemd.service(
        name=f"Enable and start {unit}", service=unit, running=True, enabled=True
    )
    started = _changed([restart, running])
    ops.unit_stays_active(
        name=f"Check that {unit} stays active", unit=f"{unit}.service", _if=started
    )
    return started


def _supervisor_program(
    name: str,
    role_dir: Path,
    restart_on: Sequence[OperationMeta],
    packaged: str | None,
    data: Mapping[str, Any],
) -> list[OperationMeta]:
    """Render, load and run the program; return the operations that (re)start it."""
    to_stdout = host.data.get("supervisor_log_to_stdout", SUPERVISOR_LOG_TO_STDOUT)
    if packaged:
        # The package's postinst may have started its own copy through SysV init.
        ops.init_script_stopped(
            name=f"Stop the {packaged} that apt started", script=packaged, program=name
        )
    conf = files.template(
        name=f"Render the supervisor program {name}",
        src=str(role_dir / "templates" / "supervisor" / f"{name}.conf.j2"),
        dest=f"{SUPERVISOR_CONF_DIR}/{name}.conf",
        user="root",
        group="root",
        mode="644",
        jinja_env_kwargs=jinja_options(),
        program=name,
        log_to_stdout=to_stdout,
        log_file=f"{SUPERVISOR_LOG_DIR}/{name}.log",
        **data,
    )
    # `update` starts a new program and restarts one whose section changed.
    update = server.shell(
        name=f"Load the changed supervisor program {name}",
        commands=[
            f"supervisorctl -c {SUPERVISOR_CONF} reread",
            f"supervisorctl -c {SUPERVISOR_CONF} update",
        ],
        _if=conf.did_change,
    )
    restart = server.shell(
        name=f"Restart {name} if its config changed",
        commands=[f"supervisorctl -c {SUPERVISOR_CONF} restart {name}"],
        _if=lambda: _changed(restart_on)() and not conf.did_change(),
    )
    running = ops.supervisor_program_running(
        name=f"Start {name} if it is not running", program=name
    )
    return [update, restart, running]
