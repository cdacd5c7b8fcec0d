"""Commands a user runs against the whole fleet from the control machine (tunnel, …)."""
