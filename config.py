"""pyinfra run configuration (read from the current directory by the pyinfra CLI)."""

REQUIRE_PYINFRA_VERSION = ">=3.10,<4"
# One broken host must not stop the others; the exit code still reports the failure.
FAIL_PERCENT = 100
CONNECT_TIMEOUT = 15
