"""Build the sandbox hosts' Debian rootfs: debootstrap, trusted CAs, apt sources, sshd.

Two kinds, each a cache outside the repository, never written to while a sandbox runs (each host
mounts it as the read-only lower layer of an overlay), rebuilt when missing or when its recipe
stamp differs:

- ``container`` (default `/var/cache/llm-selfhost/bookworm-rootfs`, env `SANDBOX_ROOTFS`): no
  systemd, like a vast.ai container;
- ``systemd`` (the same path with `-systemd` appended): systemd, systemd-sysv and dbus added, booted
  by systemd-nspawn like a user's own GPU server or a vast.ai VM.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import SandboxError
from .system import Log, clean_env, find_processes, lock, unmount_under

# Bump when anything below changes what ends up in the rootfs.
RECIPE_VERSION = 2
SUITE = "bookworm"
INCLUDE = ("openssh-server", "python3", "ca-certificates", "iproute2", "procps", "curl")
# What each kind adds to INCLUDE.
KINDS: dict[str, tuple[str, ...]] = {
    "container": (),
    "systemd": ("systemd", "systemd-sysv", "dbus"),
}
STAMP = "etc/llm-selfhost-sandbox.json"
EXTRA_CA_DIR = "usr/local/share/ca-certificates/llm-selfhost-host"
SSHD_DROP_IN = """\
# managed by sandbox/ -- do not edit
# Port 22 in the host's own network namespace, reached through a forwarded loopback port of the
# control machine; vast's sshd is keys-only as root as well.
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PrintMotd no
"""
# Outbound TLS here is intercepted; pip ignores the system store (it bundles certifi) unless told.
PIP_CONF = """\
# managed by sandbox/ -- do not edit
[global]
cert = /etc/ssl/certs/ca-certificates.crt
"""
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)
DEFAULT_ROOTFS = Path("/var/cache/llm-selfhost/bookworm-rootfs")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"


def default_rootfs(kind: str = "container") -> Path:
    """Return the rootfs cache path of a kind (env `SANDBOX_ROOTFS` or the default)."""
    base = Path(os.environ.get("SANDBOX_ROOTFS") or DEFAULT_ROOTFS)
    return base if kind == "container" else base.with_name(f"{base.name}-{check_kind(kind)}")


def check_kind(kind: str) -> str:
    """Return ``kind`` if it is a sandbox kind, else raise a sentence naming them."""
    if kind not in KINDS:
        raise SandboxError(f"{kind!r} is not a sandbox kind; use one of: {', '.join(KINDS)}.")
    return kind


def host_mirrors() -> tuple[str, str]:
    """Return (debian, debian-security) mirror URLs as this machine's apt uses them."""
    main = os.environ.get("SANDBOX_MIRROR", "")
    security = ""
    for uri, suites in _apt_entries():
        if not security and f"{SUITE}-security" in suites:
            security = uri
        elif not main and SUITE in suites:
            main = uri
    return (main or DEFAULT_MIRROR).rstrip("/"), (security or DEFAULT_SECURITY_MIRROR).rstrip("/")


def recipe(kind: str = "container") -> dict[str, object]:
    """Return the inputs that define the rootfs; a change triggers a rebuild."""
    main, security = host_mirrors()
    return {
        "version": RECIPE_VERSION,
        "suite": SUITE,
        "include": [*INCLUDE, *KINDS[check_kind(kind)]],
        "mirror": main,
        "security_mirror": security,
        "sshd": hashlib.sha256((SSHD_DROP_IN + PIP_CONF).encode()).hexdigest()[:16],
    }


def read_stamp(rootfs: Path) -> dict[str, object] | None:
    """Return the stamp of a built rootfs, or None when there is none."""
    try:
        return json.loads((rootfs / STAMP).read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def is_current(rootfs: Path, kind: str = "container") -> bool:
    """Tell whether `rootfs` exists and was built from the current recipe."""
    stamp = read_stamp(rootfs)
    return stamp is not None and stamp.get("recipe") == recipe(kind)


def build_rootfs(
    rootfs: Path | None = None, *, kind: str = "container", force: bool = False, log: Log = print
) -> bool:
    """Build the rootfs unless it is current; return True when a build happened.

    + rootfs: target directory (default: `default_rootfs()`)
    + force: rebuild even when the stamp matches
    + log: callable taking one line of progress

    Example: `build_rootfs(Path("/var/cache/llm-selfhost/bookworm-rootfs"))`
    """
    rootfs = (rootfs or default_rootfs(kind)).absolute()
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    with lock(rootfs.parent / f".{rootfs.name}.lock"):
        if not force and is_current(rootfs, kind):
            sync_ca_certificates(rootfs, log=log)
            return False
        users = find_processes("unshare", str(rootfs))
        if users:
            raise SandboxError(
                f"The rootfs {rootfs} is in use by a running sandbox (pids {users}); "
                "run `python -m sandbox down` first."
            )
        _remove_tree(rootfs.parent, f".{rootfs.name}.build-")
        tmp = rootfs.parent / f".{rootfs.name}.build-{os.getpid()}"
        started = time.monotonic()
        log(f"Building {rootfs} with debootstrap (a few minutes)...")
        _debootstrap(tmp, kind)
        _configure(tmp, kind, log=log)
        _swap_into_place(tmp, rootfs)
        log(f"Built {rootfs} in {time.monotonic() - started:.0f}s")
        return True


def sync_ca_certificates(rootfs: Path, *, log: Log = print) -> None:
    """Make the rootfs trust every CA this machine trusts; a no-op when it already does."""
    missing = _pem_set(Path("/etc/ssl/certs/ca-certificates.crt")) - _pem_set(
        rootfs / "etc/ssl/certs/ca-certificates.crt"
    )
    if not missing:
        return
    log(f"Adding {len(missing)} CA certificate(s) from this machine to the rootfs")
    extra = rootfs / EXTRA_CA_DIR
    extra.mkdir(parents=True, exist_ok=True)
    for pem in sorted(missing):
        name = hashlib.sha256(pem.encode()).hexdigest()[:16]
        (extra / f"host-{name}.crt").write_text(pem + "\n")
    chroot(rootfs, "update-ca-certificates")


def chroot(rootfs: Path, *argv: str) -> str:
    """Run a command in the rootfs with a clean environment, in a throwaway mount namespace."""
    cmd = ["unshare", "--mount", "--propagation", "private", "chroot", str(rootfs), *argv]
    proc = subprocess.run(cmd, env=clean_env(), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SandboxError(f"`{' '.join(argv)}` failed in {rootfs}: {proc.stderr.strip()}")
    return proc.stdout


def _debootstrap(target: Path, kind: str) -> None:
    main, _ = host_mirrors()
    # A private mount namespace: debootstrap's /proc and /sys mounts in the target die with it.
    cmd = [
        "unshare", "--mount", "--propagation", "private",
        "debootstrap", "--variant=minbase", f"--include={','.join([*INCLUDE, *KINDS[kind]])}",
        SUITE, str(target), main,
    ]  # fmt: skip
    if shutil.which("debootstrap") is None:
        raise SandboxError("debootstrap is not installed; run `apt-get install -y debootstrap`.")
    proc = subprocess.run(cmd, env=clean_env(), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        raise SandboxError(f"debootstrap failed (exit {proc.returncode}):\n{tail}")


def _configure(root: Path, kind: str, *, log: Log) -> None:
    main, security = host_mirrors()
    # Same shape as the debian:bookworm image: deb822 sources, empty lists (the deploy runs update).
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    (root / "etc/apt/sources.list.d/debian.sources").write_text(
        f"Types: deb\nURIs: {main}\nSuites: {SUITE} {SUITE}-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        f"Types: deb\nURIs: {security}\nSuites: {SUITE}-security\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    chroot(root, "apt-get", "clean")
    for lists in (root / "var/lib/apt/lists").glob("*_*"):
        lists.unlink()
    (root / "etc/ssh/sshd_config.d/llm-selfhost-sandbox.conf").write_text(SSHD_DROP_IN)
    (root / "etc/pip.conf").write_text(PIP_CONF)
    chroot(root, "ssh-keygen", "-A")
    (root / "etc/hostname").write_text("sandbox\n")
    sync_ca_certificates(root, log=log)
    # Must stay absent: the deploy picks supervisor over systemd by this path, as on vast.
    if (root / "run/systemd/system").exists():
        raise SandboxError("The rootfs has /run/systemd/system; the sandbox must lack systemd.")
    if kind == "systemd":
        # sshd is the door (enabled by its package); nspawn supplies the console, no gettys.
        (root / "root/.ssh").mkdir(mode=0o700, exist_ok=True)
        chroot(root, "systemctl", "mask", "getty@tty1.service", "serial-getty@console.service")
    stamp = {"recipe": recipe(kind), "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (root / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")


def _swap_into_place(tmp: Path, rootfs: Path) -> None:
    old = rootfs.parent / f".{rootfs.name}.old-{os.getpid()}"
    if rootfs.exists():
        rootfs.rename(old)
    tmp.rename(rootfs)
    _remove_tree(rootfs.parent, f".{rootfs.name}.old-")


def _remove_tree(parent: Path, prefix: str) -> None:
    """Delete leftovers named `prefix*` in `parent`, never following a mount point."""
    for path in parent.glob(f"{prefix}*"):
        unmount_under(path)
        shutil.rmtree(path, ignore_errors=False)


def _pem_set(bundle: Path) -> set[str]:
    """Return the certificates of a PEM bundle, normalised to 64-column PEM text."""
    try:
        text = bundle.read_text(errors="replace")
    except OSError:
        return set()
    pems = set()
    for match in _PEM.finditer(text):
        body = "".join(match.group(0).split("-----")[2].split())
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        pems.add("\n".join(["-----BEGIN CERTIFICATE-----", *lines, "-----END CERTIFICATE-----"]))
    return pems


def _apt_entries() -> Iterator[tuple[str, list[str]]]:
    """Yield (uri, suites) of this machine's enabled apt sources."""
    etc = Path("/etc/apt")
    files = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]
    for path in files:
        for line in _read_lines(path):
            words = re.sub(r"\[[^]]*\]", "", line).split()
            if len(words) >= 3 and words[0] == "deb":
                yield words[1], [words[2]]
    for path in sorted((etc / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", "\n".join(_read_lines(path))):
            fields = dict(
                (k.strip().lower(), v.strip())
                for k, _, v in (ln.partition(":") for ln in stanza.splitlines())
            )
            if fields.get("enabled", "yes").lower() == "no" or "deb" not in fields.get("types", ""):
                continue
            for uri in fields.get("uris", "").split():
                yield uri, fields.get("suites", "").split()


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text()
    except OSError:
        return []
    return [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
