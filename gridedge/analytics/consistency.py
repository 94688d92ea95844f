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

import math
from array import array
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

    A device has a handful of identities, so they are checked value by value: cheaper than
    array operations on so few.

    Args:
        names: the device's channels, in index order.
    """

    __slots__ = ("_rows", "_seen", "_span", "_typical", "targets")

    def __init__(self, names: Sequence[str]) -> None:
        found = identities(names)
        index = {n: k for k, n in enumerate(names)}
        self.targets = [t for t, _ in found]
        """The target channel of each identity."""
        # Channel indices of target, a, b, c (-1: no c, a product).
        self._rows = [
            (index[t], index[a], index[b], index[c] if c else -1) for t, (a, b, c) in found
        ]
        self._span = max((max(r) for r in self._rows), default=-1) + 1  # channels they read
        self._typical = array("d", bytes(8 * len(found)))
        self._seen = array("d", bytes(8 * len(found)))

    def __len__(self) -> int:
        return len(self.targets)

    def check(
        self, values: Floats, cols: npt.NDArray[np.intp], ordered: bool = False
    ) -> tuple[list[int], list[float]]:
        """The identities the values (of channels ``cols``; ``ordered``: every channel, in
        index order) break, and each identity's relative residual (NaN when a channel is
        missing). Then learns the consistent ones.
        """
        if not self._rows:
            return [], []
        got = values.tolist()
        if not ordered:  # some channels, or in another order: look them up
            lookup = dict(zip(cols.tolist(), got, strict=True))
            got = [lookup.get(k, math.nan) for k in range(self._span)]
        typical, seen = self._typical, self._seen
        broken: list[int] = []
        relative: list[float] = []
        for k, (t, a, b, c) in enumerate(self._rows):
            if c < 0:
                target, expected = abs(got[t]), abs(got[a] * got[b])
            else:
                target, expected = got[t], got[a] + got[b] + got[c]
            residual = abs(target - expected)
            scale = abs(target) + abs(expected)
            relative.append(residual / scale if scale > 0.0 else residual)
            if residual != residual:  # NaN: a channel missing
                continue
            known = seen[k] > WARMUP_SAMPLES
            if known and residual > BROKEN * typical[k] and residual > RESOLUTION * scale:
                broken.append(k)
                continue
            seen[k] += 1.0
            if seen[k] > 10.0:
                residual = min(residual, _CLIP * typical[k])
            typical[k] += (residual - typical[k]) / min(seen[k], LEARN_SAMPLES)
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
        self,
        ts: float,
        values: Floats,
        cols: npt.NDArray[np.intp],
        events: list[AlertEvent],
        ordered: bool = False,
    ) -> bool:
        """Check one sample's values (of channels ``cols``, ``ordered`` as for
        :meth:`Consistency.check`), adding raised and cleared alerts to ``events``; True when
        any identity is broken.
        """
        broken, relative = self._check.check(values, cols, ordered)
        machines = self._machines
        if not machines and not broken:
            return False
        targets = self._check.targets
        for k in sorted({*broken, *machines}):
            machine = machines.get(k)
            if machine is None:
                machine = machines[k] = AlertMachine(targets[k], self._params)
            value = float(relative[k])
            event = None
            if k in broken:
                event = machine.update(ts, CONSISTENCY_SCORE, value, "consistency")
            elif machine.active is not None:
                event = machine.update(ts, 0.0, value, "consistency")
            else:
                machine.tick()
            if event is not None:
                events.append(event)
            if machine.idle:
                del machines[k]
        return bool(broken)
