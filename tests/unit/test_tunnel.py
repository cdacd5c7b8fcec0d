"""fleet/tunnel.py and its parts: the ssh command and Claude Code's env, from host data."""

from __future__ import annotations

import http.server
import shlex
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devkit.ports import free_port, port_in_use
from fleet import claude_code, hostdata, ssh_tunnel, tunnel
from fleet.errors import TunnelError
from tests.conftest import API_KEY, LiveProxy

DATA = {
    **hostdata.role_defaults(),
    "ssh_hostname": "203.0.113.7",
    "ssh_port": 41022,
    "ssh_user": "root",
    "ssh_key": "/keys/id_ed25519",
    "ssh_known_hosts_file": "/repo/.ssh/known_hosts",
}
HOSTS = [{"name": "vast-1", "groups": ["vast"], "data": DATA}, {"name": "vast-2", "data": {}}]


def test_ssh_command_forwards_the_local_port_to_the_proxy() -> None:
    argv = ssh_tunnel.ssh_command("vast-1", DATA, 8001)
    assert argv[:4] == ["ssh", "-N", "-L", "8001:127.0.0.1:8000"]
    assert argv[argv.index("-p") + 1] == "41022"
    assert argv[argv.index("-i") + 1] == "/keys/id_ed25519"
    options = [argv[i + 1] for i, a in enumerate(argv) if a == "-o"]
    assert "UserKnownHostsFile=/repo/.ssh/known_hosts" in options
    assert {"ServerAliveInterval=30", "ServerAliveCountMax=3", "ExitOnForwardFailure=yes"} <= set(
        options
    )
    assert argv[-1] == "root@203.0.113.7"


def test_ssh_command_defaults_without_endpoint_data() -> None:
    argv = ssh_tunnel.ssh_command("myhost", {"proxy_port": 9000}, 8002)
    assert "8002:127.0.0.1:9000" in argv and argv[argv.index("-p") + 1] == "22"
    assert "-i" not in argv and argv[-1] == "root@myhost"


def test_claude_env_sets_only_what_changes_claude_codes_behaviour() -> None:
    env = claude_code.claude_env(DATA, 8001, "sk-secret")
    window = int(DATA["ollama_context_length"])  # proxy_num_ctx is empty: it follows Ollama's
    assert env == {
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:8001",
        "ANTHROPIC_AUTH_TOKEN": "sk-secret",
        "CLAUDE_CODE_FILE_READ_MAX_OUTPUT_TOKENS": str(window // 4),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }


def test_render_prints_the_command_and_export_lines_that_round_trip() -> None:
    command = ssh_tunnel.ssh_command("vast-1", {**DATA, "ssh_key": "/my keys/id"}, 8001)
    env = claude_code.claude_env(DATA, 8001, "tok'en with space")
    text = claude_code.render(command, env)
    assert shlex.join(command) in text.splitlines()
    assert claude_code.parse_exports(text) == env


def test_render_unsets_what_earlier_printouts_set() -> None:
    text = claude_code.render(["ssh"], claude_code.claude_env(DATA, 8001, "sk"))
    unset = [line for line in text.splitlines() if line.startswith("unset ")]
    assert unset == [
        "unset ANTHROPIC_API_KEY ANTHROPIC_MODEL ANTHROPIC_DEFAULT_OPUS_MODEL "
        "ANTHROPIC_DEFAULT_SONNET_MODEL ANTHROPIC_DEFAULT_HAIKU_MODEL "
        "CLAUDE_CODE_AUTO_COMPACT_WINDOW"
    ]


def test_a_key_file_is_referenced_not_printed(tmp_path: Path) -> None:
    key_file = tmp_path / "my secrets" / "proxy_api_key"
    key_file.parent.mkdir()
    key_file.write_text("sk-never-on-screen\n")
    env = claude_code.claude_env(DATA, 8001, key_file)
    text = claude_code.render(["ssh"], env)
    assert "sk-never-on-screen" not in text
    assert f"export ANTHROPIC_AUTH_TOKEN=\"$(cat '{key_file}')\"" in text.splitlines()
    assert claude_code.parse_exports(text)["ANTHROPIC_AUTH_TOKEN"] == "sk-never-on-screen"
    shown = claude_code.render(["ssh"], env, show_secrets=True)
    assert "export ANTHROPIC_AUTH_TOKEN=sk-never-on-screen" in shown.splitlines()


def test_pick_host_first_by_default_or_by_name() -> None:
    assert hostdata.pick_host(HOSTS, None)["name"] == "vast-1"
    assert hostdata.pick_host(HOSTS, "vast-2")["name"] == "vast-2"
    with pytest.raises(TunnelError, match="No host 'vast-9'.*vast-1, vast-2"):
        hostdata.pick_host(HOSTS, "vast-9")


def test_port_in_use_names_the_port_and_a_free_alternative(taken_port: int) -> None:
    with pytest.raises(TunnelError) as raised:
        ssh_tunnel.check_local_port(taken_port)
    message = str(raised.value)
    assert f"Local port {taken_port} is already in use" in message
    alternative = int(message.rsplit("--local-port ", 1)[1].rstrip("."))
    assert alternative != taken_port and not port_in_use(alternative)


def test_opening_on_a_taken_port_the_user_named_exits_2_with_the_sentence(
    taken_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tunnel.main(["--open", "--local-port", str(taken_port)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and f"Local port {taken_port} is already in use" in captured.err


def test_printing_moves_from_a_taken_port_to_a_free_one(taken_port: int) -> None:
    port, note = ssh_tunnel.settle_port(taken_port, explicit=True, opening=False)
    assert port != taken_port and not port_in_use(port)
    assert note == f"Local port {taken_port} is in use; using {port} instead."


def test_free_port_is_kept_without_a_note(taken_port: int) -> None:
    free = ssh_tunnel.free_port_near(taken_port)
    assert ssh_tunnel.settle_port(free, explicit=False, opening=True) == (free, "")


@pytest.fixture
def answering_tunnel() -> Iterator[int]:
    """A local port where proxy_app's /health answers, as through an open tunnel."""

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"status":"healthy"}' if self.path == "/health" else b"{}"
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_an_open_tunnel_is_reported_and_kept_when_printing(answering_tunnel: int) -> None:
    port, note = ssh_tunnel.settle_port(answering_tunnel, explicit=False, opening=False)
    assert port == answering_tunnel
    assert note == f"A tunnel is already open on 127.0.0.1:{port} (proxy_app reports healthy)."


def test_opening_beside_an_open_tunnel_on_the_default_port_moves_on(answering_tunnel: int) -> None:
    port, note = ssh_tunnel.settle_port(answering_tunnel, explicit=False, opening=True)
    assert port != answering_tunnel and "is in use; using" in note


def test_missing_inventory_is_a_sentence(tmp_path: Path) -> None:
    with pytest.raises(TunnelError, match="does not exist"):
        hostdata.load_inventory(tmp_path / "nope.py")


def test_inventory_data_sits_over_role_defaults(tmp_path: Path) -> None:
    inventory = tmp_path / "two.py"
    inventory.write_text(
        "hosts = [('box-a', {'ssh_hostname': '10.0.0.1', 'proxy_port': 9100}), 'box-b']\n"
    )
    hosts = hostdata.load_inventory(inventory)
    assert [h["name"] for h in hosts] == ["box-a", "box-b"]
    assert hosts[0]["data"]["proxy_port"] == 9100
    assert hosts[1]["data"]["proxy_port"] == hostdata.role_defaults()["proxy_port"]


def test_proxy_key_comes_from_the_secrets_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SELFHOST_SECRETS_DIR", str(tmp_path))
    with pytest.raises(TunnelError, match="proxy_api_key is missing; deploy first"):
        claude_code.proxy_key()
    assert not (tmp_path / "proxy_api_key").exists()  # never generated here
    (tmp_path / "proxy_api_key").write_text("sk-from-secrets\n")
    assert claude_code.proxy_key() == "sk-from-secrets"
    assert claude_code.proxy_key_file() == (tmp_path / "proxy_api_key").absolute()


def test_the_command_prints_the_key_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SELFHOST_SECRETS_DIR", str(tmp_path))
    (tmp_path / "proxy_api_key").write_text("sk-only-when-asked\n")
    inventory = tmp_path / "one.py"
    inventory.write_text("hosts = [('box-a', {'ssh_hostname': '10.0.0.1'})]\n")
    args = ["--inventory", str(inventory), "--local-port", str(free_port())]
    assert tunnel.main(args) == 0
    hidden = capsys.readouterr()
    assert "sk-only-when-asked" not in hidden.out + hidden.err
    assert claude_code.parse_exports(hidden.out)["ANTHROPIC_AUTH_TOKEN"] == "sk-only-when-asked"
    assert tunnel.main([*args, "--show-secrets"]) == 0
    assert "export ANTHROPIC_AUTH_TOKEN=sk-only-when-asked" in capsys.readouterr().out


def test_a_tunnel_to_another_deployment_is_not_reused(proxy: LiveProxy) -> None:
    """A real proxy_app on the port: kept when it accepts our key, skipped when it refuses it
    (a tunnel to another fleet, whose printed lines would fail with Claude Code's
    "Not logged in · Please run /login")."""
    port = int(proxy.url.rsplit(":", 1)[1])
    kept = ssh_tunnel.settle_port(port, explicit=False, opening=False, key=API_KEY)
    assert kept == (
        port,
        f"A tunnel is already open on 127.0.0.1:{port} (proxy_app reports healthy).",
    )
    moved, note = ssh_tunnel.settle_port(port, explicit=False, opening=False, key="sk-other-fleet")
    assert moved != port and not port_in_use(moved)
    assert note == (
        f"Local port {port} has a tunnel to another deployment's proxy_app (it refuses this "
        f"key); using {moved} instead."
    )


def test_printing_finds_this_deployments_tunnel_past_another_one(
    make_proxy: Callable[..., LiveProxy],
) -> None:
    """8001 holds a tunnel to another fleet, 8002 ours (as after `--open` moved there): the
    printed lines use 8002, not the next free port."""
    port = next(p for p in range(20000, 21000) if not any(map(port_in_use, (p, p + 1))))
    make_proxy(port=port, api_keys=["sk-other-fleet"])
    make_proxy(port=port + 1)
    assert ssh_tunnel.settle_port(port, explicit=False, opening=False, key=API_KEY) == (
        port + 1,
        f"A tunnel is already open on 127.0.0.1:{port + 1} (proxy_app reports healthy).",
    )


def test_a_llamacpp_host_gets_a_tunnel_to_its_proxy_app_and_claude_env() -> None:
    data = {**hostdata.role_defaults(), "engine": "llamacpp", "ssh_port": 2222}
    data.update(llamacpp_model_name="SmolLM2-135M-Instruct", llamacpp_context_length=32768)
    command, text = tunnel._tunnel_and_text({"name": "sandbox-1", "data": data}, 8001, False)
    assert command[command.index("-L") + 1] == "8001:127.0.0.1:8000"  # proxy_app, not :8080
    assert shlex.join(command) in text.splitlines()
    assert "export ANTHROPIC_BASE_URL=http://127.0.0.1:8001" in text
    assert "CLAUDE_CODE_FILE_READ_MAX_OUTPUT_TOKENS=8192" in text  # a quarter of its window
