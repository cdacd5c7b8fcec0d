"""The vast.ai double's state: offers, the account's instances, credit and SSH keys.

Everything here is plain data and methods called by ``vast_double.server`` (one call per HTTP
request, under one lock). Time comes from ``clock`` so tests control uptime and cost; an
instance's boot advances one step per instance listing (never by wall time), so waiting loops
are exercised without timed tests.

What a rented instance *is* lives in ``hooks``: ``on_create``/``on_start`` return the fields that
say how to reach it (``ssh_host``, ``ssh_port``, ``public_ipaddr``, ``ports``), ``on_stop`` and
``on_destroy`` let a real host (a sandbox container, ``sandbox/vast_hooks.py``) follow the API's
state. ``on_create`` also gets the account's registered SSH keys, which vast.ai puts into every
new instance's authorized_keys.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Row = dict[str, Any]


class InstanceHooks(Protocol):
    """What happens to a real host when the API creates, stops, starts or destroys it."""

    def on_create(self, row: Mapping[str, Any], ssh_keys: Sequence[str]) -> Mapping[str, Any]:
        """Return fields merged into the new row: its SSH endpoint, at least. `ssh_keys` are
        the account's public keys, the ones the new instance lets in."""
        ...

    def on_stop(self, row: Mapping[str, Any]) -> Mapping[str, Any]: ...

    def on_start(self, row: Mapping[str, Any]) -> Mapping[str, Any]: ...

    def on_destroy(self, row: Mapping[str, Any]) -> None: ...


class StaticHooks:
    """No real host: each instance gets a made-up proxy endpoint `sshN.vast.example:<port>`."""

    def on_create(self, row: Mapping[str, Any], _ssh_keys: Sequence[str]) -> Mapping[str, Any]:
        idx = row["id"] % 10
        return {"ssh_host": f"ssh{idx}.vast.example", "ssh_port": 20000 + row["id"] % 10000}

    def on_stop(self, _row: Mapping[str, Any]) -> Mapping[str, Any]:
        return {}

    def on_start(self, _row: Mapping[str, Any]) -> Mapping[str, Any]:
        return {}

    def on_destroy(self, _row: Mapping[str, Any]) -> None:
        return None


class ApiError(Exception):
    """An error answer: HTTP status plus vast's `{"success": false, "error", "msg"}` body."""

    def __init__(self, status: int, error: str, msg: str) -> None:
        super().__init__(msg)
        self.status, self.error, self.msg = status, error, msg


# (actual_status, status_msg) an instance goes through after create or start, one per listing.
BOOT: tuple[tuple[str | None, str], ...] = (
    (None, "Creating container"),
    ("loading", "Pulling image layers"),
    ("loading", "Extracting image layers"),
    ("running", "success, container is running"),
)

# Search operators the SDK's parse_query emits (vastai/api/query.py, op_names).
OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "neq": lambda a, b: a != b,
    "gt": lambda a, b: a is not None and a > b,
    "gte": lambda a, b: a is not None and a >= b,
    "lt": lambda a, b: a is not None and a < b,
    "lte": lambda a, b: a is not None and a <= b,
    "in": lambda a, b: a in b,
    "notin": lambda a, b: a not in b,
}
# Keys of a search body that are options, not field filters (vastai/api/offers.py).
SEARCH_OPTIONS = {"order", "type", "limit", "allocated_storage", "disable_bundling"}
HOURS_PER_MONTH = 720.0  # storage_cost is $/GB/month


def offer_price(offer: Mapping[str, Any], disk_gb: float) -> Row:
    """An offer as priced for `disk_gb` of storage: dph_total = dph_base + the disk's $/h."""
    priced = dict(offer)
    storage = float(offer.get("storage_cost") or 0) * disk_gb / HOURS_PER_MONTH
    priced["storage_total_cost"] = storage
    priced["dph_total"] = float(offer["dph_base"]) + storage
    return priced


def matches(offer: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    """Whether an offer passes every `{field: {op: value}}` filter of a search body."""
    for name, condition in query.items():
        if name in SEARCH_OPTIONS or not isinstance(condition, Mapping):
            continue
        for op, wanted in condition.items():
            test = OPERATORS.get(op)
            if test is None:
                raise ApiError(400, "invalid_args", f"Unknown operator {op!r} for {name}.")
            if not test(offer.get(name), wanted):
                return False
    return True


@dataclass
class Market:
    """The account and the marketplace the double serves."""

    offers: list[Row] = field(default_factory=list)
    instances: list[Row] = field(default_factory=list)
    credit: float = 25.0
    ssh_keys: list[str] = field(default_factory=list)
    hooks: InstanceHooks = field(default_factory=StaticHooks)
    clock: Callable[[], float] = time.time
    boot: Sequence[tuple[str | None, str]] = BOOT
    snatched: set[int] = field(default_factory=set)  # listed, but rented by someone else
    next_id: int = 7000001
    lock: threading.RLock = field(default_factory=threading.RLock)

    # ------------------------------------------------------------------ search and create

    def search(self, body: Mapping[str, Any]) -> list[Row]:
        """POST /api/v0/bundles/: filter, price for allocated_storage, order, limit."""
        disk = float(body.get("allocated_storage") or 5.0)
        found = [offer_price(o, disk) for o in self.offers if matches(offer_price(o, disk), body)]
        for name, direction in reversed(body.get("order") or []):
            # stable sorts, last key first; missing values last either way
            present = [o for o in found if o.get(name) is not None]
            present.sort(key=lambda o: o[name], reverse=direction == "desc")
            found = present + [o for o in found if o.get(name) is None]
        if body.get("limit"):
            found = found[: int(body["limit"])]
        return copy.deepcopy(found)

    def create(self, offer_id: int, body: Mapping[str, Any]) -> Row:
        """PUT /api/v0/asks/{id}/: rent an offer; the new instance starts provisioning."""
        offer = next((o for o in self.offers if o["id"] == offer_id), None)
        if offer is None or offer.get("rented") or offer_id in self.snatched:
            raise ApiError(400, "no_such_ask", f"Instance type by id {offer_id} is not available.")
        if self.credit <= 0:
            raise ApiError(
                402, "insufficient_credit", "Your account has insufficient credit to rent."
            )
        bid = body.get("price")
        if bid is not None and float(bid) < float(offer.get("min_bid") or 0):
            raise ApiError(400, "bid_too_low", f"Bid {bid} is below min_bid {offer['min_bid']}.")
        disk = float(body.get("disk") or 10)
        priced = offer_price(offer, disk)
        if bid is not None:
            priced["dph_base"] = float(bid)
            priced["dph_total"] = float(bid) + priced["storage_total_cost"]
        row = self._new_row(self.next_id, priced, body, disk)
        self.next_id += 1
        offer["rented"] = True
        row.update(self.hooks.on_create(row, list(self.ssh_keys)))
        self.instances.append(row)
        return {"success": True, "new_contract": row["id"]}

    def _new_row(self, instance_id: int, offer: Mapping[str, Any], body: Mapping[str, Any],
                 disk: float) -> Row:
        env = body.get("env") or {}
        copied = ("machine_id", "host_id", "gpu_name", "num_gpus", "gpu_ram", "cuda_max_good",
                  "driver_version", "compute_cap", "geolocation", "dph_base", "dph_total",
                  "storage_cost", "storage_total_cost", "inet_up_cost", "inet_down_cost",
                  "min_bid", "public_ipaddr", "hosting_type", "reliability")
        row: Row = {key: offer.get(key) for key in copied}
        row.update(
            id=instance_id,
            bundle_id=offer["id"],
            reliability2=offer.get("reliability"),
            gpu_totalram=offer.get("gpu_ram"),
            actual_status=None,
            intended_status="running",
            cur_state="running",
            next_state="running",
            status_msg=self.boot[0][1],
            label=body.get("label"),
            image_uuid=body.get("image"),
            image_args=body.get("args") or [],
            image_runtype=body.get("runtype") or "ssh_direc ssh_proxy",
            onstart=body.get("onstart"),
            extra_env=[[k, v] for k, v in env.items() if not k.startswith("-")],
            template_hash_id=body.get("template_hash_id"),
            jupyter_token=None,
            ssh_host=None,
            ssh_port=None,
            ports={},
            disk_space=disk,
            is_bid=body.get("price") is not None,
            start_date=self.clock(),
            end_date=None,
            uptime_mins=None,
            _step=0,
            _running_since=None,
        )
        return row

    # ------------------------------------------------------------------ instances

    def find(self, instance_id: int) -> Row:
        for row in self.instances:
            if row["id"] == instance_id:
                return row
        raise ApiError(404, "no_such_instance", f"Instance {instance_id} not found.")

    def advance(self) -> None:
        """One listing happened: every booting instance moves one step towards `running`."""
        for row in self.instances:
            if "_step" not in row or row["intended_status"] != "running":
                continue
            if row.get("cur_state") == "stopped":
                continue  # outbid: stays stopped (a resumed bid is not modelled)
            if row["actual_status"] != "running":
                row["_step"] = min(row["_step"] + 1, len(self.boot) - 1)
                row["actual_status"], row["status_msg"] = self.boot[row["_step"]]
                if row["actual_status"] == "running":
                    row["_running_since"] = self.clock()

    def listing(self) -> list[Row]:
        """Every instance row as the API returns it (private `_` keys dropped)."""
        return [self.public(row) for row in sorted(self.instances, key=lambda r: r["id"])]

    def public(self, row: Mapping[str, Any]) -> Row:
        out = {k: copy.deepcopy(v) for k, v in row.items() if not k.startswith("_")}
        if "_running_since" in row:
            since = row["_running_since"]
            out["uptime_mins"] = None if since is None else (self.clock() - since) / 60.0
        return out

    def update(self, instance_id: int, body: Mapping[str, Any]) -> Row:
        """PUT /api/v0/instances/{id}/: `{"state": "stopped"|"running"}` or `{"label": …}`."""
        row = self.find(instance_id)
        if "label" in body:
            row["label"] = body["label"]
        state = body.get("state")
        if state == "stopped" and row["intended_status"] != "stopped":
            row.update(intended_status="stopped", cur_state="stopped", next_state="stopped")
            row.update(actual_status="stopped", status_msg="stopped", _running_since=None)
            row.update(self.hooks.on_stop(row))
        elif state == "running" and row["intended_status"] != "running":
            if self.credit <= 0:
                raise ApiError(402, "insufficient_credit", "Insufficient credit to start.")
            row.update(intended_status="running", cur_state="running", next_state="running")
            row["_step"] = min(1, len(self.boot) - 1)
            row["actual_status"], row["status_msg"] = self.boot[row["_step"]]
            row.update(self.hooks.on_start(row))
        elif state not in (None, "stopped", "running"):
            raise ApiError(400, "invalid_args", f"Unknown state {state!r}.")
        return {"success": True}

    def outbid(self, instance_id: int) -> None:
        """Another renter outbid this interruptible instance: vast.ai stops it (no SDK call does
        this; it is the market's doing). Its contract (`cur_state`) is stopped while the owner's
        `intended_status` stays running, as the SDK's `show_instance` documents the fields."""
        row = self.find(instance_id)
        if not row.get("is_bid"):
            raise ValueError(f"instance {instance_id} is on-demand; only bids are outbid")
        row.update(cur_state="stopped", next_state="stopped", actual_status="stopped")
        row.update(status_msg="outbid: stopped for a higher bid", _running_since=None)
        row.update(self.hooks.on_stop(row))

    def destroy(self, instance_id: int) -> Row:
        """DELETE /api/v0/instances/{id}/: the instance and its disk are gone; the GPU is free."""
        row = self.find(instance_id)
        self.hooks.on_destroy(row)
        self.instances.remove(row)
        for offer in self.offers:
            if offer["id"] == row.get("bundle_id"):
                offer["rented"] = False
        return {"success": True}

    # ------------------------------------------------------------------ account

    def user(self) -> Row:
        """GET /api/v0/users/current."""
        return {"id": 1, "username": "tester", "email": "tester@example.com",
                "credit": self.credit, "balance": 0.0, "has_billing": True}

    def keys(self) -> list[Row]:
        """GET /api/v0/ssh/: the account's public keys."""
        return [
            {"id": i + 1, "user_id": 1, "public_key": key, "created_at": "2026-01-01T00:00:00Z",
             "deleted_at": None}
            for i, key in enumerate(self.ssh_keys)
        ]


def offers_from(rows: Iterable[Mapping[str, Any]]) -> list[Row]:
    """Offer rows with the fields the SDK's default filters test (verified, rentable, …)."""
    defaults = {"verified": True, "external": False, "rentable": True, "rented": False}
    return [{**defaults, **row} for row in rows]
