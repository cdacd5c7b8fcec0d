"""Loopback TCP ports: a free one for servers the tests and the bench start, and whether one is
taken (the sandbox's ssh doors, the tunnel helper's local port)."""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    """Whether something listens on (or holds) 127.0.0.1:``port``.

    Probed as a listener binds (SO_REUSEADDR, as ssh and slirp4netns do): connections left in
    TIME_WAIT do not hold the port.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False
