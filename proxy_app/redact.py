"""Keep secrets out of what proxy_app echoes or logs: URL credentials and query strings."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameters of the API whose values are never secret; every other value is masked.
PUBLIC_QUERY_PARAMS = frozenset({"beta", "limit", "after_id", "before_id"})
MASK = "***"


def redact_url(url: str) -> str:
    """The URL with its user and password (if any) replaced by `***`."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{MASK}@{host}"))


def redact_query(path: str) -> str:
    """A request target with every query value but the API's public ones masked."""
    target, sep, query = path.partition("?")
    if not sep:
        return path
    pairs = parse_qsl(query, keep_blank_values=True)
    masked = [(k, v if k in PUBLIC_QUERY_PARAMS else MASK) for k, v in pairs]
    return f"{target}?{urlencode(masked, safe='*')}"


class AccessLogFilter(logging.Filter):
    """Masks query values in uvicorn's access log (`GET /v1/models?key=… HTTP/1.1`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


def install_access_log_filter() -> None:
    """Attach the filter once to uvicorn's access logger."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, AccessLogFilter) for f in logger.filters):
        logger.addFilter(AccessLogFilter())
