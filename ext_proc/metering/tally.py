"""Counters and histograms kept as plain numbers, exposed through a registry at collection.

prometheus-client's own instruments take a lock for every value they change (a histogram
observation two, after a Python loop to its bucket), which cost a worker as much as the rest
of counting an attempt. A worker counts and collects on its event loop's thread (the pool
reads snapshots it writes: ext_proc/pool_metrics.py), so nothing here takes a lock. A
collection copies each family's items first, so that one from another thread could not
fail on a family that gained a series meanwhile.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

LabelValues = tuple[str, ...]


class Counter:
    """A counter family: a running total per label set."""

    __slots__ = ("_labels", "_totals", "documentation", "name")

    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        self.name, self.documentation, self._labels = name, documentation, list(labels)
        self._totals: dict[LabelValues, float] = {}

    def add(self, labels: LabelValues, amount: float = 1.0) -> None:
        self._totals[labels] = self._totals.get(labels, 0.0) + amount

    def collect(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self._labels)
        for labels, total in list(self._totals.items()):
            family.add_metric(labels, total)
        return family


class Histogram:
    """A histogram family: per label set, a count per bucket (not cumulated until
    collected) and the sum of the values observed."""

    __slots__ = ("_bounds", "_labels", "_series", "_upper", "documentation", "name")

    def __init__(self, name: str, documentation: str, labels: Sequence[str],
                 buckets: Sequence[float]) -> None:
        self.name, self.documentation, self._labels = name, documentation, list(labels)
        self._bounds = tuple(sorted(buckets))
        self._upper = [*map(floatToGoString, self._bounds), "+Inf"]
        # The counts of each bucket then +Inf's, then the sum.
        self._series: dict[LabelValues, list[float]] = {}

    def observe(self, labels: LabelValues, value: float) -> None:
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = [0.0] * (len(self._bounds) + 2)
        # A value on a bound belongs to that bound's bucket (`le`).
        series[bisect_left(self._bounds, value)] += 1
        series[-1] += value

    def collect(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self._labels)
        for labels, series in list(self._series.items()):
            cumulated, buckets = 0.0, []
            for upper, count in zip(self._upper, series, strict=False):
                cumulated += count
                buckets.append((upper, cumulated))
            family.add_metric(labels, buckets, series[-1])
        return family


class Tally:
    """A registry's collector of the families it holds."""

    def __init__(self, *families: Counter | Histogram) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return [family.collect() for family in self._families]
