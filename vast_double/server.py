"""HTTP front of the vast.ai double: the endpoints, methods and JSON the `vastai` SDK uses.

Each route cites the SDK 1.9.1 function that calls it (files under vastai/):

- GET /api/v1/instances/ (keyset paging: limit, after_token -> next_token):
  api/instances.py `show_instances`, `show_instances_v1`
- GET /api/v0/instances/{id}/?owner=me -> {"instances": row}: api/instances.py `show_instance`
- POST /api/v0/bundles/ (filters `{field: {op: value}}`, order, type, limit,
  allocated_storage) -> {"offers": [...]}: api/offers.py `search_offers`, called by sdk.py
  `VastAI.search_offers`
- PUT /api/v0/asks/{offer_id}/ (image, disk, env, label, onstart, runtype, price)
  -> {"success", "new_contract"}: api/instances.py `create_instance`,
  `build_create_instance_payload`, `create_instance_from_payload`
- PUT /api/v0/instances/{id}/ {"state": "stopped" | "running"}: api/instances.py
  `stop_instance`, `start_instance` (PUT /api/v0/instances/ with "ids" for a list)
- PUT /api/v0/instances/{id}/ {"label": ...}: api/instances.py `label_instance`
- DELETE /api/v0/instances/{id}/: api/instances.py `destroy_instance`
- GET /api/v0/users/current (credit): api/billing.py `show_user`
- GET /api/v0/ssh/, POST /api/v0/ssh/ {"ssh_key"}: api/keys.py `show_ssh_keys`,
  `create_ssh_key`

Authentication is `Authorization: Bearer <key>` (api/client.py `VastClient._build_headers`); the
client encodes each non-string query value as JSON (`VastClient._build_url`). Errors use vast's
`{"success": false, "error": code, "msg": text}` body. The error codes for an offer already
taken (`no_such_ask`) and for missing credit (`insufficient_credit`) follow the vast CLI's
messages; their HTTP statuses are this double's choice.

    with VastDouble(Market(offers=offers_from(rows)), api_key="k") as api:
        VastAI(api_key="k", server_url=api.url).search_offers(...)
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from vast_double.market import ApiError, Market

INSTANCE = re.compile(r"/api/v0/instances/(\d+)/")
ASK = re.compile(r"/api/v0/asks/(\d+)/")


def _query_value(text: str) -> Any:
    """Undo VastClient._build_url: non-strings are JSON, strings are sent as they are."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _add_ssh_key(market: Market, body: dict[str, Any]) -> dict[str, Any]:
    market.ssh_keys.append(str(body["ssh_key"]).strip())
    return {"success": True, "key": market.keys()[-1]}


def _update_each(market: Market, body: dict[str, Any]) -> dict[str, Any]:
    for instance_id in body.get("ids") or []:
        market.update(int(instance_id), body)
    return {"success": True}


# (method, path) -> what answers it, given the double, the query and the JSON body
ROUTES: dict[tuple[str, str], Callable[[VastDouble, dict[str, Any], dict[str, Any]], Any]] = {
    ("GET", "/api/v1/instances/"): lambda double, query, _body: double.page(query),
    ("POST", "/api/v0/bundles/"): lambda double, _query, body: {
        "offers": double.market.search(body)
    },
    ("GET", "/api/v0/users/current"): lambda double, _query, _body: double.market.user(),
    ("GET", "/api/v0/ssh/"): lambda double, _query, _body: double.market.keys(),
    ("POST", "/api/v0/ssh/"): lambda double, _query, body: _add_ssh_key(double.market, body),
    ("PUT", "/api/v0/instances/"): lambda double, _query, body: _update_each(double.market, body),
}
# method -> what answers it on /api/v0/instances/{id}/, given the market, the id and the body
INSTANCE_ROUTES: dict[str, Callable[[Market, int, dict[str, Any]], Any]] = {
    "GET": lambda market, instance_id, _body: {
        "instances": market.public(market.find(instance_id))
    },
    "PUT": lambda market, instance_id, body: market.update(instance_id, body),
    "DELETE": lambda market, instance_id, _body: market.destroy(instance_id),
}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._serve("GET")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: _query_value(v[0]) for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw.strip() else {}
        double = self.server.double
        auth = self.headers.get("Authorization")
        double.seen.append((method, url.path, query, auth, body))
        try:
            if auth != f"Bearer {double.api_key}":
                raise ApiError(401, "invalid_user", "Invalid or missing API key.")
            with double.market.lock:
                status, answer = 200, self._route(double, method, url.path, query, body)
        except ApiError as exc:
            status, answer = exc.status, {"success": False, "error": exc.error, "msg": exc.msg}
        self._reply(status, answer)

    def _route(self, double: VastDouble, method: str, path: str, query: dict[str, Any],
               body: dict[str, Any]) -> Any:
        route = ROUTES.get((method, path))
        if route is not None:
            return route(double, query, body)
        ask = ASK.fullmatch(path)
        if ask and method == "PUT":
            return double.market.create(int(ask.group(1)), body)
        instance = INSTANCE.fullmatch(path)
        per_instance = INSTANCE_ROUTES.get(method)
        if instance and per_instance:
            return per_instance(double.market, int(instance.group(1)), body)
        raise ApiError(404, "not_found", f"No route {method} {path} in the vast.ai double.")

    def _reply(self, status: int, body: Any) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    double: VastDouble


class VastDouble:
    """The double on 127.0.0.1 (a free port), serving `market` in a background thread.

    + market: offers, instances, credit, keys and hooks (see vast_double.market)
    + api_key: the only key accepted
    + page_size: rows per /api/v1/instances/ page, at most the SDK's `limit` (25)
    + port: 0 for a free one
    """

    def __init__(self, market: Market | None = None, *, api_key: str = "vast-test-key",
                 page_size: int = 25, port: int = 0) -> None:
        self.market: Market = market or Market()
        self.api_key = api_key
        self.page_size = page_size
        self.seen: list[tuple[str, str, dict[str, Any], str | None, Any]] = []
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.double = self
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def page(self, query: dict[str, Any]) -> dict[str, Any]:
        """One keyset page of instances (`after_token` = last id seen); the first page of a
        listing also advances booting instances by one step."""
        after = int(query.get("after_token") or 0)
        if not after:
            self.market.advance()
        rows = [r for r in self.market.listing() if r["id"] > after]
        page = rows[: min(self.page_size, int(query.get("limit") or 25))]
        more = len(rows) > len(page)
        labels: dict[str, int] = {}
        for row in self.market.instances:
            labels[row.get("label") or ""] = labels.get(row.get("label") or "", 0) + 1
        return {
            "instances": page,
            "next_token": str(page[-1]["id"]) if more else None,
            "total_instances": len(self.market.instances),
            "label_counts": labels,
        }

    def requests(self, method: str | None = None, path: str | None = None) -> list[Any]:
        """The requests seen so far, optionally only one method and/or path."""
        return [s for s in self.seen if (method in (None, s[0])) and (path in (None, s[1]))]

    def start(self) -> VastDouble:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> VastDouble:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
