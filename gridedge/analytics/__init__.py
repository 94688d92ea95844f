"""Edge analytics: per-channel anomaly scores, alerts, trend forecasts and aggregates.

Everything here is synchronous: :mod:`~gridedge.analytics.engine` turns samples into scores and
envelopes, :mod:`~gridedge.analytics.stage` puts it in front of the outbox, and
:mod:`~gridedge.analytics.replay` runs the same engine over a CSV file. River is imported only by
:mod:`~gridedge.analytics.river_models`, and only when a River model is configured.
"""

import os

# The analytics' matrices are tiny (channels x channels): BLAS threads only contend with the
# event loop and each other (a 38 x 38 eigendecomposition took 30x longer with them on a busy
# 2-core board). Set before numpy is first imported; an explicit setting wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
