"""Secrets made on the control machine, kept in the git-ignored ``secrets/`` folder.

Layout (files 0600 unless noted)::

    secrets/proxy_api_key          the key clients send to proxy_app (shared by all hosts)
    secrets/redis_password         Redis `requirepass` (shared by all hosts)
    secrets/ca.key, ca.crt (0644)  the CA signing every Redis server certificate
    secrets/<host>/redis.key, redis.crt (0644)   per host, SAN DNS:localhost, IP:127.0.0.1

Everything is created once, on first use, and never printed. ``SELFHOST_SECRETS_DIR``
moves the folder (tests use a temporary one).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO = Path(__file__).resolve().parents[1]
CA_DAYS = 3650
CERT_DAYS = 825
RENEW_BEFORE = dt.timedelta(days=30)


def secrets_dir() -> Path:
    """The secrets folder, created 0700."""
    path = Path(os.environ.get("SELFHOST_SECRETS_DIR") or REPO / "secrets")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def token(name: str) -> str:
    """Return the secret ``secrets/<name>``, generating 32 random URL-safe bytes if missing."""
    path = secrets_dir() / name
    if not path.exists():
        _write(path, secrets.token_urlsafe(32).encode() + b"\n", 0o600)
    return path.read_text().strip()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def ca() -> tuple[Path, Path]:
    """Return (ca.crt, ca.key), creating the CA once."""
    crt, key_path = secrets_dir() / "ca.crt", secrets_dir() / "ca.key"
    if crt.exists() and key_path.exists():
        return crt, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("llm-selfhost CA"))
        .issuer_name(_name("llm-selfhost CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(key_path, _key_pem(key), 0o600)
    _write(crt, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return crt, key_path


def server_cert(hostname: str) -> tuple[Path, Path]:
    """Return (redis.crt, redis.key) for ``hostname``; (re)issue when missing, expiring or stale."""
    ca_crt_path, ca_key_path = ca()
    folder = secrets_dir() / hostname.replace("/", "_")
    crt, key_path = folder / "redis.crt", folder / "redis.key"
    ca_cert = x509.load_pem_x509_certificate(ca_crt_path.read_bytes())
    if crt.exists() and key_path.exists() and _still_good(crt, ca_cert):
        return crt, key_path
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"redis on {hostname}"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    _write(key_path, _key_pem(key), 0o600)
    _write(crt, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return crt, key_path


def _still_good(crt: Path, ca_cert: x509.Certificate) -> bool:
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    fresh = cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc) > RENEW_BEFORE
    return fresh and cert.issuer == ca_cert.subject and _signed_by(cert, ca_cert)


def _signed_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca_cert)
    except Exception:  # any failure (signature, key type) means "reissue"
        return False
    return True
