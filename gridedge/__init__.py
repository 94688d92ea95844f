"""gridedge: an edge gateway for power-grid meters."""

__version__ = "0.1.0"
