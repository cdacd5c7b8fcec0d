"""pyinfra run configuration (read from the current directory by the pyinfra CLI).

FAIL_PERCENT stays unset: a host that fails drops out, the others carry on, and the exit
code is still 1.
"""

REQUIRE_PYINFRA_VERSION = ">=3.10,<4"
# vast.ai's SSH proxies can be slow to accept; pyinfra's default is 10 seconds.
CONNECT_TIMEOUT = 20
