"""Store-and-forward to upstream MQTT brokers.

``settings`` parses the ``[[upstreams]]`` tables, ``payload`` turns envelopes into topics and
JSON (pure), ``backoff`` paces reconnects and backlog drains (pure), ``window`` tracks which
prefix of the outbox a broker has acknowledged (pure), ``tls`` builds the client TLS settings,
``mqtt`` is the only module that talks to paho-mqtt, ``state`` is what a forwarder reports, and
``forwarder`` runs one store-and-forward loop per upstream.
"""
