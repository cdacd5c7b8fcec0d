"""The response cache: Redis over TLS (`store.py`), what a request may read and write
(`policy.py`), and identical requests in flight sharing one generation (`flight.py`)."""
