"""Inventory of @fake hosts for the offline deploy tests: one with systemd, one without.

Facts answer from canned output: Debian 12 on x86_64, nothing installed. Run from the
repository root (group_data/all.py applies), with PYINFRA_FAKE_DELAY=0.
"""

_DEBIAN = {
    "cat /etc/os-release": ["ID=debian", 'VERSION_ID="12"', 'PRETTY_NAME="Debian 12"'],
    "uname -m": ["x86_64"],
    "uname -s": ["Linux"],
    "command -v useradd": ["/usr/sbin/useradd"],
}
_SYSTEMD_DIR = {
    "/run/systemd/system": [
        "user=root group=root mode=drwxr-xr-x atime=0 mtime=0 ctime=0 size=4096 "
        "'/run/systemd/system'"
    ],
}

fake = [
    (
        "@fake/containerhost",
        {"fake_responses": dict(_DEBIAN), "fake_delay": 0, "fake_delay_jitter": 0},
    ),
    (
        "@fake/systemdhost",
        {"fake_responses": {**_DEBIAN, **_SYSTEMD_DIR}, "fake_delay": 0, "fake_delay_jitter": 0},
    ),
]
