"""Edge analytics: per-channel anomaly scores, alerts, trend forecasts and aggregates.

Everything here is pure and synchronous: :mod:`~gridedge.analytics.engine` turns samples into
scores and envelopes, :mod:`~gridedge.analytics.stage` puts it in front of the outbox, and
:mod:`~gridedge.analytics.replay` runs the same engine over a CSV file. River is imported only by
:mod:`~gridedge.analytics.river_models`, and only when a River model is configured.
"""
