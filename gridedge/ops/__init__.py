"""Operations: the typed live state of a running gateway and what reports on it.

``runtime`` is the state each component registers; ``http`` serves ``metrics`` and ``health``;
``watchdog`` and ``systemd`` keep the service manager informed.
"""
