"""The metrics registry renders Prometheus text exposition."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.metrics import LabelValues, Registry


def test_render_counters_gauges_histograms() -> None:
    registry = Registry()
    permits = registry.counter("orch_permits", "Permits", ["lane"])
    level = registry.gauge("orch_level", "Level")
    wait = registry.histogram("orch_wait_seconds", "Wait", ["lane"], buckets=(0.1, 1.0))
    permits.inc("new_risk")
    permits.inc("new_risk", amount=2)
    level.set(0.5)
    wait.observe(0.05, "cancel")
    wait.observe(0.5, "cancel")
    wait.observe(5.0, "cancel")
    text = registry.render()
    assert "# TYPE orch_permits_total counter" in text
    assert 'orch_permits_total{lane="new_risk"} 3.0' in text
    assert "orch_level 0.5" in text
    assert 'orch_wait_seconds_bucket{lane="cancel",le="0.1"} 1.0' in text
    assert 'orch_wait_seconds_bucket{lane="cancel",le="1.0"} 2.0' in text
    assert 'orch_wait_seconds_bucket{lane="cancel",le="+Inf"} 3.0' in text
    assert 'orch_wait_seconds_count{lane="cancel"} 3.0' in text
    assert 'orch_wait_seconds_sum{lane="cancel"} 5.55' in text
    assert wait.count("cancel") == 3


def test_the_exposition_parses_as_prometheus_reads_it() -> None:
    """prometheus-client's own parser reads back every sample with its labels and value."""
    registry = Registry()
    registry.counter("orch_orders", "Orders", ["strategy", "state"]).inc("mm", "filled")
    registry.gauge("orch_up", "Up").set(1)
    registry.histogram("orch_lag_seconds", "Lag", buckets=(0.001,)).observe(0.002)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(registry.render())
        for s in family.samples
    }
    assert samples[("orch_orders_total", (("state", "filled"), ("strategy", "mm")))] == 1
    assert samples[("orch_up", ())] == 1
    assert samples[("orch_lag_seconds_bucket", (("le", "0.001"),))] == 0
    assert samples[("orch_lag_seconds_bucket", (("le", "+Inf"),))] == 1


def test_label_values_are_escaped_and_names_unique() -> None:
    registry = Registry()
    counter = registry.counter("c", "help", ["scope"])
    counter.inc('a"b\\c\nd')
    assert 'c_total{scope="a\\"b\\\\c\\nd"} 1.0' in registry.render()
    with pytest.raises(ValueError, match="twice"):
        registry.gauge("c", "again")


def test_the_same_family_registered_again_is_shared() -> None:
    registry = Registry()
    first = registry.counter("orders", "help", ["strategy"])
    again = registry.counter("orders", "help", ["strategy"])
    assert again is first
    with pytest.raises(ValueError, match="different families"):
        registry.counter("orders", "help", ["account"])


def test_a_sampled_family_reads_its_values_at_each_scrape() -> None:
    registry = Registry()
    live: dict[LabelValues, float] = {("mm", "open"): 2.0}
    registry.sampled("orch_orders_open", "Open orders", ["strategy", "status"], lambda: live)
    assert 'orch_orders_open{status="open",strategy="mm"} 2.0' in registry.render()
    live = {("tw", "new"): 1.0}  # the family reads whatever is live now, nothing kept
    registry.sampled("orch_orders_open", "Open orders", ["strategy", "status"], lambda: live)
    text = registry.render()
    assert 'strategy="mm"' not in text
    assert 'orch_orders_open{status="new",strategy="tw"} 1.0' in text
    registry.sampled("orch_reconnects", "Reconnects", ["socket"], lambda: {("public",): 3.0},
                     kind="counter")  # fmt: skip
    assert 'orch_reconnects_total{socket="public"} 3.0' in registry.render()
    with pytest.raises(ValueError, match="different families"):
        registry.counter("orch_reconnects", "again")
    registry.gauge("orch_level", "a gauge")
    with pytest.raises(ValueError, match="different families"):
        registry.sampled("orch_level", "sampled over a kept gauge", [], dict)
