"""The analytics of one device: every channel's state in numpy arrays, one sample at a time.

:class:`DeviceAnalytics` indexes the device's channels once (from its driver and its first
sample; a channel that appears later is added, one that is missing from a sample is left
alone) and keeps each stage's state for all of them in fixed-size arrays: rules
(:class:`~gridedge.analytics.rules.RuleBank`), detectors and their calibration
(:class:`~gridedge.analytics.detectors.DetectorBank`), hold-off, the hold references and the
window aggregates. A sample updates them with one vector operation per step; only the few
channels with a rule firing or an alert active go through a Python loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from gridedge.analytics.aggregate import Deadband, WindowBank
from gridedge.analytics.alerts import AlertEvent, AlertMachine, AlertState, Severity
from gridedge.analytics.calibrate import Floats, Index, corrected, uncorrected
from gridedge.analytics.consistency import CONSISTENCY_SCORE, ConsistencyAlerts
from gridedge.analytics.counters import CounterRates
from gridedge.analytics.detectors import JUMP_HYSTERESIS, DetectorBank, HoldoffBank, jump_score
from gridedge.analytics.device_models import DeviceModels
from gridedge.analytics.hold import Hold, ReferenceBank
from gridedge.analytics.result import DeviceScorer, Result
from gridedge.analytics.rules import RULES, DropoutRule, RuleBank, RuleParams, supply_band
from gridedge.analytics.settings import AnalyticsConfig
from gridedge.analytics.trendwatch import TrendWatch
from gridedge.model import Envelope, Sample


class ChannelLimits(NamedTuple):
    """What the driver says about one channel: physical range and nominal value."""

    min: float | None = None
    max: float | None = None
    nominal: float | None = None
    """Nominal voltage of a voltage channel, rated current of a current channel."""


Limits = Mapping[str, ChannelLimits]
"""Limits per channel name, from the driver."""

_Seen = tuple[float, float]  # a value and what its detector saw (a counter's rate)

DEVICE_CHANNEL = "*"
"""The channel name of device-level alerts (dropout, multi-channel models)."""

WEEK_S = 7 * 86400.0


class _Layout(NamedTuple):
    """Where the values of a sample with a given key order go."""

    pos: npt.NDArray[np.intp]
    """The channel index of each key."""
    analysed: npt.NDArray[np.bool_]
    """Whether each key's channel is analysed (not excluded by the config)."""
    same: bool
    """The keys are the device's channels, in index order."""
    everything: bool
    """``same``, and every channel is analysed: the fast path."""


class DeviceAnalytics:
    """Everything the analytics know about one device.

    Args:
        device: its name.
        config: the ``[analytics]`` section.
        limits: the driver's limits per channel (their names are indexed up front).
        scorers: extra device-level detectors (see :class:`DeviceScorer`).
    """

    __slots__ = (
        "_active",
        "_alerting",
        "_analysed",
        "_ar",
        "_config",
        "_consistency",
        "_counters",
        "_deadband",
        "_detector",
        "_device_alert",
        "_dropout",
        "_dropout_alert",
        "_hold",
        "_hold_index",
        "_holdoff",
        "_index",
        "_layouts",
        "_limits",
        "_machines",
        "_models",
        "_names",
        "_only",
        "_refs",
        "_rules",
        "_trends",
        "_windows",
        "device",
        "scorers",
    )

    def __init__(
        self,
        device: str,
        config: AnalyticsConfig,
        limits: Limits,
        scorers: Sequence[DeviceScorer] = (),
    ) -> None:
        self.device = device
        self._config = config
        self._limits = limits
        self._only = frozenset(config.channels)
        self.scorers = list(scorers)
        self._models = DeviceModels.create(device, config)
        """Extra device-level detectors; each score joins the device score in ``process``."""
        self._names: list[str] = []
        self._index: dict[str, int] = {}
        self._analysed = np.zeros(0, bool)
        self._counters = CounterRates()
        self._ar = np.arange(0)
        self._layouts: dict[tuple[str, ...], _Layout] = {}
        d = config.detector
        self._rules = RuleBank([])
        self._detector = DetectorBank(d, 0)
        self._holdoff = HoldoffBank(d.holdoff_samples, d.alert_threshold, 0)
        self._refs = ReferenceBank(0)
        self._windows = WindowBank(device, config.aggregate.windows_s, self._names)
        self._machines: dict[int, AlertMachine] = {}  # channels whose rule alert is not idle
        self._alerting = np.zeros(0, bool)
        self._consistency = ConsistencyAlerts([], config.alerts)
        self._dropout = DropoutRule(config.dropout_factor)
        self._device_alert = AlertMachine(DEVICE_CHANNEL, config.alerts)
        self._dropout_alert = AlertMachine(DEVICE_CHANNEL, config.alerts)
        self._hold = Hold()
        self._hold_index = -1
        self._active = 0
        self._trends = TrendWatch(device, config)
        agg = config.aggregate
        bands = {o.name: o.deadband for o in config.overrides if o.deadband is not None}
        self._deadband = (
            Deadband(agg.deadband, bands, agg.max_silence_s) if agg.report_by_exception else None
        )
        self._add_channels(list(limits))

    @property
    def channels(self) -> int:
        """How many channels the device's arrays hold."""
        return len(self._names)

    def _rule_params(self, name: str) -> RuleParams | None:
        """The rules of one channel, or None when it is not analysed."""
        cfg = self._config
        override = cfg.override(self.device, name)
        excluded = bool(self._only) and name not in self._only
        if excluded or (override is not None and not override.enabled):
            return None
        low, high, nominal = self._limits.get(name, ChannelLimits())
        flat = cfg.flatline_samples
        rate = None
        if override is not None:
            low = override.min if override.min is not None else low
            high = override.max if override.max is not None else high
            flat = override.flatline_samples if override.flatline_samples is not None else flat
            rate = override.max_rate_per_s
        band_low, band_high = supply_band(name, nominal, cfg.supply_band)
        return RuleParams(low, high, rate, flat, band_low, band_high)

    def _add_channels(self, names: Sequence[str]) -> None:
        """Index channels not seen before; every array grows by their number, once."""
        new = [n for n in dict.fromkeys(names) if n not in self._index]
        if not new:
            return
        params = [self._rule_params(n) for n in new]
        for name in new:
            self._index[name] = len(self._names)
            self._names.append(name)
        extra = len(new)
        self._analysed = np.concatenate([self._analysed, [p is not None for p in params]])
        self._counters.grow(new)
        self._ar = np.arange(len(self._names))
        self._alerting = np.concatenate([self._alerting, np.zeros(extra, bool)])
        self._rules.grow([p if p is not None else RuleParams() for p in params])
        self._detector.grow(extra)
        self._holdoff.grow(extra)
        self._refs.grow(extra)
        self._windows.grow(extra)
        self._consistency = ConsistencyAlerts(self._names, self._config.alerts)
        self._layouts.clear()

    def _layout(self, keys: tuple[str, ...]) -> _Layout:
        layout = self._layouts.get(keys)
        if layout is not None:
            return layout
        self._add_channels(keys)
        pos = np.array([self._index[k] for k in keys], np.intp)
        same = keys == tuple(self._names)
        analysed = self._analysed[pos]
        layout = _Layout(pos, analysed, same, same and bool(analysed.all()))
        if len(self._layouts) >= 8:  # a device whose samples keep changing shape
            self._layouts.clear()
        self._layouts[keys] = layout
        return layout

    def process(
        self,
        sample: Sample,
        raw: Floats | None = None,
        usable: npt.NDArray[np.bool_] | None = None,
    ) -> Result:
        """Run every analysis on one sample.

        ``raw`` holds the sample's values in key order (made here when None); ``usable``
        marks those to analyse (None: all of them).
        """
        ts = sample.ts
        keys = tuple(sample.values)
        if raw is None:
            raw = np.fromiter(sample.values.values(), float, len(keys))
        layout = self._layout(keys)
        if usable is None and layout.everything:
            sel: Index = slice(None)
            cols, values, wsel, wvalues = self._ar, raw, sel, raw
        else:
            keep = layout.analysed if usable is None else layout.analysed & usable
            cols = layout.pos[keep]
            sel, values = cols, raw[keep]
            if usable is None:
                wsel, wvalues = (slice(None) if layout.same else layout.pos), raw
            else:
                wsel, wvalues = layout.pos[usable], raw[usable]
        envelopes: list[Envelope] = []
        events: list[AlertEvent] = []
        best, top, top_seen, ruled, scores, jumpy = self._score_channels(
            ts, values, sel, cols, events
        )
        detected = corrected(best, len(scores), per_alarm := self._per_alarm())
        if jumpy is not None and jumpy[0] > detected:
            detected, top, top_seen = jumpy
        self._dropout_check(ts, events)
        if self._consistency.update(ts, values, cols, events, isinstance(sel, slice)):
            ruled = max(ruled, CONSISTENCY_SCORE)
        for scorer in self.scorers:  # extra device-level detectors join here
            detected = max(detected, scorer.score(sample))
        if self._models is not None:  # the multivariate and River models: evidence is the device
            extra = self._models.update(ts, sample.values, envelopes, per_alarm, corrected)
            if extra > detected:
                detected, top = extra, -1
        event = self._device_alert_update(ts, detected, top, top_seen)
        if event is not None:
            events.append(event)
        forecasts = self._trends.process(sample, envelopes, events) if self._trends else {}
        envelopes += self._windows.add(ts, wvalues, wsel)
        envelopes[:0] = [e.envelope(self.device) for e in events]
        report = self._deadband.filter(ts, sample.values) if self._deadband else None
        raised = [e for e in events if e.state is AlertState.RAISED]
        self._active += 2 * len(raised) - len(events)
        return Result(
            max(detected, ruled), scores, envelopes, raised, report, forecasts, self._active > 0
        )

    def _score_channels(
        self,
        ts: float,
        values: Floats,
        sel: Index,
        cols: npt.NDArray[np.intp],
        events: list[AlertEvent],
    ) -> tuple[float, int, _Seen, float, dict[str, float], tuple[float, int, _Seen] | None]:
        """Score the analysed values: (best detector score, its channel index or -1, its value
        and what its detector saw, best rule score, score per channel, an oscillation's score,
        channel and values or None). Rules alert per channel; detector scores per device.
        """
        seen = values
        if self._counters.any:  # a counter's detectors see its rate, not the reading
            seen = self._counters.seen(ts, values, sel)
        self._refs.update(seen, sel)
        h = self._hold_index
        if h >= 0:
            at = np.flatnonzero(cols == h)
            if len(at):
                self._hold.update(float(seen[at[0]]))
        # Only a score that would raise a device alert starts the halving of the ones after it.
        loud = uncorrected(self._config.detector.alert_threshold, len(values), self._per_alarm())
        score = self._holdoff.update(self._detector.update(ts, seen, sel, cols), sel, loud)
        best, top, top_seen = 0.0, -1, (0.0, 0.0)
        if len(score):
            j = int(score.argmax())
            if score[j] > 0.0:
                best, top, top_seen = float(score[j]), int(cols[j]), (values[j], seen[j])
        jumpiness, k = self._detector.jumpiest
        level = self._config.detector.jump_level
        if self._device_alert.active is not None:
            level -= JUMP_HYSTERESIS  # an oscillation that slows a little is still one
        jumpy = jump_score(jumpiness, level)
        if jumpy > 0.0:  # an oscillation: counts as a device score as it is (no discount)
            oscillating = (jumpy, int(cols[k]), (float(values[k]), float(seen[k])))
        else:
            oscillating = None
        fired = self._rules.check(ts, values, sel)
        ruled = 0.0
        if fired is not None or self._machines:
            code, hit = fired if fired is not None else (np.zeros(len(cols), np.intp), score * 0.0)
            todo = np.flatnonzero((code > 0) | self._alerting[sel])
            if len(todo):
                self._rule_alerts(ts, values, cols, todo, code, hit, events)
            if fired is not None:
                score = np.maximum(score, hit)
                ruled = float(hit.max())
        names = self._names if isinstance(sel, slice) else [self._names[c] for c in cols.tolist()]
        per_channel = dict(zip(names, score.tolist(), strict=True))
        return best, top, top_seen, ruled, per_channel, oscillating

    def _per_alarm(self) -> float:
        """Device samples per false alarm the budget allows (one week's worth over it)."""
        interval, budget = self._dropout.interval_s, self._config.detector.false_alerts_per_week
        return (WEEK_S / interval if interval > 0.0 else 1.0) / budget

    def _rule_alerts(
        self,
        ts: float,
        values: Floats,
        cols: npt.NDArray[np.intp],
        todo: npt.NDArray[np.intp],
        code: npt.NDArray[np.intp],
        hit: Floats,
        events: list[AlertEvent],
    ) -> None:
        """Feed the alert machines of the channels whose rule fired or whose alert is live."""
        machines = self._machines
        for k in todo.tolist():
            c = int(cols[k])
            machine = machines.get(c)
            if machine is None:
                machine = machines[c] = AlertMachine(self._names[c], self._config.alerts)
            rule = int(code[k])
            value = float(values[k])
            if rule:
                event = machine.update(ts, float(hit[k]), value, RULES[rule])
            elif machine.active is not None:
                event = machine.update(ts, 0.0, value, "")
            else:
                machine.tick()  # a streak building up waits for the next hit
                event = None
            if event is not None:
                events.append(event)
            if machine.idle:
                del machines[c]
            self._alerting[c] = not machine.idle

    def _device_alert_update(
        self, ts: float, detected: float, top: int, top_seen: tuple[float, float]
    ) -> AlertEvent | None:
        """The detector alert, held while its evidence channel stays away from its baseline."""
        machine, hold = self._device_alert, self._hold
        if machine.active is not None and hold.held:
            detected = max(detected, self._config.alerts.raise_threshold)
        name = self._names[top] if top >= 0 else DEVICE_CHANNEL
        value, seen = float(top_seen[0]), float(top_seen[1])
        event = machine.update(ts, detected, value, "detector", channel=name)
        if event is not None:
            if event.state is AlertState.RAISED and top >= 0:
                hold.start(name, *self._refs.before(top, seen))
                self._hold_index = top
            else:
                hold.stop()
                self._hold_index = -1
        return event

    def _dropout_check(self, ts: float, events: list[AlertEvent]) -> None:
        """A gap is not a value: it raises its own alert but leaves the anomaly score alone."""
        machine = self._dropout_alert
        gap = self._dropout.check(ts)
        if gap is not None:
            event = machine.raise_now(ts, gap, "dropout", Severity.WARNING)
        elif machine.active is not None:
            event = machine.update(ts, 0.0, 0.0, "dropout")
        else:
            machine.tick()
            return
        if event is not None:
            events.append(event)

    def flush(self) -> list[Envelope]:
        """The aggregates of this device's open windows."""
        return self._windows.flush()
