"""A small Prometheus metrics registry: counters, gauges and histograms with labels, rendered in
the text exposition format for `/metrics`. In-process and lock-free (one event loop per process).

Label values are ours (scope names, strategies, lanes), never secrets: an API key appears in a
scope name only as its fingerprint (`exchange.kraken.rest.key_fingerprint`), never the key.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence
from typing import Final

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


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Metric:
    kind: str = ""

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.label_names = tuple(labels)

    def _labels(self, values: LabelValues) -> str:
        if not self.label_names:
            return ""
        pairs = ",".join(
            f'{n}="{_escape(v)}"' for n, v in zip(self.label_names, values, strict=True)
        )
        return "{" + pairs + "}"

    def samples(self) -> Iterator[str]:
        raise NotImplementedError


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self.values: dict[LabelValues, float] = {}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def get(self, *labels: str) -> float:
        return self.values.get(labels, 0.0)

    def samples(self) -> Iterator[str]:
        for labels, value in sorted(self.values.items()):
            yield f"{self.name}_total{self._labels(labels)} {value:g}"


class Gauge(_Metric):
    kind = "gauge"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self.values: dict[LabelValues, float] = {}

    def set(self, value: float, *labels: str) -> None:
        self.values[labels] = value

    def get(self, *labels: str) -> float:
        return self.values.get(labels, 0.0)

    def samples(self) -> Iterator[str]:
        for labels, value in sorted(self.values.items()):
            yield f"{self.name}{self._labels(labels)} {value:g}"


class Histogram(_Metric):
    kind = "histogram"

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

    def samples(self) -> Iterator[str]:
        for labels, counts in sorted(self.counts.items()):
            running = 0
            base = self._labels(labels)[1:-1]
            sep = "," if base else ""
            for bound, count in zip((*self.buckets, math.inf), counts, strict=True):
                running += count
                le = "+Inf" if bound == math.inf else f"{bound:g}"
                yield f'{self.name}_bucket{{{base}{sep}le="{le}"}} {running}'
            yield f"{self.name}_sum{self._labels(labels)} {self.sums[labels]:g}"
            yield f"{self.name}_count{self._labels(labels)} {running}"


class Registry:
    """The metrics of one process."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}

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

    def render(self) -> str:
        lines: list[str] = []
        for metric in self._metrics.values():
            lines.append(f"# HELP {metric.name} {metric.help}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            lines.extend(metric.samples())
        return "\n".join(lines) + "\n"
