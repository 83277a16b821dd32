"""The process's metrics: counters, gauges and histograms with labels, exposed to Prometheus by
`prometheus-client` (its registry, its text and OpenMetrics exposition, its metric families).

Values are kept here, not in prometheus-client's own metric objects, and handed to its registry
by a custom collector (the library's way to expose values that live elsewhere): those objects
take a thread lock on every update and `labels()` looks the child up under it, about 3.7 us per
limiter permit against 0.4 us here (measured side by side), and the limiter grants a permit per
venue request on the one event loop of the process, where no lock is needed.

Label values are ours (scope names, strategies, lanes), never secrets: an API key appears in a
scope name only as its fingerprint (`exchange.kraken.rest.key_fingerprint`), never the key.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Final, Literal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

DEFAULT_BUCKETS_S: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

LabelValues = tuple[str, ...]


class _Metric:
    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.label_names = tuple(labels)

    def family(self) -> Metric:
        raise NotImplementedError


class Counter(_Metric):
    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self.values: dict[LabelValues, float] = {}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def get(self, *labels: str) -> float:
        return self.values.get(labels, 0.0)

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.help, labels=self.label_names)
        for labels, value in sorted(self.values.items()):
            family.add_metric(list(labels), value)
        return family


class Gauge(_Metric):
    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self.values: dict[LabelValues, float] = {}

    def set(self, value: float, *labels: str) -> None:
        self.values[labels] = value

    def get(self, *labels: str) -> float:
        return self.values.get(labels, 0.0)

    def family(self) -> Metric:
        family = GaugeMetricFamily(self.name, self.help, labels=self.label_names)
        for labels, value in sorted(self.values.items()):
            family.add_metric(list(labels), value)
        return family


class Histogram(_Metric):
    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = DEFAULT_BUCKETS_S,
    ) -> None:
        super().__init__(name, help_text, labels)
        self.buckets = tuple(sorted(buckets))
        self.counts: dict[LabelValues, list[int]] = {}
        self.sums: dict[LabelValues, float] = {}

    def observe(self, value: float, *labels: str) -> None:
        counts = self.counts.get(labels)
        if counts is None:  # not setdefault: that builds the list on every call
            counts = self.counts[labels] = [0] * (len(self.buckets) + 1)
        counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sums[labels] = self.sums.get(labels, 0.0) + value

    def count(self, *labels: str) -> int:
        return sum(self.counts.get(labels, ()))

    def family(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.help, labels=self.label_names)
        bounds = [*(_bound(b) for b in self.buckets), "+Inf"]
        for labels, counts in sorted(self.counts.items()):
            running, cumulative = 0, []
            for bound, count in zip(bounds, counts, strict=True):
                running += count
                cumulative.append((bound, float(running)))
            family.add_metric(list(labels), cumulative, self.sums[labels])
        return family


class Sampled(_Metric):
    """A family whose values are read from live objects when Prometheus scrapes (open orders
    by state, a book's health): nothing to keep up to date, nothing to forget. `read` returns
    label values -> value and must be quick and pure (it runs on the event loop)."""

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str],
        read: Callable[[], Mapping[LabelValues, float]],
        *,
        kind: Literal["gauge", "counter"] = "gauge",
    ) -> None:
        super().__init__(name, help_text, labels)
        self.read = read
        self.kind = kind

    def family(self) -> Metric:
        family: GaugeMetricFamily | CounterMetricFamily
        if self.kind == "counter":
            family = CounterMetricFamily(self.name, self.help, labels=self.label_names)
        else:
            family = GaugeMetricFamily(self.name, self.help, labels=self.label_names)
        for labels, value in sorted(self.read().items()):
            family.add_metric(list(labels), value)
        return family


def _bound(bucket: float) -> str:
    return "+Inf" if bucket == math.inf else repr(float(bucket))


class Registry:
    """The metrics of one process, collected by `prometheus` (a prometheus-client registry)."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self.prometheus = CollectorRegistry(auto_describe=False)
        self.prometheus.register(self)

    def collect(self) -> Iterator[Metric]:
        """prometheus-client's collector protocol: every family, as it stands now."""
        for metric in list(self._metrics.values()):
            yield metric.family()

    def _add(self, metric: _Metric) -> _Metric:
        """Register `metric`, or return the one registered under its name when it is the same
        family (kind and labels): every worker of a process shares one family, labelled by
        strategy. A different family under a taken name is a programming error."""
        known = self._metrics.get(metric.name)
        if known is None:
            self._metrics[metric.name] = metric
            return metric
        if type(known) is not type(metric) or known.label_names != metric.label_names:
            raise ValueError(f"metric {metric.name} registered twice, as different families")
        return known

    def counter(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Counter:
        metric = self._add(Counter(name, help_text, labels))
        assert isinstance(metric, Counter)  # noqa: S101 - just built
        return metric

    def gauge(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Gauge:
        metric = self._add(Gauge(name, help_text, labels))
        assert isinstance(metric, Gauge)  # noqa: S101
        return metric

    def histogram(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = DEFAULT_BUCKETS_S,
    ) -> Histogram:
        metric = self._add(Histogram(name, help_text, labels, buckets))
        assert isinstance(metric, Histogram)  # noqa: S101
        return metric

    def sampled(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str],
        read: Callable[[], Mapping[LabelValues, float]],
        *,
        kind: Literal["gauge", "counter"] = "gauge",
    ) -> Sampled:
        """A family read at each scrape (`Sampled`); registering a name again replaces what
        it reads (a service started again in one process reads its new objects)."""
        known = self._metrics.get(name)
        if known is not None and not isinstance(known, Sampled):
            raise ValueError(f"metric {name} registered twice, as different families")
        metric = Sampled(name, help_text, labels, read, kind=kind)
        self._metrics[name] = metric
        return metric

    def render(self) -> str:
        """The Prometheus text exposition of every metric (prometheus-client's)."""
        return generate_latest(self.prometheus).decode()
