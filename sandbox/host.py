"""The sandbox host: a vast.ai-shaped container made of a rootfs, namespaces and sshd.

`up()` mounts an overlay (cached rootfs below, a per-sandbox container layer above) in new
PID, mount, UTS and IPC namespaces, pivots into it and runs sshd as PID 1 on 127.0.0.1:<port>. The
network is the host's, as with `docker run --network host`. There is no systemd, like on vast.

    sandbox = Sandbox().up()
    sandbox.run("cat /etc/debian_version").stdout
    sandbox.down()
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from .errors import SandboxError
from .rootfs import STAMP, build_rootfs, default_rootfs
from .system import (
    children,
    clean_env,
    cmdline,
    find_processes,
    is_alive,
    lock,
    pid_namespace,
    pids_in_namespace,
    unmount_under,
)

REPO = Path(__file__).resolve().parents[1]
INIT_SH = Path(__file__).with_name("init.sh")
HOST_NAME = "sandbox"
DEFAULT_SSH_PORT = 2222
DEFAULT_UP_TIMEOUT = 60.0


def default_state_dir() -> Path:
    """Return the state directory (env `SANDBOX_STATE_DIR`, else `<repo>/.sandbox`)."""
    return Path(os.environ.get("SANDBOX_STATE_DIR") or REPO / ".sandbox")


class Sandbox:
    """Build, start, reach and stop the sandbox host.

    + state_dir: pid file, ssh key, known_hosts, ssh_config, port, log (env `SANDBOX_STATE_DIR`)
    + rootfs: cached Debian rootfs, the read-only lower layer (env `SANDBOX_ROOTFS`)
    + data_dir: the container layer, kept across down/up like vast's container storage
      (env `SANDBOX_DATA_DIR`, default `/var/lib/llm-selfhost/sandbox-<hash of state_dir>`)
    + ssh_port: None = env `SANDBOX_SSH_PORT`, else the last port or 2222 if free, else any free
      port; 0 = any free port; N = exactly N
    """

    hostname = "127.0.0.1"

    def __init__(
        self,
        state_dir: str | Path | None = None,
        *,
        rootfs: str | Path | None = None,
        data_dir: str | Path | None = None,
        ssh_port: int | None = None,
    ) -> None:
        self.state_dir = Path(state_dir or default_state_dir()).absolute()
        self.rootfs = Path(rootfs or default_rootfs()).absolute()
        digest = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:12]
        default_data = f"/var/lib/llm-selfhost/sandbox-{digest}"
        self.data_dir = Path(data_dir or os.environ.get("SANDBOX_DATA_DIR") or default_data)
        self.data_dir = self.data_dir.absolute()
        self._wanted_port = ssh_port

    ssh_key_path = property(lambda self: self.state_dir / "id_ed25519")
    known_hosts_path = property(lambda self: self.state_dir / "known_hosts")
    ssh_config_path = property(lambda self: self.state_dir / "ssh_config")
    pid_path = property(lambda self: self.state_dir / "unshare.pid")
    port_path = property(lambda self: self.state_dir / "port")
    log_path = property(lambda self: self.state_dir / "sandbox.log")
    merged = property(lambda self: self.data_dir / "merged")

    @property
    def ssh_port(self) -> int:
        """Return the port sshd listens on (written by `up`)."""
        try:
            return int(self.port_path.read_text())
        except (OSError, ValueError):
            raise SandboxError(
                f"No sandbox port in {self.port_path}; run `python -m sandbox up`."
            ) from None

    def is_running(self) -> bool:
        """Tell whether the namespace of this sandbox is alive (sshd may still be starting)."""
        return bool(self._unshare_pids())

    def init_pid(self) -> int | None:
        """Return the host pid of the namespace's PID 1 (sshd), or None."""
        for pid in self._unshare_pids():
            for child in children(pid):
                return child
        return None

    def status(self) -> str:
        """Return "running (...)" or "stopped"."""
        if not self.is_running():
            return "stopped"
        answers = "sshd answers" if self._ssh_ok() else "sshd not answering"
        return f"running (127.0.0.1:{self.ssh_port}, init pid {self.init_pid()}, {answers})"

    def up(self, *, timeout: float = DEFAULT_UP_TIMEOUT, log=print) -> Sandbox:
        """Start the sandbox unless it already runs and answers; build the rootfs if needed."""
        with lock(self.state_dir / "lock"):
            if self.is_running():
                if self._ssh_ok():
                    return self
                log("Sandbox namespace alive but sshd is not answering; restarting it")
                self._stop()
            build_rootfs(self.rootfs, log=log)  # also syncs the CA certificates
            port = self._choose_port()
            self._write_state(port)
            self._prepare_layer(log=log)
            self._launch(port)
            self._wait_for_ssh(timeout)
            return self

    def down(self) -> None:
        """Stop every process of the sandbox and release every mount; a no-op when stopped."""
        with lock(self.state_dir / "lock"):
            self._stop()

    def destroy(self) -> None:
        """Stop the sandbox and delete its container layer (the cached rootfs stays)."""
        with lock(self.state_dir / "lock"):
            self._stop()
            unmount_under(self.data_dir)
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def run(
        self, command: str, *, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command as root inside the sandbox over ssh."""
        proc = subprocess.run(
            [*self.ssh_argv(), command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise SandboxError(
                f"`{command}` failed in the sandbox (exit {proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()[-2000:]}"
            )
        return proc

    def ssh_argv(self, *options: str) -> list[str]:
        """Return the argv prefix of an ssh client reaching the sandbox (`options` go before it)."""
        return ["ssh", "-F", str(self.ssh_config_path), *options, HOST_NAME]

    def ssh_config(self) -> str:
        """Return an OpenSSH config block for `ssh -F` and testinfra (`ssh://sandbox`)."""
        return (
            f"Host {HOST_NAME}\n"
            f"    HostName {self.hostname}\n"
            f"    Port {self.ssh_port}\n"
            "    User root\n"
            f"    IdentityFile {self.ssh_key_path}\n"
            "    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {self.known_hosts_path}\n"
            "    StrictHostKeyChecking accept-new\n"
            "    BatchMode yes\n"
            "    ConnectTimeout 10\n"
            "    LogLevel ERROR\n"
        )

    def _unshare_pids(self) -> list[int]:
        pids = set(find_processes("unshare", str(self.merged)))
        try:
            pid = int(self.pid_path.read_text())
        except (OSError, ValueError):
            pid = 0
        if pid and is_alive(pid) and any(str(self.merged) in a for a in cmdline(pid)):
            pids.add(pid)
        return sorted(pids)

    def _stop(self) -> None:
        unshares = self._unshare_pids()
        own = pid_namespace(os.getpid())
        namespaces = set()
        for pid in unshares:
            for child in children(pid):
                namespace = pid_namespace(child)
                if namespace and namespace != own:
                    namespaces.add(namespace)
                # Killing the namespace's PID 1 makes the kernel kill everything inside it.
                _kill(child)
        for namespace in namespaces:
            for pid in pids_in_namespace(namespace):
                _kill(pid)
        # unshare reaps its child and exits; killing it first would orphan a zombie init.
        if not _wait_gone(unshares, timeout=5):
            for pid in unshares:
                _kill(pid)
        _wait_gone([*unshares, *(p for n in namespaces for p in pids_in_namespace(n))], strict=True)
        # The mounts lived in the namespace's private mount table; these catch manual leftovers.
        unmount_under(self.merged)
        unmount_under(self.rootfs)
        self.pid_path.unlink(missing_ok=True)

    def _choose_port(self) -> int:
        wanted = self._wanted_port
        if wanted is None and os.environ.get("SANDBOX_SSH_PORT"):
            wanted = int(os.environ["SANDBOX_SSH_PORT"])
        if wanted:
            if not _port_free(wanted):
                raise SandboxError(f"Port 127.0.0.1:{wanted} is taken; pick another SSH port.")
            return wanted
        candidates = [] if wanted == 0 else [DEFAULT_SSH_PORT]
        if wanted is None and self.port_path.exists():
            candidates.insert(0, self.ssh_port)
        for port in candidates:
            if _port_free(port):
                return port
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])

    def _write_state(self, port: int) -> None:
        state = self.state_dir
        state.mkdir(parents=True, exist_ok=True)
        state.chmod(0o700)
        if not self.ssh_key_path.exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "llm-selfhost-sandbox",
                 "-f", str(self.ssh_key_path)],
                check=True, env=clean_env(),
            )  # fmt: skip
        host_keys = sorted((self.rootfs / "etc/ssh").glob("ssh_host_*_key.pub"))
        entries = [" ".join(k.read_text().split()[:2]) for k in host_keys]
        known = "".join(f"[{self.hostname}]:{port} {entry}\n" for entry in entries)
        self.known_hosts_path.write_text(known)
        self.port_path.write_text(f"{port}\n")
        self.ssh_config_path.write_text(self.ssh_config())
        (state / "hostname").write_text(f"{HOST_NAME}\n")
        (state / "hosts").write_text(
            f"127.0.0.1\tlocalhost\n127.0.1.1\t{HOST_NAME}\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
        )
        (state / "resolv.conf").write_text(Path("/etc/resolv.conf").read_text())

    def _prepare_layer(self, *, log) -> None:
        """Create the container layer; start it afresh when the rootfs below was rebuilt."""
        base = (self.rootfs / STAMP).read_text()
        stamp = self.data_dir / "rootfs.json"
        if stamp.exists() and stamp.read_text() != base:
            log(f"The rootfs was rebuilt; discarding the old container layer in {self.data_dir}")
            unmount_under(self.data_dir)
            shutil.rmtree(self.data_dir)
        for name in ("upper", "work", "merged"):
            (self.data_dir / name).mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        stamp.write_text(base)

    def _launch(self, port: int) -> None:
        self.pid_path.unlink(missing_ok=True)
        layer = [str(self.data_dir / name) for name in ("upper", "work", "merged")]
        argv = [
            # setsid -f: detach from the caller's session; the shell records the pid unshare keeps.
            "setsid", "-f", "sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.pid_path),
            "unshare", "--pid", "--mount", "--uts", "--ipc", "--fork", "--kill-child",
            "--propagation", "private",
            "sh", str(INIT_SH), str(self.rootfs), *layer, str(self.state_dir), str(port),
        ]  # fmt: skip
        with open(self.log_path, "a") as log:
            log.write(f"--- up {time.strftime('%Y-%m-%d %H:%M:%S')} port {port}\n")
            log.flush()
            subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=clean_env(), check=True
            )

    def _wait_for_ssh(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ssh_ok():
                return
            if self.pid_path.exists() and not self.is_running():
                break
            time.sleep(0.2)
        tail = "".join(self.log_path.read_text().splitlines(keepends=True)[-15:])
        self._stop()
        raise SandboxError(f"The sandbox did not answer ssh within {timeout:.0f}s; log:\n{tail}")

    def _ssh_ok(self) -> bool:
        if not self.ssh_config_path.exists():
            return False
        try:
            proc = subprocess.run(
                [*self.ssh_argv("-o", "ConnectTimeout=3"), "true"],
                capture_output=True,
                timeout=15,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return False
        return proc.returncode == 0


def stop_all() -> list[int]:
    """Stop every sandbox on this machine, whatever its state dir; return the unshare pids.

    For CI cleanup after a killed test run; `Sandbox.down()` stops only its own sandbox.
    """
    unshares = find_processes("unshare", str(INIT_SH))
    for pid in unshares:
        for child in children(pid):
            _kill(child)
    if not _wait_gone(unshares, timeout=5):
        for pid in unshares:
            _kill(pid)
    _wait_gone(unshares, strict=True)
    return unshares


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _wait_gone(pids: list[int], timeout: float = 10, *, strict: bool = False) -> bool:
    deadline = time.monotonic() + timeout
    while any(is_alive(p) for p in pids):
        if time.monotonic() > deadline:
            if strict:
                raise SandboxError(f"Sandbox processes {[p for p in pids if is_alive(p)]} survive.")
            return False
        time.sleep(0.05)
    return True
