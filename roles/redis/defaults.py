"""Public interface of the redis role: every key, its default, one comment each."""

DEFAULTS = {
    # Listen on loopback, TLS only: the plaintext port is 0 (off).
    "redis_bind": "127.0.0.1",
    "redis_tls_port": 6379,
    # Where the CA certificate, server certificate and key go on the host.
    "redis_tls_dir": "/etc/redis/tls",
    # "no" = clients need no certificate (the password authenticates); "optional" or "yes" for mTLS.
    "redis_tls_auth_clients": "no",
    "redis_tls_protocols": "TLSv1.2 TLSv1.3",
    # A cache: bounded memory, least-recently-used keys evicted, nothing persisted.
    "redis_maxmemory": "512mb",
    "redis_maxmemory_policy": "allkeys-lru",
    # Free-form lines appended to redis.conf, for directives this role does not model.
    "redis_extra_config": "",
    # Use an existing Redis instead: rediss://:password@host:port/db (+ its CA file on the
    # control machine, "" = system trust). When set, this role installs nothing.
    "redis_external_url": "",
    "redis_external_ca_file": "",
}
