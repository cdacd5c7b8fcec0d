"""`python -m proxy_app`: serve the app with uvicorn, configured from PROXY_* variables."""

from __future__ import annotations

import sys

import uvicorn
from pydantic import ValidationError

from proxy_app.config import Settings
from proxy_app.server import raise_fd_limit, uvicorn_options


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            name = f"PROXY_{where.upper()}" if where else "configuration"
            message = error["msg"].removeprefix("Value error, ")
            sys.stderr.write(f"proxy_app: {name}: {message}\n")
        return 2
    raise_fd_limit()
    uvicorn.run(
        "proxy_app.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        **uvicorn_options(settings, bind=settings.workers == 1),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
