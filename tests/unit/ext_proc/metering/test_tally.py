"""The tally's families expose what prometheus-client's own instruments would, given the
same values: the reference is the library itself, fed the same observations."""

from __future__ import annotations

import prometheus_client
from prometheus_client import CollectorRegistry, generate_latest

from ext_proc.metering.tally import Counter, Histogram, Tally

BUCKETS = (0.01, 0.1, 1.0, 4.0, 16.0)
# On a bound, between bounds, below the first, above the last, zero, repeated.
VALUES = (0.01, 0.05, 0.0, 1.0, 3.99, 4.0, 100.0, 16.0, 0.1, 0.1)


def exposition(registry: CollectorRegistry) -> list[str]:
    """The exposition's lines, less prometheus-client's creation-time samples."""
    return [line for line in generate_latest(registry).decode().splitlines()
            if "_created" not in line]


def test_a_histogram_exposes_what_the_library_would() -> None:
    ours, reference = CollectorRegistry(), CollectorRegistry()
    histogram = Histogram("latency_seconds", "How long.", ["team", "kind"], BUCKETS)
    ours.register(Tally(histogram))
    library = prometheus_client.Histogram("latency_seconds", "How long.", ["team", "kind"],
                                          buckets=BUCKETS, registry=reference)
    for index, value in enumerate(VALUES):
        labels = ("search", "chat" if index % 3 else "embeddings")
        histogram.observe(labels, value)
        library.labels(*labels).observe(value)
    assert exposition(ours) == exposition(reference)
    assert ours.get_sample_value("latency_seconds_bucket",
                                 {"team": "search", "kind": "chat", "le": "0.1"}) == 3


def test_a_counter_exposes_what_the_library_would() -> None:
    ours, reference = CollectorRegistry(), CollectorRegistry()
    counter = Counter("cost_usd", "Spent.", ["team"])
    ours.register(Tally(counter))
    library = prometheus_client.Counter("cost_usd", "Spent.", ["team"], registry=reference)
    for team, amount in (("a", 0.25), ("b", 1.0), ("a", 0.5), ("c", 0.0)):
        counter.add((team,), amount)
        library.labels(team).inc(amount)
    counter.add(("b",))
    library.labels("b").inc()
    assert exposition(ours) == exposition(reference)


def test_families_with_nothing_counted_expose_no_samples() -> None:
    registry = CollectorRegistry()
    registry.register(Tally(Counter("calls", "Calls.", ["team"]),
                            Histogram("sizes", "Sizes.", ["team"], BUCKETS)))
    assert [line for line in exposition(registry) if not line.startswith("#")] == []
