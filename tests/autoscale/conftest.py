"""The fleet tests' vast.ai double, SDK client and recording Steps, for the autoscaler."""

from tests.fleet.conftest import env, market, provider, sdk, steps, vast, wall

__all__ = ["env", "market", "provider", "sdk", "steps", "vast", "wall"]
