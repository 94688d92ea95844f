"""A multivariate detector of one device: departures from the usual joint behaviour of its
channels, which no single channel shows.

Voltage, current, power and power factor of a meter move together; a broken CT, a phase swap or
a failing capacitor bank can keep every channel inside its usual range while the relation
between them changes. :class:`MultivariateDetector` learns that relation online:

* each channel is standardised by an exponentially weighted mean and variance;
* an exponentially weighted covariance of the standardised vector is kept (a p x p matrix for p
  channels, cheap at p ~ 40), and its eigendecomposition is refreshed every
  ``refresh_samples`` samples, not every sample: the principal components that explain
  ``variance`` of the total (or a fixed ``components``) form the model;
* each sample gives two distances: Hotelling's T^2 on the retained components (unusual
  combinations inside the model) and the squared prediction error SPE/Q of the residual
  (combinations the model says never happen).

It learns for a commissioning window (``window`` samples) before it scores, with an equal
weight for every sample, then adapts with a long memory (``memory`` samples), and ten times
slower still while it is detecting, so a lasting joint departure is not learnt away. The two
distances are calibrated like the per-channel detectors: each by its own
:class:`~gridedge.analytics.surprise.Surprise` histogram, the larger surprise mapped to [0, 1)
by ``s / (s + 3)``, so 0.5 means "one sample in a thousand" here too. Memory is fixed at
creation: arrays sized by the channel count, nothing grows.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gridedge.analytics.calibrate import SURPRISE_HALF
from gridedge.analytics.surprise import Surprise

Vector = npt.NDArray[np.float64]

Z_CLIP = 10.0
"""Standardised values are clipped here: one wild channel should not swamp the distances."""
REL_FLOOR = 1e-4
"""The smallest deviation of a channel, relative to its mean: a channel that never moves (an
unused phase) must not turn its first rounding step into a huge distance."""
SLOW_WHILE_DETECTING = 0.5
"""The learning rate's factor while the score is at or above ``alert_threshold``."""
FREEZE_SURPRISE = 4.0
"""A surprise beyond what the calibration histograms can tell apart (one in 10^4): while the
previous sample was this rare, distances are scored but not counted, so a lasting departure
keeps being measured against normal data instead of becoming the norm."""


@dataclass(frozen=True, slots=True)
class MultivariateParams:
    """Tuning of :class:`MultivariateDetector`; every length counts samples.

    Attributes:
        enabled: whether devices get a multivariate detector at all.
        window: the commissioning window: samples learnt (with equal weights) before scoring.
        memory: the horizon of the mean, variance and covariance once commissioned.
        components: principal components kept; 0 keeps as many as explain ``variance``.
        variance: the share of the total variance the kept components explain (with 0
            ``components``).
        refresh_samples: samples between two eigendecompositions of the covariance.
    """

    enabled: bool = False
    window: int = 2000
    memory: int = 20000
    components: int = 0
    variance: float = 0.9
    refresh_samples: int = 100


class MultivariateDetector:
    """Hotelling T^2 and SPE of one device's channel vector (see the module docstring).

    Args:
        channels: the channel names, in a fixed order; the arrays are sized by their count.
        params: tuning.
        calibration_samples: memory of the two surprise histograms.
        alert_threshold: the score from which learning slows down.
    """

    __slots__ = (
        "_basis",
        "_cov",
        "_frozen",
        "_index",
        "_inv_eig",
        "_mean",
        "_moving",
        "_n",
        "_p",
        "_s_spe",
        "_s_t2",
        "_slow_at",
        "_var",
        "channels",
        "kept",
    )

    def __init__(
        self,
        channels: Sequence[str],
        params: MultivariateParams | None = None,
        calibration_samples: int = 5000,
        alert_threshold: float = 0.5,
    ) -> None:
        p = params if params is not None else MultivariateParams()
        self._slow_at = alert_threshold
        self._p = p
        self.channels = tuple(channels)
        self._index = {name: i for i, name in enumerate(self.channels)}
        size = len(self.channels)
        self._mean: Vector = np.zeros(size)
        self._var: Vector = np.zeros(size)
        self._moving: Vector = np.ones(size)
        """1 for the channels in the model, 0 for those that stood still while commissioned."""
        self._cov: Vector = np.zeros((size, size))
        self._basis: Vector = np.zeros((size, 0))
        self._inv_eig: Vector = np.zeros(0)
        self.kept = 0
        """Principal components in the model now."""
        self._n = 0
        self._frozen = False
        self._s_t2 = Surprise(calibration_samples)
        self._s_spe = Surprise(calibration_samples)

    @property
    def commissioned(self) -> bool:
        """True once the commissioning window is over (the detector scores)."""
        return self._n > self._p.window

    def vector(self, values: Mapping[str, float]) -> Vector:
        """The channel vector of a sample; a missing channel takes its mean (no evidence)."""
        x = self._mean.copy()
        index = self._index
        for name, value in values.items():
            i = index.get(name)
            if i is not None:
                x[i] = value
        return x

    def update(self, values: Mapping[str, float]) -> float:
        """Score a sample in [0, 1) against the joint model, then learn it (0 while the
        detector is commissioned).
        """
        x = self.vector(values)
        self._n += 1
        n, p = self._n, self._p
        if n == 1:
            self._mean = x
            return 0.0
        z = self._standardise(x)
        score = 0.0
        if self.kept:
            t = self._basis.T @ z
            t2 = float(t @ (t * self._inv_eig))
            residual = z - self._basis @ t
            spe = float(residual @ residual)
            # Distances, not squares, like the per-channel detectors' |z|.
            s = max(self._rarity(self._s_t2, t2), self._rarity(self._s_spe, spe))
            self._frozen = s >= FREEZE_SURPRISE
            score = s / (s + SURPRISE_HALF) if n > p.window else 0.0
        rate = 1.0 / n if n <= p.window else 1.0 / p.memory
        if score >= self._slow_at:
            rate *= SLOW_WHILE_DETECTING
        self._learn(x, z, rate)
        if n == p.window:
            # A channel that never moved while commissioned (an unused phase) says nothing about
            # the joint behaviour; its first movement later would be all T^2 and SPE.
            self._moving = (self._var > self._floor() ** 2).astype(np.float64)
        # The first model at half the window: the second half calibrates the surprises.
        if n >= p.window // 2 and n % p.refresh_samples == 0:
            self._refresh()
        return score

    def _rarity(self, surprise: Surprise, square: float) -> float:
        if self._frozen:
            return copy.deepcopy(surprise).update(math.sqrt(square))
        return surprise.update(math.sqrt(square))

    def _floor(self) -> Vector:
        floor: Vector = REL_FLOOR * np.maximum(np.abs(self._mean), 1.0)
        return floor

    def _standardise(self, x: Vector) -> Vector:
        sd = np.maximum(np.sqrt(self._var), self._floor())
        z: Vector = np.clip((x - self._mean) / sd, -Z_CLIP, Z_CLIP)
        return z * self._moving

    def _learn(self, x: Vector, z: Vector, rate: float) -> None:
        e = x - self._mean
        self._mean += rate * e
        self._var += rate * (e * e - self._var)
        self._cov += rate * (np.outer(z, z) - self._cov)

    def _refresh(self) -> None:
        """Refresh the principal components from the covariance."""
        eig, vectors = np.linalg.eigh(self._cov)
        eig, vectors = eig[::-1], vectors[:, ::-1]
        total = float(eig.sum())
        if total <= 0.0:
            self.kept = 0
            return
        p = self._p
        if p.components:
            k = min(p.components, len(eig) - 1)
        else:
            share = np.cumsum(eig) / total
            k = int(np.searchsorted(share, p.variance) + 1)
            k = min(k, len(eig) - 1)
        k = max(k, 1)
        self.kept = k
        self._basis = np.ascontiguousarray(vectors[:, :k])
        self._inv_eig = 1.0 / np.maximum(eig[:k], 1e-9 * total)
