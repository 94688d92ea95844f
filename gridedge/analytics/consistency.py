"""Consistency: the identities a meter's own readings must satisfy, checked on every sample.

A meter measures a phase's voltage and current and derives its powers from them, so its
readings obey identities whatever the load: apparent power is voltage times current
(``S = V * I``), active power is apparent power times the power factor (``|P| = S * |PF|``),
and the totals are the sums of the phases. A reading that drifts, spikes or sticks on its own
(a failing sensor, a corrupted register) breaks an identity at once, long before its value
leaves the usual range; a real change of the supply or the load keeps them all.

:class:`Consistency` checks every identity whose channels a device reports, all at once: the
residual of each is compared with its typical size (a mean absolute residual, learnt from the
consistent samples only and moved only a little by big residuals), and an identity is broken
while its residual is more than ``BROKEN`` typical residuals and more than ``RESOLUTION`` of
its value (the meter's resolution, roughly).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from gridedge.analytics.alerts import AlertEvent, AlertMachine, AlertParams
from gridedge.analytics.calibrate import Floats

CONSISTENCY_SCORE = 0.9
"""The score of a broken identity (the alert's ``score``; its ``value`` is the residual as a
fraction of the values)."""
BROKEN = 12.0
"""Typical residuals beyond which an identity is broken."""
RESOLUTION = 2e-4
"""The smallest relative residual that can break an identity."""
LEARN_SAMPLES = 1000
"""Memory of an identity's typical residual."""
WARMUP_SAMPLES = 60
"""Consistent samples an identity needs before it can be broken."""
_CLIP = 4.0  # a residual counts at most this many typical residuals into the typical residual


def identities(names: Sequence[str]) -> list[tuple[str, tuple[str, str, str | None]]]:
    """The identities among ``names``: (target, (a, b, c)) meaning ``target = a * b`` when
    ``c`` is None, else ``target = a + b + c``.
    """
    have = set(names)
    found: list[tuple[str, tuple[str, str, str | None]]] = []
    for n in ("l1", "l2", "l3"):
        s, v, i = f"apparent_power_{n}", f"voltage_{n}", f"current_{n}"
        if {s, v, i} <= have:
            found.append((s, (v, i, None)))
        p, pf = f"active_power_{n}", f"power_factor_{n}"
        if {p, s, pf} <= have:
            found.append((p, (s, pf, None)))
    for total in ("active_power", "reactive_power", "apparent_power"):
        parts = [f"{total}_l{k}" for k in (1, 2, 3)]
        if total in have and set(parts) <= have:
            found.append((total, (parts[0], parts[1], parts[2])))
    return found


class Consistency:
    """The identities of one device's channels (see the module docstring).

    Args:
        names: the device's channels, in index order.
    """

    __slots__ = ("_idx", "_latest", "_state", "targets")

    def __init__(self, names: Sequence[str]) -> None:
        found = identities(names)
        index = {n: k for k, n in enumerate(names)}
        self.targets = [t for t, _ in found]
        """The target channel of each identity."""
        rows = [(index[t], index[a], index[b], index[c] if c else -1) for t, (a, b, c) in found]
        # Channel indices of target, a, b, c (-1: no c, a product); -1 reads the last slot of
        # _latest, which stands in for "none".
        self._idx = np.array(rows, np.int32).reshape(-1, 4).T
        self._latest = np.full(len(names) + 1, np.nan)
        self._state = np.zeros((2, len(found)))  # typical residual, consistent samples learnt

    def __len__(self) -> int:
        return len(self.targets)

    def check(
        self, values: Floats, cols: npt.NDArray[np.intp]
    ) -> tuple[npt.NDArray[np.bool_], Floats] | None:
        """Which identities the values (of channels ``cols``) break, and each identity's
        relative residual; None when there are none. Then learns the consistent ones.
        """
        if not len(self.targets):
            return None
        latest = self._latest
        latest[:] = np.nan
        latest[cols] = values
        t, a, b, c = latest[self._idx]
        product = self._idx[3] < 0
        expected = np.where(product, np.abs(a) * np.abs(b), a + b + c)
        target = np.where(product, np.abs(t), t)
        residual = np.abs(target - expected)
        present = ~np.isnan(residual)
        residual = np.where(present, residual, 0.0)
        typical, seen = self._state
        scale = np.abs(target) + np.abs(expected)
        floor = RESOLUTION * np.where(present, scale, 0.0)
        broken = present & (seen > WARMUP_SAMPLES)
        broken &= (residual > BROKEN * typical) & (residual > floor)
        learn = present & ~broken
        seen += learn
        rate = 1.0 / np.minimum(np.maximum(seen, 1.0), LEARN_SAMPLES)
        bounded = np.where(seen > 10.0, np.minimum(residual, _CLIP * typical), residual)
        typical[:] = np.where(learn, typical + rate * (bounded - typical), typical)
        relative = residual / np.where(scale > 0.0, scale, 1.0)
        return broken, relative


class ConsistencyAlerts:
    """The ``consistency`` alerts of one device: one per identity, named after its target.

    Args:
        names: the device's channels, in index order.
        params: the alert lifecycle.
    """

    __slots__ = ("_check", "_machines", "_params")

    def __init__(self, names: Sequence[str], params: AlertParams) -> None:
        self._check = Consistency(names)
        self._machines: dict[int, AlertMachine] = {}  # identities whose alert is not idle
        self._params = params

    def update(
        self, ts: float, values: Floats, cols: npt.NDArray[np.intp], events: list[AlertEvent]
    ) -> bool:
        """Check one sample's values (of channels ``cols``), adding raised and cleared alerts
        to ``events``; True when any identity is broken.
        """
        checked = self._check.check(values, cols)
        if checked is None:
            return False
        broken, relative = checked
        machines = self._machines
        if not machines and not broken.any():
            return False
        targets = self._check.targets
        for k in sorted({*np.flatnonzero(broken).tolist(), *machines}):
            machine = machines.get(k)
            if machine is None:
                machine = machines[k] = AlertMachine(targets[k], self._params)
            value = float(relative[k])
            event = None
            if broken[k]:
                event = machine.update(ts, CONSISTENCY_SCORE, value, "consistency")
            elif machine.active is not None:
                event = machine.update(ts, 0.0, value, "consistency")
            else:
                machine.tick()
            if event is not None:
                events.append(event)
            if machine.idle:
                del machines[k]
        return bool(broken.any())
