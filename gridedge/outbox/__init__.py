"""The outbox stage: every envelope is stored here before anything reports it as handled.

``settings`` holds the ``[outbox]`` section, ``budget`` how ``max_bytes`` is shared on disk,
``schema`` the SQL and the pure bookkeeping, ``files`` the lock, reserve and other files beside
the database, ``queue`` the group-commit writer, ``writer`` the write-side transactions,
``handle`` the :class:`Outbox` that appends and reads, ``database`` the SQLite connection
(the only aiosqlite importer), ``quarantine`` the envelopes a broker refused, and ``store``
:func:`open_outbox`.
"""
