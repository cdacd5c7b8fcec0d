"""Custom operations of the roles.

Each body runs once at prepare time (to show the plan) and again at execute time, reading
facts afresh, so it acts on the host's live state and says so with ``host.noop`` when there
is nothing to do.
"""

from __future__ import annotations

import shlex
from collections.abc import Generator

from pyinfra.api.operation import operation
from pyinfra.context import host
from pyinfra.facts.files import Sha256File

from proxy_app.engines.ollama import canonical_name
from roles.facts import (
    SUPERVISOR_CONF,
    HttpAnswers,
    InitScriptRunning,
    OllamaModels,
    SupervisorPrograms,
)

UP_STATES = ("RUNNING", "STARTING", "BACKOFF")


@operation()
def verified_download(
    src: str,
    dest: str,
    sha256: str,
    what: str,
    key: str = "ollama_sha256",
    source: str = "the release's sha256sum.txt",
) -> Generator[str, None, None]:
    """
    Download ``src`` to ``dest`` unless ``dest`` already has the SHA-256 ``sha256``.

    + src: URL to fetch (curl)
    + dest: where the verified file ends up; a mismatching download never lands there
    + sha256: expected hex digest
    + what: a few words naming the file, used in the error sentence
    + key, source: the data key holding ``sha256`` and where its value comes from, named in
      the error sentence

    Unlike ``files.download`` (which moves the file into place first and reports only
    "SHA256 did not match!"), a mismatch removes the partial file and names both digests.
    """
    if host.get_fact(Sha256File, path=dest) == sha256:
        host.noop(f"{dest} already has SHA-256 {sha256[:12]}…")
        return
    part = f"{dest}.part"
    q_part, q_dest = shlex.quote(part), shlex.quote(dest)
    yield f"mkdir -p {shlex.quote(dest.rsplit('/', 1)[0])}"
    yield f"curl -fsSL --retry 3 -o {q_part} {shlex.quote(src)}"
    sentence = (
        f"The {what} from {src} has SHA-256 $actual but {sha256} was expected; "
        f"refusing to install it. Check the {key} value ({source})."
    )
    yield (
        f"actual=$(sha256sum {q_part} | cut -d' ' -f1); "
        f'if [ "$actual" != {shlex.quote(sha256)} ]; then rm -f {q_part}; '
        f'echo "{sentence}" >&2; exit 1; fi'
    )
    yield f"mv {q_part} {q_dest}"


@operation()
def wait_for_url(url: str, timeout: int, what: str) -> Generator[str, None, None]:
    """
    Wait up to ``timeout`` seconds until ``url`` answers with a 2xx status.

    + url: an HTTP URL on the host (checked with curl from the host)
    + timeout: seconds before the host fails
    + what: the service's name, for the error sentence
    """
    if host.get_fact(HttpAnswers, url=url):
        host.noop(f"{what} answers at {url}")
        return
    sentence = f"{what} did not answer at {url} within {timeout} seconds; see its log."
    yield (
        f"i=0; until curl -fsS -o /dev/null --max-time 3 {shlex.quote(url)} 2>/dev/null; do "
        f'i=$((i+1)); if [ "$i" -ge {int(timeout)} ]; then echo "{sentence}" >&2; exit 1; fi; '
        "sleep 1; done"
    )


@operation()
def supervisord_running(hook: str) -> Generator[str, None, None]:
    """
    Start supervisord when it is not running, through the on-start hook a restart runs.

    + hook: the script that starts supervisord (and waits for it), as on every container start
    """
    if host.get_fact(SupervisorPrograms) is not None:
        host.noop("supervisord is running")
        return
    yield f"sh {shlex.quote(hook)}"


@operation()
def unit_stays_active(unit: str, seconds: int = 4) -> Generator[str, None, None]:
    """
    Fail the host, with the unit's journal, unless ``unit`` is active and does not restart.

    + unit: a systemd unit just (re)started (gate the call on that: it always runs its check)
    + seconds: how long the unit must stay up; a hardening option that stops the service
      makes it fail at exec and cycle through ``Restart=``, which this window catches
    """
    q = shlex.quote(unit)
    sentence = (
        f"The unit {unit} did not stay active after its start (state: $state, restarts: "
        "$before -> $after); its hardening or configuration stops it. "
        f"Last lines of journalctl -u {unit}:"
    )
    yield (
        f"before=$(systemctl show -p NRestarts --value {q}); sleep {int(seconds)}; "
        f"after=$(systemctl show -p NRestarts --value {q}); state=$(systemctl is-active {q}); "
        'if [ "$state" != active ] || [ "$after" != "$before" ]; then '
        f'echo "{sentence}" >&2; journalctl -u {q} -n 25 --no-pager -o cat >&2; exit 1; fi'
    )


@operation()
def supervisor_program_running(program: str) -> Generator[str, None, None]:
    """Start a supervisor program that exists but is stopped, exited or fatal."""
    state = (host.get_fact(SupervisorPrograms) or {}).get(program)
    if state in UP_STATES:
        host.noop(f"supervisor program {program} is {state}")
        return
    yield f"supervisorctl -c {SUPERVISOR_CONF} start {shlex.quote(program)}"


@operation()
def init_script_stopped(script: str, program: str) -> Generator[str, None, None]:
    """
    Stop a daemon its package's init script started on ``apt install`` (no systemd here).

    + script: the ``/etc/init.d`` script, e.g. ``redis-server``
    + program: our supervisor program for the same daemon; once supervisor knows it, the
      pidfile the script checks is our program's, so nothing is stopped
    """
    if program in (host.get_fact(SupervisorPrograms) or {}):
        host.noop(f"supervisor runs {program}; /etc/init.d/{script} is not used")
        return
    if not host.get_fact(InitScriptRunning, script=script):
        host.noop(f"/etc/init.d/{script} runs nothing")
        return
    yield f"/etc/init.d/{script} stop"


@operation()
def model_pulled(model: str, url: str, binary: str, ollama_host: str) -> Generator[str, None, None]:
    """
    Pull ``model`` through the running server unless ``/api/tags`` lists it already.

    + model: a model reference such as ``qwen2.5-coder:7b``
    + url: the server's base URL, for the check
    + binary: the ``ollama`` CLI (its progress lines show with ``pyinfra -v``)
    + ollama_host: ``OLLAMA_HOST`` for the CLI
    """
    if canonical_name(model) in host.get_fact(OllamaModels, url=url):
        host.noop(f"model {model} is already present")
        return
    yield f"OLLAMA_HOST={shlex.quote(ollama_host)} {binary} pull {shlex.quote(model)}"
