"""inventories/vast.py and vast_api against recorded `GET /api/v1/instances/` responses.

The vast.ai double (vast_double/) plays the API (keyset paging, Bearer auth); the SDK and
`pyinfra ... debug-inventory --json` reach it through VAST_URL. No network.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vastai._base import _APIKEY_SENTINEL, _resolve_api_key

from inventories import vast_api
from inventories.vast_api import VastInventoryError
from vast_double import Market, VastDouble

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "vast"
PYINFRA = Path(sys.executable).with_name("pyinfra")
API_KEY = "test-key-0123456789abcdef"
PAGE_SIZE = 2  # smaller than the SDK's limit=25, so paging is exercised

# Running rows of instances_mixed.json -> the endpoint `vastai ssh-url` prints.
ENDPOINTS = {
    4100001: ("203.0.113.10", 40022),  # ssh_direc, 22/tcp mapped: direct
    4100002: ("ssh2.vast.ai", 22002),  # ssh_proxy only: proxy
    4100003: ("ssh7.vast.ai", 17015),  # jupyter_proxy: proxy port + 1
    4100004: ("198.51.100.7", 41022),  # jupyter_direc with 22/tcp mapped: direct, no + 1
    4100008: ("ssh6.vast.ai", 26008),  # no label, proxy
}
LABELLED = {None: [4100001, 4100002, 4100003, 4100004, 4100008], "llm": [4100001, 4100002, 4100003]}


def load_rows(name: str) -> list[dict[str, Any]]:
    return json.loads((FIXTURES / f"{name}.json").read_text())["instances"]


@pytest.fixture
def api() -> Iterator[VastDouble]:
    """The vast.ai double serving instances_mixed.json, `PAGE_SIZE` rows a page."""
    with VastDouble(
        Market(instances=load_rows("instances_mixed")), api_key=API_KEY, page_size=PAGE_SIZE
    ) as double:
        yield double


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def run_inventory(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `pyinfra inventories/vast.py debug-inventory --json` from the repo root with `env`."""
    base = {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [str(PYINFRA), "inventories/vast.py", "debug-inventory", "--json"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("instance_id", ENDPOINTS, ids=str)
def test_ssh_endpoint_follows_the_cli_rule(instance_id: int) -> None:
    (row,) = [r for r in load_rows("instances_mixed") if r["id"] == instance_id]
    assert vast_api.ssh_endpoint(row) == ENDPOINTS[instance_id]


@pytest.mark.parametrize(
    "row",
    [
        {"id": 7, "image_runtype": "args", "ports": {}, "ssh_host": None, "ssh_port": None},
        {"id": 7, "ports": {"22/tcp": []}, "ssh_host": "", "ssh_port": 22},
        {"id": 7, "ports": {"22/tcp": [{"HostPort": "40022"}]}, "public_ipaddr": None},
    ],
    ids=["args-runtype", "empty-host", "direct-without-ip"],
)
def test_ssh_endpoint_missing_raises(row: dict[str, Any]) -> None:
    with pytest.raises(VastInventoryError, match="vast.ai instance 7 has no usable SSH endpoint"):
        vast_api.ssh_endpoint(row)


@pytest.mark.parametrize("label", LABELLED, ids=str)
def test_only_running_instances_with_the_label(label: str | None) -> None:
    running = vast_api.running_instances(load_rows("instances_mixed"), label)
    assert [row["id"] for row in running] == LABELLED[label]


@pytest.mark.parametrize(
    ("fixture", "label", "message"),
    [
        ("instances_empty", None, "No running vast.ai instance (none in the account); "),
        ("instances_empty", "llm", 'No running vast.ai instance with label "llm" (none with that'),
        ("instances_mixed", "old", 'with label "old" (1 with that label: 1 exited); refusing'),
        ("instances_mixed", "nope", 'with label "nope" (none with that label); refusing to deploy'),
    ],
)
def test_no_running_message(fixture: str, label: str | None, message: str) -> None:
    text = vast_api.no_running_message(load_rows(fixture), label)
    assert message in text
    assert text.endswith("refusing to deploy to an empty inventory.")


# (VAST_API_KEY, XDG_CONFIG_HOME as "xdg"/"relative"/None, XDG file, legacy file) -> key
KEY_CASES = {
    "env-wins": ("env-key", "xdg", "xdg-key", "legacy-key", "env-key"),
    "xdg-file": ("", "xdg", "xdg-key\n", "legacy-key", "xdg-key"),
    "default-config-dir": (None, None, "xdg-key", "legacy-key", "xdg-key"),
    "relative-xdg-ignored": (None, "relative", "xdg-key", None, "xdg-key"),
    "legacy-file": (None, "xdg", None, " legacy-key\n", "legacy-key"),
    "nothing": (None, "xdg", None, None, None),
}


@pytest.mark.parametrize("case", KEY_CASES)
def test_api_key_lookup_order(
    case: str, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_key, xdg, xdg_key, legacy_key, expected = KEY_CASES[case]
    config_dir = {"xdg": tmp_path / "xdg", "relative": home / ".config", None: home / ".config"}
    env = {"HOME": str(home)}
    if env_key is not None:
        env["VAST_API_KEY"] = env_key
    if xdg is not None:
        env["XDG_CONFIG_HOME"] = "relative/dir" if xdg == "relative" else str(tmp_path / "xdg")
    if xdg_key is not None:
        (config_dir[xdg] / "vastai").mkdir(parents=True)
        (config_dir[xdg] / "vastai" / "vast_api_key").write_text(xdg_key)
    if legacy_key is not None:
        (home / ".vast_api_key").write_text(legacy_key)

    assert vast_api.find_api_key(env) == expected

    # The SDK's own resolver, under the same environment, agrees.
    for name in ("VAST_API_KEY", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # the SDK never closes the key file
        if expected is None:
            with pytest.raises(RuntimeError, match="No API key found"):
                _resolve_api_key(_APIKEY_SENTINEL)
        else:
            assert _resolve_api_key(_APIKEY_SENTINEL) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ssh4.vast.ai:12345", [("ssh4.vast.ai", 12345)]),
        (
            " ssh4.vast.ai:12345 , 203.0.113.7:40022,",
            [("ssh4.vast.ai", 12345), ("203.0.113.7", 40022)],
        ),
        ("[2001:db8::7]:22", [("2001:db8::7", 22)]),
    ],
    ids=["one", "two-with-spaces", "ipv6"],
)
def test_parse_vast_hosts(value: str, expected: list[tuple[str, int]]) -> None:
    assert vast_api.parse_vast_hosts(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ssh4.vast.ai", "VAST_HOSTS entry 'ssh4.vast.ai' is not host:port; expected e.g."),
        ("ssh4.vast.ai:ssh", "VAST_HOSTS entry 'ssh4.vast.ai:ssh' is not host:port"),
        ("ssh4.vast.ai:0", "VAST_HOSTS entry 'ssh4.vast.ai:0' is not host:port"),
        ("ssh4.vast.ai:70000", "VAST_HOSTS entry 'ssh4.vast.ai:70000' is not host:port"),
        (":22", "VAST_HOSTS entry ':22' is not host:port"),
        ("root@ssh4.vast.ai:22", "VAST_HOSTS entry 'root@ssh4.vast.ai:22' is not host:port"),
        ("2001:db8::7:22", "VAST_HOSTS entry '2001:db8::7:22' is not host:port"),
        ("a.example:22 b.example:23", "VAST_HOSTS entry 'a.example:22 b.example:23' is not"),
        ("h.example:22,h.example:22", "VAST_HOSTS lists h.example:22 twice."),
        (" , ", "VAST_HOSTS is set but names no host; expected e.g."),
    ],
)
def test_parse_vast_hosts_rejects(value: str, message: str) -> None:
    with pytest.raises(VastInventoryError) as raised:
        vast_api.parse_vast_hosts(value)
    assert message in str(raised.value)


def test_static_hosts_skip_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vast_api, "fetch_instances", pytest.fail)
    env = {"VAST_HOSTS": "ssh4.vast.ai:12345,[2001:db8::7]:22", "VAST_SSH_KEY": "~/.ssh/vast"}
    hosts = vast_api.build_hosts({**env, "HOME": "/home/u", "VAST_API_KEY": "k"}, "/kh")
    common = {"ssh_user": "root", "ssh_known_hosts_file": "/kh", "ssh_key": "/home/u/.ssh/vast"}
    assert hosts == [
        ("vast-ssh4.vast.ai-12345", {"ssh_hostname": "ssh4.vast.ai", "ssh_port": 12345, **common}),
        ("vast-2001-db8--7-22", {"ssh_hostname": "2001:db8::7", "ssh_port": 22, **common}),
    ]


def test_known_hosts_file_defaults_to_secrets() -> None:
    assert vast_api.known_hosts_file({}) == str(ROOT / "secrets" / "known_hosts")
    assert vast_api.known_hosts_file({"VAST_KNOWN_HOSTS": "/tmp/kh"}) == "/tmp/kh"


def test_fetch_instances_pages_with_the_key(api: VastDouble) -> None:
    rows = vast_api.fetch_instances(API_KEY, api.url)
    assert [row["id"] for row in rows] == [row["id"] for row in load_rows("instances_mixed")]
    seen = api.requests("GET", "/api/v1/instances/")
    assert [query.get("after_token") for _, _, query, _, _ in seen] == [
        None,
        4100002,
        4100004,
        4100006,
        4100008,
    ]
    assert {auth for _, _, _, auth, _ in api.seen} == {f"Bearer {API_KEY}"}


def test_fetch_instances_bad_key(api: Any) -> None:
    sentence = r"refused the API key while listing instances \(HTTP 401\); check VAST_API_KEY"
    with pytest.raises(VastInventoryError, match=sentence):
        vast_api.fetch_instances("wrong-key", api.url)


def test_build_hosts_from_the_api(api: Any) -> None:
    env = {"VAST_API_KEY": API_KEY, "VAST_URL": api.url, "VAST_LABEL": "llm"}
    hosts = dict(vast_api.build_hosts(env, "/kh"))
    assert list(hosts) == ["vast-4100001", "vast-4100002", "vast-4100003"]
    assert hosts["vast-4100003"] == {
        "ssh_hostname": "ssh7.vast.ai",
        "ssh_port": 17015,
        "ssh_user": "root",
        "ssh_known_hosts_file": "/kh",
        "vast_id": 4100003,
        "vast_label": "llm",
        "vast_gpu_name": "RTX 3090",
        "vast_num_gpus": 1,
    }


def expected_hosts(label: str | None, known_hosts: str) -> dict[str, dict[str, Any]]:
    rows = {row["id"]: row for row in load_rows("instances_mixed")}
    return {
        f"vast-{i}": {
            "ssh_hostname": ENDPOINTS[i][0],
            "ssh_port": ENDPOINTS[i][1],
            "ssh_user": "root",
            "ssh_known_hosts_file": known_hosts,
            "vast_id": i,
            "vast_label": rows[i]["label"],
        }
        for i in LABELLED[label]
    }


@pytest.mark.parametrize("key_source", ["env", "xdg-file"])
@pytest.mark.parametrize("label", ["*", "llm"])
def test_debug_inventory(
    api: Any, home: Path, tmp_path: Path, label: str, key_source: str
) -> None:
    known_hosts = tmp_path / "secrets" / "known_hosts"
    env = {"HOME": str(home), "VAST_URL": api.url, "VAST_KNOWN_HOSTS": str(known_hosts)}
    if key_source == "env":
        env["VAST_API_KEY"] = API_KEY
    else:
        (home / ".config" / "vastai").mkdir(parents=True)
        (home / ".config" / "vastai" / "vast_api_key").write_text(API_KEY + "\n")
    env["VAST_LABEL"] = label

    result = run_inventory(env)

    assert result.returncode == 0, result.stderr
    hosts = {host["name"]: host for host in json.loads(result.stdout)}
    expected = expected_hosts(None if label == "*" else label, str(known_hosts))
    assert list(hosts) == list(expected)
    for name, data in expected.items():
        assert hosts[name]["groups"] == ["vast"]
        assert {key: hosts[name]["data"].get(key) for key in data} == data
    assert stat.S_IMODE(known_hosts.stat().st_mode) == 0o600


def test_debug_inventory_static_hosts(home: Path, tmp_path: Path) -> None:
    env = {
        "HOME": str(home),
        "VAST_HOSTS": "ssh4.vast.ai:12345",
        "VAST_SSH_KEY": str(tmp_path / "id_vast"),
        "VAST_KNOWN_HOSTS": str(tmp_path / "kh"),
        "VAST_URL": "http://127.0.0.1:9",  # never contacted
    }
    result = run_inventory(env)
    assert result.returncode == 0, result.stderr
    (host,) = json.loads(result.stdout)
    assert host["name"] == "vast-ssh4.vast.ai-12345"
    assert host["groups"] == ["vast"]
    wanted = {"ssh_hostname": "ssh4.vast.ai", "ssh_port": 12345, "ssh_user": "root"}
    wanted |= {"ssh_key": str(tmp_path / "id_vast"), "ssh_known_hosts_file": str(tmp_path / "kh")}
    assert {key: host["data"].get(key) for key in wanted} == wanted


@pytest.mark.parametrize(
    ("fixture", "env", "sentence"),
    [
        (
            "instances_empty",
            {"VAST_API_KEY": API_KEY},
            'No running vast.ai instance with label "llm-selfhost" (none with that label)',
        ),
        ("instances_mixed", {"VAST_API_KEY": API_KEY, "VAST_LABEL": "old"}, '"old" (1 with that'),
        ("instances_mixed", {}, "No vast.ai API key found (looked at VAST_API_KEY, "),
        (
            "instances_mixed",
            {"VAST_API_KEY": "wrong"},
            "refused the API key while listing instances (HTTP 401)",
        ),
        (
            "instances_mixed",
            {"VAST_HOSTS": "ssh4.vast.ai"},
            "entry 'ssh4.vast.ai' is not host:port",
        ),
    ],
    ids=["zero-instances", "label-none-running", "no-key", "bad-key", "bad-vast-hosts"],
)
def test_debug_inventory_fails_with_a_sentence(
    api: Any, home: Path, tmp_path: Path, fixture: str, env: dict[str, str], sentence: str
) -> None:
    api.market.instances = load_rows(fixture)
    known_hosts = tmp_path / "secrets" / "known_hosts"
    env = {**env, "HOME": str(home), "VAST_URL": api.url, "VAST_KNOWN_HOSTS": str(known_hosts)}

    result = run_inventory(env)

    assert result.returncode != 0
    assert sentence in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not known_hosts.exists()


def test_the_inventory_defaults_to_the_fleet_label(api: VastDouble, home: Path) -> None:
    api.market.instances[3]["label"] = "llm-selfhost"  # 4100004, running
    env = {"HOME": str(home), "VAST_API_KEY": API_KEY, "VAST_URL": api.url,
           "VAST_KNOWN_HOSTS": str(home / "kh")}
    result = run_inventory(env)
    assert result.returncode == 0, result.stderr
    assert [host["name"] for host in json.loads(result.stdout)] == ["vast-4100004"]


def test_data_file_gives_every_host_deploy_data(api: VastDouble, home: Path) -> None:
    data = {"ollama_download_url": "http://10.0.2.2:8080/o.tar.zst", "ollama_sha256": "ab" * 32}
    (home / "data.json").write_text(json.dumps({**data, "ssh_port": 1}))
    env = {"HOME": str(home), "VAST_API_KEY": API_KEY, "VAST_URL": api.url, "VAST_LABEL": "llm",
           "VAST_KNOWN_HOSTS": str(home / "kh"), "VAST_DATA_FILE": "~/data.json"}
    result = run_inventory(env)
    assert result.returncode == 0, result.stderr
    hosts = json.loads(result.stdout)
    assert len(hosts) == 3
    for host in hosts:
        assert {key: host["data"][key] for key in data} == data
        assert host["data"]["ssh_port"] == ENDPOINTS[host["data"]["vast_id"]][1]  # the row wins


@pytest.mark.parametrize(
    ("content", "sentence"),
    [
        (None, "Cannot read VAST_DATA_FILE {path}: No such file or directory; unset it"),
        ("{", "VAST_DATA_FILE {path} is not valid JSON"),
        ("[1]", "VAST_DATA_FILE {path} holds a JSON list; it must be an object of deploy data"),
    ],
    ids=["missing", "not-json", "not-an-object"],
)
def test_a_bad_data_file_is_a_sentence(tmp_path: Path, content: str | None, sentence: str) -> None:
    path = tmp_path / "data.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(VastInventoryError) as caught:
        vast_api.deploy_data({"VAST_DATA_FILE": str(path)})
    assert str(caught.value).startswith(sentence.format(path=path))


@pytest.mark.parametrize(
    ("value", "label"), [(None, "llm-selfhost"), ("  ", "llm-selfhost"), ("mine", "mine")]
)
def test_label_of(value: str | None, label: str) -> None:
    env = {} if value is None else {"VAST_LABEL": value}
    assert vast_api.label_of(env) == label
