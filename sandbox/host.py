"""A sandbox host: a vast.ai-shaped container made of a rootfs, namespaces and sshd.

`up()` mounts an overlay (cached rootfs below, a per-host container layer above) in new PID,
mount, UTS, IPC and network namespaces, pivots into it and boots like a vast.ai instance in SSH
launch mode: sshd on port 22 as PID 1, then `/root/onstart.sh`. There is no systemd, like on vast.

The network namespace is the host's own, as in a container: its 127.0.0.1 is private, so the
services it runs are invisible from the control machine. slirp4netns (Debian's package, the
user-mode network stack rootless Podman uses) gives it a tap device with outbound NAT — apt and
pip reach the package registries — and forwards one loopback port of the control machine to
sshd, the only door. slirp4netns rather than a veth pair with nftables NAT: it needs no address,
route or firewall rule on the control machine, and every address it uses (10.0.2.0/24) lives
inside the host's namespace; 10.0.2.2 there is the control machine's loopback.

    sandbox = Sandbox(".sandbox/sandbox-1", name="sandbox-1").up()
    sandbox.run("cat /etc/debian_version").stdout
    sandbox.restart()   # kill every process, boot again: what vast.ai's stop/start does
    sandbox.down()
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO, TypeVar

from devkit.ports import port_in_use

from .errors import SandboxError
from .rootfs import STAMP, build_rootfs, check_kind, default_rootfs
from .system import (
    Log,
    children,
    clean_env,
    cmdline,
    find_processes,
    is_alive,
    kill,
    lock,
    pid_namespace,
    pids_in_namespace,
    stop_pidfile,
    unmount_under,
    wait_gone,
)

_T = TypeVar("_T")
REPO = Path(__file__).resolve().parents[1]
INIT_SH = Path(__file__).with_name("init.sh")
INIT_SYSTEMD_SH = Path(__file__).with_name("init-systemd.sh")
HOST_NAME = "sandbox"
DEFAULT_SSH_PORT = 2222
DEFAULT_UP_TIMEOUT = 60.0
# slirp4netns's fixed addresses inside a host's namespace (its default 10.0.2.0/24 network).
GUEST_ADDRESS = "10.0.2.100"
CONTROL_ADDRESS = "10.0.2.2"  # the control machine's loopback, as a sandbox host reaches it
DNS_ADDRESS = "10.0.2.3"  # slirp4netns forwards it to the control machine's resolver


class Sandbox:
    """Build, start, reach and stop the sandbox host.

    + state_dir: pid files, ssh key, known_hosts, ssh_config, port, log
    + name: the host name (its hostname inside, and its `Host` in ssh_config)
    + kind: "container" (sshd as PID 1, then /root/onstart.sh: a vast.ai container) or "systemd"
      (systemd as PID 1, booted by systemd-nspawn: a user's own server); None = as last started
    + rootfs: cached Debian rootfs of that kind, the read-only lower layer
    + data_dir: the container layer, kept across down/up like vast's container storage
      (default `/var/lib/llm-selfhost/sandbox-<hash of state_dir>`)
    + ssh_port: the control machine's loopback port forwarded to sshd: None = the last port, or
      ``default_port`` if free, else any free port; 0 = the last port, else any free port;
      N = exactly N
    + default_port: the port preferred on a first start (2222)
    """

    hostname = "127.0.0.1"

    def __init__(
        self,
        state_dir: str | Path,
        *,
        name: str = HOST_NAME,
        kind: str | None = None,
        rootfs: str | Path | None = None,
        data_dir: str | Path | None = None,
        ssh_port: int | None = None,
        default_port: int | None = DEFAULT_SSH_PORT,
    ) -> None:
        self.state_dir = Path(state_dir).absolute()
        self.name = name
        recorded_kind = self.state_dir / "kind"
        if kind is None and recorded_kind.exists():
            kind = recorded_kind.read_text().strip()
        self.kind = check_kind(kind or "container")
        self.rootfs = Path(rootfs or default_rootfs(self.kind)).absolute()
        digest = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:12]
        default_data = f"/var/lib/llm-selfhost/sandbox-{digest}"
        # A host started with another layer (tests, SANDBOX_DATA_DIR) recorded it in its state.
        recorded = self.state_dir / "data_dir"
        if data_dir is None and recorded.exists():
            data_dir = recorded.read_text().strip()
        self.data_dir = Path(data_dir or default_data)
        self.data_dir = self.data_dir.absolute()
        self._wanted_port = ssh_port
        self._default_port = default_port

    ssh_key_path = property(lambda self: self.state_dir / "id_ed25519")
    # Public keys root accepts besides the host's own (vast.ai's account keys), one a line.
    authorized_keys_path = property(lambda self: self.state_dir / "authorized_keys")
    known_hosts_path = property(lambda self: self.state_dir / "known_hosts")
    ssh_config_path = property(lambda self: self.state_dir / "ssh_config")
    pid_path = property(lambda self: self.state_dir / "unshare.pid")
    port_path = property(lambda self: self.state_dir / "port")
    log_path = property(lambda self: self.state_dir / "sandbox.log")
    slirp_pid_path = property(lambda self: self.state_dir / "slirp4netns.pid")
    slirp_socket = property(lambda self: self.state_dir / "slirp4netns.sock")
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
        """Return the host pid of the host's PID 1 (sshd, or systemd), or None.

        That is the booting process's child in a PID namespace of its own: while a systemd host
        is being set up, the boot script's other children (mount, install) are not it.
        """
        own = pid_namespace(os.getpid())
        for pid in self._unshare_pids():
            for child in children(pid):
                if pid_namespace(child) not in (None, own):
                    return child
        return None

    def status(self) -> str:
        """Return "running (...)" or "stopped"."""
        if not self.is_running():
            return "stopped"
        answers = "sshd answers" if self._ssh_ok() else "sshd not answering"
        return (
            f"running ({self.kind}, ssh 127.0.0.1:{self.ssh_port}, "
            f"init pid {self.init_pid()}, {answers})"
        )

    def up(self, *, timeout: float = DEFAULT_UP_TIMEOUT, log: Log = print) -> Sandbox:
        """Start the sandbox unless it already runs and answers; build the rootfs if needed."""
        with lock(self.state_dir / "lock"):
            if self.is_running():
                if self._ssh_ok():
                    return self
                log("Sandbox namespace alive but sshd is not answering; restarting it")
                self._stop()
            self._boot(timeout, log)
            return self

    def restart(self, *, timeout: float = DEFAULT_UP_TIMEOUT, log: Log = print) -> Sandbox:
        """Kill every process of the host, then boot it again on the same port and layer.

        What vast.ai does on stop/start: nothing survives but the container's disk, and the
        instance boots through its entrypoint (sshd) and its on-start script.
        """
        with lock(self.state_dir / "lock"):
            self._stop()
            self._boot(timeout, log)
            return self

    def _boot(self, timeout: float, log: Log) -> None:
        build_rootfs(self.rootfs, kind=self.kind, log=log)  # also syncs the CA certificates
        port = self._choose_port()
        self._write_state(port)
        self._prepare_layer(log=log)
        self._launch(port)
        self._wait_for_ssh(timeout)

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

    def seed(self, path: str, text: str, mode: int = 0o644) -> None:
        """Write a file into the container layer before the host's first boot.

        What a container platform does to a new container (vast.ai writes the instance's
        `onstart` commands to /root/onstart.sh); refused once the host has booted, because an
        overlay's upper layer must not change under a mounted overlay.
        + path: absolute path inside the host
        """
        if self.is_running() or (self.data_dir / "rootfs.json").exists():
            raise SandboxError(f"{self.name} has booted already; seed files before its first up.")
        upper = self.data_dir / "upper"
        target = upper / path.lstrip("/")
        for folder in reversed(target.relative_to(upper).parents[:-1]):
            # Each new folder takes the mode of the one it covers in the rootfs (/root is 0700).
            below = self.rootfs / folder
            mode_below = below.stat().st_mode & 0o7777 if below.is_dir() else 0o755
            (upper / folder).mkdir(mode=mode_below, parents=True, exist_ok=True)
            (upper / folder).chmod(mode_below)
        target.write_text(text)
        target.chmod(mode)

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
        return ["ssh", "-F", str(self.ssh_config_path), *options, self.name]

    def ssh_config(self) -> str:
        """Return an OpenSSH config block for `ssh -F` and testinfra (`ssh://sandbox`)."""
        return (
            f"Host {self.name}\n"
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
        stop_pidfile(self.slirp_pid_path, str(self.slirp_socket))
        _stop_boots(unshares)
        # The mounts lived in the namespace's private mount table; these catch manual leftovers.
        unmount_under(self.merged)
        unmount_under(self.rootfs)
        self.pid_path.unlink(missing_ok=True)

    def _choose_port(self) -> int:
        wanted = self._wanted_port
        if wanted:
            if port_in_use(wanted):
                raise SandboxError(f"Port 127.0.0.1:{wanted} is taken; pick another SSH port.")
            return wanted
        candidates = [self._default_port] if wanted is None and self._default_port else []
        if self.port_path.exists():  # a restart keeps its port, as inventories know it
            candidates.insert(0, self.ssh_port)
        for port in candidates:
            if not port_in_use(port):
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
        (state / "kind").write_text(f"{self.kind}\n")
        (state / "data_dir").write_text(f"{self.data_dir}\n")
        self.ssh_config_path.write_text(self.ssh_config())
        (state / "hostname").write_text(f"{self.name}\n")
        (state / "hosts").write_text(
            f"127.0.0.1\tlocalhost\n{GUEST_ADDRESS}\t{self.name}\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
        )
        (state / "resolv.conf").write_text(f"nameserver {DNS_ADDRESS}\n")

    def _prepare_layer(self, *, log: Log) -> None:
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
        if self.kind == "systemd":
            # systemd-nspawn makes the other namespaces; unshare only keeps the overlay private.
            boot = ["unshare", "--mount", "--propagation", "private", "sh", str(INIT_SYSTEMD_SH),
                    str(self.rootfs), *layer, str(self.state_dir), self.name]  # fmt: skip
        else:
            boot = ["unshare", "--pid", "--mount", "--uts", "--ipc", "--net", "--fork",
                    "--kill-child", "--propagation", "private",
                    "sh", str(INIT_SH), str(self.rootfs), *layer, str(self.state_dir)]  # fmt: skip
        # setsid -f: detach from the caller's session; the shell records the pid unshare keeps.
        argv = [
            "setsid",
            "-f",
            "sh",
            "-c",
            'echo $$ > "$0" && exec "$@"',
            str(self.pid_path),
            *boot,
        ]
        with open(self.log_path, "a") as log:
            log.write(f"--- up {time.strftime('%Y-%m-%d %H:%M:%S')} ssh port {port}\n")
            log.flush()
            subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=clean_env(), check=True
            )
            self._connect_network(port, log)

    def _connect_network(self, port: int, log: TextIO) -> None:
        """Give the host's namespace its tap0 (slirp4netns) and forward 127.0.0.1:port to sshd."""
        if shutil.which("slirp4netns") is None:
            raise SandboxError(
                "slirp4netns is not installed; run `apt-get install -y slirp4netns`."
            )
        init = self._wait_for(self.init_pid, "the namespace's init process")
        self.slirp_socket.unlink(missing_ok=True)
        argv = [
            "setsid", "-f", "sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.slirp_pid_path),
            "slirp4netns", "--configure", "--mtu=65520", "--api-socket", str(self.slirp_socket),
            str(init), "tap0",
        ]  # fmt: skip
        subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=clean_env(), check=True
        )
        self._wait_for(self.slirp_socket.exists, "slirp4netns's API socket")
        forward = {
            "execute": "add_hostfwd",
            "arguments": {
                "proto": "tcp", "host_addr": "127.0.0.1", "host_port": port, "guest_port": 22,
            },
        }  # fmt: skip
        with socket.socket(socket.AF_UNIX) as api:
            api.settimeout(10)
            api.connect(str(self.slirp_socket))
            api.sendall(json.dumps(forward).encode())
            api.shutdown(socket.SHUT_WR)
            answer = json.loads(api.recv(65536) or b"{}")
        if "return" not in answer:
            raise SandboxError(f"slirp4netns could not forward 127.0.0.1:{port} to sshd: {answer}")

    def _wait_for(self, probe: Callable[[], _T], what: str, timeout: float = 10) -> _T:
        deadline = time.monotonic() + timeout
        while not (found := probe()):
            if time.monotonic() > deadline:
                raise SandboxError(
                    f"{what} did not appear within {timeout:.0f}s; see {self.log_path}"
                )
            time.sleep(0.05)
        return found

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
    unshares += find_processes("systemd-nspawn", "--machine=sandbox")
    _stop_boots(unshares)
    for pid in find_processes("slirp4netns", "slirp4netns.sock"):
        kill(pid)
    return unshares


def _stop_boots(unshares: list[int]) -> None:
    """Kill the hosts booted by these processes (unshare, or the nspawn it became), all of them.

    Killing a PID namespace's PID 1 makes the kernel kill everything inside it; the sweep
    catches what a half-started host left. The booting process reaps its child and exits;
    killing it first would orphan a zombie init.
    """
    own = pid_namespace(os.getpid())
    namespaces = set()
    for pid in unshares:
        for child in children(pid):
            namespace = pid_namespace(child)
            if namespace and namespace != own:
                namespaces.add(namespace)
            kill(child)
    for namespace in namespaces:
        for pid in pids_in_namespace(namespace):
            kill(pid)
    if not wait_gone(unshares, timeout=5):
        for pid in unshares:
            kill(pid)
    wait_gone([*unshares, *(p for n in namespaces for p in pids_in_namespace(n))], strict=True)
