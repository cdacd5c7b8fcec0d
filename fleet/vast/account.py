"""Account checks before renting: is our SSH key registered, is there credit for the first hour."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vastai import VastAI

from fleet.errors import FleetError
from fleet.vast.client import call

DEFAULT_KEYS = ("id_ed25519", "id_ecdsa", "id_rsa")


def local_public_keys(env: Mapping[str, str]) -> list[Path]:
    """The public keys SSH will offer: VAST_SSH_KEY's `.pub`, else ~/.ssh/id_{ed25519,ecdsa,rsa}."""
    home = Path(env.get("HOME") or Path.home())
    chosen = env.get("VAST_SSH_KEY", "").strip()
    if chosen:
        path = Path(chosen.replace("~", str(home), 1) if chosen.startswith("~") else chosen)
        return [path.with_name(path.name + ".pub")]
    return [home / ".ssh" / f"{name}.pub" for name in DEFAULT_KEYS]


def _key_body(text: str) -> str:
    """`type base64` of an OpenSSH public key line, without its comment."""
    return " ".join(text.split()[:2])


def check_ssh_key(sdk: VastAI, env: Mapping[str, str]) -> None:
    """Raise unless one of our public keys is registered with the vast.ai account (vast puts
    the account's keys into every new instance; without ours nothing can log in)."""
    candidates = local_public_keys(env)
    mine = {_key_body(p.read_text()): p for p in candidates if p.is_file()}
    if not mine:
        looked = ", ".join(str(p) for p in candidates)
        raise FleetError(
            f"No SSH public key found (looked at {looked}); create one with `ssh-keygen -t"
            " ed25519` and register it with `vastai create ssh-key ~/.ssh/id_ed25519.pub`."
        )
    answer = call(sdk, "listing the account's SSH keys", sdk.show_ssh_keys)
    rows: Sequence[Any] = answer.get("keys", []) if isinstance(answer, dict) else answer
    registered = {
        _key_body(str(row.get("public_key") or row.get("ssh_key") or ""))
        for row in rows
        if isinstance(row, dict) and not row.get("deleted_at")
    }
    if not registered & set(mine):
        first = next(iter(mine.values()))
        raise FleetError(
            f"Your SSH key {first} is not registered with vast.ai, so a new instance would not"
            f" let you in; register it with `vastai create ssh-key {first}` (or set VAST_SSH_KEY"
            " to the private key of one that is)."
        )


def check_credit(sdk: VastAI, dollars_per_hour: float) -> float:
    """Raise unless the account's credit covers one hour at `dollars_per_hour`; return it."""
    user = call(sdk, "reading the account", sdk.show_user)
    credit = float(user.get("credit") or 0)
    if credit < dollars_per_hour:
        raise FleetError(
            f"Insufficient vast.ai credit: ${credit:.2f} left, and the chosen offers cost"
            f" ${dollars_per_hour:.3f}/h; add credit at https://cloud.vast.ai/billing/ and run"
            " the command again."
        )
    return credit
