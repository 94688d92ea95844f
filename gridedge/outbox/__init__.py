"""The outbox stage: every envelope is stored here before anything reports it as handled.

``settings`` holds the ``[outbox]`` section, ``schema`` the SQL and the pure bookkeeping,
``queue`` the group-commit writer, ``store`` the SQLite store (the only aiosqlite importer).
"""
