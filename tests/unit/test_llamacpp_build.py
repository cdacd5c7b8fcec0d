"""devkit/llamacpp.py and the sandbox's engine choice, without building anything: the cache's
build record, the release-shaped archive (same binary, same bytes), the checksum refusal, and
each host's engine as `SANDBOX_ENGINE` and the fleet record give it."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from devkit import llamacpp
from sandbox import SandboxError
from sandbox.fleet import Fleet, host_engines


def _fake_build(cache: Path, content: bytes = b"\x7fELF fake llama-server") -> Path:
    binary = llamacpp.server_path(cache)
    binary.parent.mkdir(parents=True)
    binary.write_bytes(content)
    info = {"flags": list(llamacpp.CMAKE_FLAGS), "size": len(content)}
    (binary.parent / "build.json").write_text(json.dumps(info))
    return binary


def test_a_build_counts_only_with_its_record_and_flags(tmp_path: Path) -> None:
    assert llamacpp.build_info(tmp_path) is None
    binary = _fake_build(tmp_path)
    assert llamacpp.build_info(tmp_path) is not None
    record = binary.parent / "build.json"
    record.write_text(json.dumps({"flags": ["-DOTHER=ON"], "size": binary.stat().st_size}))
    assert llamacpp.build_info(tmp_path) is None  # other flags: rebuilt


def test_archive_has_the_release_layout_and_the_same_bytes_each_time(tmp_path: Path) -> None:
    _fake_build(tmp_path)
    first, digest = llamacpp.build_archive(tmp_path / "a", tmp_path)
    again, digest_again = llamacpp.build_archive(tmp_path / "b", tmp_path)
    assert digest == digest_again and first.read_bytes() == again.read_bytes()
    assert first.name.startswith(f"llama-{llamacpp.LLAMA_CPP_TAG}-bin-sandbox-")
    with tarfile.open(fileobj=io.BytesIO(first.read_bytes())) as tar:
        member = tar.getmember(f"llama-{llamacpp.LLAMA_CPP_TAG}/llama-server")
        assert member.mode == 0o755
        extracted = tar.extractfile(member)
        assert extracted is not None and extracted.read() == b"\x7fELF fake llama-server"


def test_archive_refuses_a_missing_build(tmp_path: Path) -> None:
    with pytest.raises(llamacpp.BuildError, match="python -m devkit.llamacpp build"):
        llamacpp.build_archive(tmp_path / "out", tmp_path)


def test_a_download_with_another_digest_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.tar.gz"
    path.write_bytes(b"tampered")
    with pytest.raises(llamacpp.BuildError, match="expected 00+; refusing it"):
        llamacpp._verify(path, "0" * 64)


@pytest.mark.parametrize(
    ("env", "count", "expected"),
    [("", 2, ["ollama", "ollama"]), ("llamacpp", 2, ["llamacpp", "llamacpp"]),
     ("llamacpp,ollama", 3, ["llamacpp", "ollama", "ollama"])],
)  # fmt: skip
def test_engines_follow_sandbox_engine(
    monkeypatch: pytest.MonkeyPatch, env: str, count: int, expected: list[str]
) -> None:
    monkeypatch.setenv("SANDBOX_ENGINE", env)
    assert host_engines(count) == expected


def test_without_sandbox_engine_hosts_keep_their_recorded_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SANDBOX_ENGINE", raising=False)
    assert host_engines(2, None, {"sandbox-1": "llamacpp"}) == ["llamacpp", "ollama"]


def test_an_unknown_engine_is_refused_with_a_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_ENGINE", "vllm")
    with pytest.raises(SandboxError, match="'vllm' is not an engine; use one of: ollama, llamacpp"):
        host_engines(1)


def test_fleet_reads_engines_from_its_record(tmp_path: Path) -> None:
    record = {"hosts": ["sandbox-1", "sandbox-2"], "kinds": ["container"] * 2,
              "engines": ["llamacpp", "ollama"]}  # fmt: skip
    (tmp_path / "fleet.json").write_text(json.dumps(record))
    assert Fleet(tmp_path).engines() == {"sandbox-1": "llamacpp", "sandbox-2": "ollama"}
    (tmp_path / "fleet.json").write_text(json.dumps({"hosts": ["sandbox-1"]}))
    assert Fleet(tmp_path).engines() == {"sandbox-1": "ollama"}  # recorded before engines
