"""The gateway's HAProxy config: rendered from the template, accepted by `haproxy -c`, sized."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fleet.haproxy import Backend, GatewayConfig, GatewayError, check_config, write_config
from proxy_app.config import Settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "claude_code"
# Every status HAProxy 2.6 can produce itself (configuration.txt, "http-error"), but 200.
HAPROXY_STATUSES = (400, 401, 403, 404, 405, 407, 408, 410, 413, 425, 429, 500, 501, 502, 503,
                    504)


def _config(tmp_path: Path, hosts: int = 2, **overrides: object) -> str:
    cfg = GatewayConfig(hosts=[Backend(f"vast-{i}", 40000 + i) for i in range(hosts)],
                        **overrides)  # type: ignore[arg-type]
    return write_config(cfg, tmp_path).read_text()


@pytest.mark.parametrize("hosts", [1, 2, 5])
def test_the_rendered_config_passes_haproxy_check_without_warnings(
    tmp_path: Path, hosts: int
) -> None:
    text = _config(tmp_path, hosts)
    assert text.startswith("# managed by fleet/gateway.py — do not edit")
    assert len(re.findall(r"^\s+server vast-\d+ 127\.0\.0\.1:400\d+", text, re.M)) == 2 * hosts


def test_both_ports_listen_on_loopback_only(tmp_path: Path) -> None:
    text = _config(tmp_path, port=18001, stats_port=18404)
    assert re.findall(r"^\s+bind (\S+)", text, re.M) == ["127.0.0.1:18001", "127.0.0.1:18404"]


def test_every_status_haproxy_produces_is_an_envelope_or_no_answer(tmp_path: Path) -> None:
    text = _config(tmp_path)
    for status in HAPROXY_STATUSES:
        envelope = re.search(
            rf"http-error status {status} content-type application/json lf-string "
            r"'\{\"type\":\"error\",\"error\":\{\"type\":\"\w+\"", text)
        silent = f"errorfile {status} /dev/null" in text
        # 401 and 407 come only from auth rules, 410 only from "return"/"deny": none is used.
        assert envelope or silent or status in (401, 407, 410), status


def _wire_size(path: Path) -> int:
    return len(json.dumps(json.loads(path.read_text()), separators=(",", ":")).encode())


def test_the_retry_buffer_holds_claude_code_bodies_of_long_sessions() -> None:
    bufsize = GatewayConfig().bufsize
    largest = max(_wire_size(path) for path in FIXTURES.glob("*request*.json"))
    # The captures weigh 3.04 bytes per estimated prompt token; proxy_app admits num_ctx tokens.
    admitted = 3.1 * Settings(_env_file=None).num_ctx  # type: ignore[call-arg]
    assert bufsize >= max(largest, admitted, 200_000) * 1.25, (bufsize, largest, admitted)


def test_no_host_is_a_sentence(tmp_path: Path) -> None:
    with pytest.raises(GatewayError, match="at least one host"):
        write_config(GatewayConfig(hosts=[]), tmp_path)


def test_a_config_haproxy_rejects_is_a_sentence_naming_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.cfg"
    bad.write_text("defaults\n    mode http\n    balance no-such-algorithm\n")
    with pytest.raises(GatewayError, match=r"HAProxy rejected the generated config .*balance"):
        check_config(bad)
