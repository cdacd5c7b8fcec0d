"""vast.ai as the fleet's provider (fleet/provider.py), through the official `vastai` SDK.

`client.py` holds the key lookup and ``call`` (every request; failures become sentences),
`offers.py` the offer filters and search, `account.py` the checks before renting.

    provider = from_env(os.environ)
    instances = provider.list_instances(label_of(os.environ))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vastai import VastAI

from fleet.cost import storage_per_hour
from fleet.errors import ApiError, OfferTakenError
from fleet.provider import Instance, Offer, Rental, Wanted
from fleet.vast import offers as search
from fleet.vast.account import check_credit, check_ssh_key
from fleet.vast.client import call, connect, label_of
from inventories.vast_api import VastInventoryError, ssh_endpoint

__all__ = ["VastProvider", "call", "connect", "from_env", "instance_of", "label_of"]

Row = dict[str, Any]
# vast's error codes for an offer that cannot be had (the vast CLI's messages)
TAKEN = ("no_such_ask", "bid_too_low")


def from_env(env: Mapping[str, str]) -> VastProvider:
    """The provider for the user's account (key and VAST_URL from `env`)."""
    return VastProvider(connect(env))


def state(row: Mapping[str, Any]) -> str:
    """The instance's state as the user sees it: actual_status, `provisioning` before one."""
    return str(row.get("actual_status") or "provisioning")


def host_name(row: Mapping[str, Any]) -> str:
    """The inventory name inventories/vast.py gives this instance."""
    return f"vast-{row['id']}"


def _outbid(row: Mapping[str, Any]) -> bool:
    """An interruptible instance we want running that vast.ai stopped: its contract went to a
    higher bid (`cur_state`, the machine allocation, is `stopped`; `intended_status` still ours)."""
    wanted = row.get("intended_status") != "stopped"
    return bool(row.get("is_bid")) and wanted and row.get("cur_state") == "stopped"


def instance_of(row: Mapping[str, Any]) -> Instance:
    """An API instance row as the fleet's `Instance`."""
    try:
        endpoint: tuple[str, int] | None = ssh_endpoint(row)
    except VastInventoryError:
        endpoint = None
    uptime = row.get("uptime_mins")
    started = row.get("start_date")
    return Instance(
        id=int(row["id"]),
        name=host_name(row),
        label=(row.get("label") or "").strip(),
        state=state(row),
        stopped=row.get("intended_status") == "stopped",
        interrupted=_outbid(row),
        gpu=f"{row.get('num_gpus')}x {row.get('gpu_name')}",
        dph=float(row.get("dph_total") or 0),
        storage_dph=storage_per_hour(row),
        interruptible=bool(row.get("is_bid")),
        status_msg=(row.get("status_msg") or "").strip(),
        uptime_mins=None if uptime is None else float(uptime),
        started_at=None if started is None else float(started),
        endpoint=endpoint if state(row) == "running" else None,
        extra=dict(row),
    )


class VastProvider:
    """fleet.provider.Provider over one `VastAI` client."""

    name = "vast.ai"

    def __init__(self, sdk: VastAI) -> None:
        self.sdk = sdk

    def list_instances(self, label: str) -> list[Instance]:
        rows = call(self.sdk, "listing instances", self.sdk.show_instances)
        return [instance_of(r) for r in rows if (r.get("label") or "").strip() == label]

    def offers(self, wanted: Wanted, limit: int) -> list[Offer]:
        return [
            Offer(int(o["id"]), float(o.get(wanted.price_field) or 0), search.describe(o, wanted))
            for o in search.search(self.sdk, wanted, limit=limit)
        ]

    def why_no_offer(self, wanted: Wanted) -> str:
        return search.why_none(self.sdk, wanted)

    def check_can_rent(self, env: Mapping[str, str], dph: float) -> None:
        check_ssh_key(self.sdk, env)
        check_credit(self.sdk, dph)

    def create(self, offer: Offer, rental: Rental) -> int:
        """One attempt only: the SDK's own retry would rent twice on a lost answer."""
        sdk = self.sdk
        retry, sdk.client.retry = sdk.client.retry, 1
        try:
            answer = call(
                sdk,
                f"renting offer {offer.id}",
                sdk.create_instance,
                offer.id,
                image=rental.image,
                disk=rental.disk_gb,
                label=rental.label,
                onstart_cmd=rental.onstart,
                ssh=True,
                direct=True,
                price=rental.bid,
            )
        except ApiError as exc:
            if exc.code in TAKEN:
                raise OfferTakenError(str(exc)) from exc
            raise
        finally:
            sdk.client.retry = retry
        return int(answer["new_contract"])

    def start(self, instance_id: int) -> None:
        call(self.sdk, f"starting instance {instance_id}", self.sdk.start_instance, instance_id)

    def stop(self, instance_id: int) -> None:
        call(self.sdk, f"stopping instance {instance_id}", self.sdk.stop_instance, instance_id)

    def destroy(self, instance_id: int) -> None:
        doing = f"destroying instance {instance_id}"
        call(self.sdk, doing, self.sdk.destroy_instance, instance_id)

    def price(self, instance: Instance) -> float:
        return instance.billed_dph
