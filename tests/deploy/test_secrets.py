"""Secrets made on the control machine: private modes, stable values, certificates that
redis-py's hostname check accepts (SAN DNS:localhost, IP:127.0.0.1) and that chain to the CA."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from roles import secrets


@pytest.fixture(autouse=True)
def secrets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "secrets"
    monkeypatch.setenv("SELFHOST_SECRETS_DIR", str(folder))
    return folder


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_token_is_generated_once_and_private(secrets_dir: Path) -> None:
    first = secrets.token("proxy_api_key")
    assert len(first) >= 40 and first == secrets.token("proxy_api_key")
    assert _mode(secrets_dir / "proxy_api_key") == 0o600
    assert _mode(secrets_dir) == 0o700


def test_server_certificate_has_the_sans_redis_py_checks() -> None:
    crt, _ = secrets.server_cert("vast-123")
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_server_certificate_chains_to_the_ca() -> None:
    crt, _ = secrets.server_cert("vast-123")
    ca = x509.load_pem_x509_certificate(secrets.ca()[0].read_bytes())
    x509.load_pem_x509_certificate(crt.read_bytes()).verify_directly_issued_by(ca)


def test_keys_are_private_and_per_host(secrets_dir: Path) -> None:
    _, key = secrets.server_cert("sandbox")
    assert key == secrets_dir / "sandbox" / "redis.key"
    assert _mode(key) == 0o600 and _mode(secrets.ca()[1]) == 0o600


def test_certificate_is_reused_until_the_ca_changes(secrets_dir: Path) -> None:
    crt, _ = secrets.server_cert("sandbox")
    before = crt.read_bytes()
    assert secrets.server_cert("sandbox")[0].read_bytes() == before
    (secrets_dir / "ca.crt").unlink()
    (secrets_dir / "ca.key").unlink()
    assert secrets.server_cert("sandbox")[0].read_bytes() != before


def test_host_names_cannot_escape_the_folder(secrets_dir: Path) -> None:
    crt, _ = secrets.server_cert("@fake/host")
    assert crt.parent.parent == secrets_dir
