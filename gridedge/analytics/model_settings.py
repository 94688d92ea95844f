"""Settings of the device-level models: ``[analytics.multivariate]`` and ``[[analytics.models]]``.

A ``[[analytics.models]]`` entry names any River anomaly detector or forecaster by its dotted
name below ``river`` (``anomaly.HalfSpaceTrees``, ``time_series.HoltWinters``) with its
constructor's parameters. Parsing checks the name and the parameters by building the model
once, so ``gridedge check`` reports a typo or a bad parameter as one line naming the key; River
is imported only then, when a model is configured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gridedge.analytics.multivariate import MultivariateParams
from gridedge.tomlread import Table

_DOTTED = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*\.[A-Za-z_][A-Za-z0-9_]*$")


class Scaling(StrEnum):
    """How a model's input features are scaled online before it sees them."""

    MINMAX = "minmax"
    """To [0, 1] by the running minimum and maximum (half-space trees expect this)."""
    STANDARD = "standard"
    """To zero mean and unit variance by the running mean and variance."""
    NONE = "none"
    """The raw values."""


class ModelKind(StrEnum):
    """What a configured River model does."""

    ANOMALY = "anomaly"
    """Scores a device's channel vector; the score joins the device's detector score."""
    FORECASTER = "forecaster"
    """Forecasts each of its channels; the forecasts become forecast envelopes."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One ``[[analytics.models]]`` entry."""

    model: str
    params: dict[str, Any] = field(default_factory=dict)
    scaling: Scaling = Scaling.MINMAX
    channels: tuple[str, ...] = ()
    """The channels the model sees (all analysed channels when empty; required for a
    forecaster)."""
    warmup_samples: int = 500
    """Samples learnt before the model's score counts."""
    kind: ModelKind = field(default=ModelKind.ANOMALY, metadata={"hidden": True})
    """Found from the model's class when parsed."""


def parse_multivariate(t: Table) -> MultivariateParams:
    """Validate an ``[analytics.multivariate]`` table."""
    d = MultivariateParams()
    window = t.integer("window", d.window, min=10)
    refresh = t.integer("refresh_samples", d.refresh_samples, min=1)
    p = MultivariateParams(
        enabled=t.boolean("enabled", d.enabled),
        window=window,
        memory=t.integer("memory", d.memory, min=10),
        components=t.integer("components", d.components, min=0, max=1000),
        variance=t.number("variance", d.variance, positive=True, max=1.0),
        refresh_samples=refresh,
    )
    if refresh > window // 2:
        raise t.fail("refresh_samples", f"expected at most half the window ({window // 2})")
    t.finish()
    return p


def parse_model(t: Table) -> ModelSpec:
    """Validate one ``[[analytics.models]]`` table, building the model once to check it."""
    from gridedge.analytics import river_models  # deferred: River is slow to import

    name = t.string("model")
    if not _DOTTED.match(name):
        example = "'anomaly.HalfSpaceTrees'"
        raise t.fail("model", f"expected a dotted River name such as {example}, got {name!r}")
    params = t.table("params").data
    channels = t.strings("channels", ())
    spec = ModelSpec(
        model=name,
        params=dict(params),
        scaling=t.choice("scaling", Scaling, Scaling.MINMAX),
        channels=channels,
        warmup_samples=t.integer("warmup_samples", 500, min=0),
    )
    try:
        kind = ModelKind(river_models.check_model(name, spec.params))
    except ValueError as e:
        key, problem = e.args
        raise t.fail(key, problem) from None
    if kind is ModelKind.FORECASTER and not channels:
        raise t.fail("channels", "required for a forecaster: the channels it forecasts")
    t.finish()
    return ModelSpec(spec.model, spec.params, spec.scaling, channels, spec.warmup_samples, kind)
