"""The fleet's autoscaler: a pure policy (`policy`, `budget`), a loop that observes and acts
(`loop`), its state file (`state`), the gateway it drives (`pool`), its metrics and what
`make status` says (`metrics`, `report`). Entry point: `python -m fleet.autoscale`."""
