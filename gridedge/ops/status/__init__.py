"""The local status page: a bounded history of what the gateway saw, its JSON API and the page.

:mod:`~gridedge.ops.status.history` keeps the last hour of every channel in memory,
:mod:`~gridedge.ops.status.api` turns live state into the JSON the page reads, and ``static/``
holds the page itself (HTML, CSS, JavaScript and a vendored copy of uPlot; no build step, no
network). :mod:`gridedge.ops.http` serves all of it.
"""
