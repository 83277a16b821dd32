"""The metrics registry renders Prometheus text exposition."""

from __future__ import annotations

import pytest

from orchestrator.metrics import Registry


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
    assert "# TYPE orch_permits counter" in text
    assert 'orch_permits_total{lane="new_risk"} 3' in text
    assert "orch_level 0.5" in text
    assert 'orch_wait_seconds_bucket{lane="cancel",le="0.1"} 1' in text
    assert 'orch_wait_seconds_bucket{lane="cancel",le="1"} 2' in text
    assert 'orch_wait_seconds_bucket{lane="cancel",le="+Inf"} 3' in text
    assert 'orch_wait_seconds_count{lane="cancel"} 3' in text
    assert wait.count("cancel") == 3


def test_label_values_are_escaped_and_names_unique() -> None:
    registry = Registry()
    counter = registry.counter("c", "help", ["scope"])
    counter.inc('a"b\\c\nd')
    assert 'c_total{scope="a\\"b\\\\c\\nd"} 1' in registry.render()
    with pytest.raises(ValueError, match="twice"):
        registry.gauge("c", "again")


def test_the_same_family_registered_again_is_shared() -> None:
    registry = Registry()
    first = registry.counter("orders", "help", ["strategy"])
    again = registry.counter("orders", "help", ["strategy"])
    assert again is first
    with pytest.raises(ValueError, match="different families"):
        registry.counter("orders", "help", ["account"])
