"""A local double of vast.ai's REST API, for the inventory and fleet tests (never shipped).

Every endpoint is written from the official `vastai` SDK's own requests (1.9.1); see
``vast_double.server``. What a created instance *is* (its SSH endpoint, what stop/start do) is
pluggable through ``InstanceHooks``, so tests can use fixed endpoints and the sandbox fleet can
make each rental a real sandbox host.
"""

from vast_double.market import InstanceHooks, Market, StaticHooks
from vast_double.server import VastDouble

__all__ = ["InstanceHooks", "Market", "StaticHooks", "VastDouble"]
