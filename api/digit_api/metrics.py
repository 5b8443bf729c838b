"""Prometheus metrics of one app instance (its own registry, so tests can build many apps).

Names follow Prometheus' conventions (base units in the name, `_total` on counters, `_ratio` for
a 0-1 quantity, `_info` for a constant 1 with labels); `promtool check metrics` lints a scrape in
the tests. Every label has a bounded set of values: the middleware maps unknown methods to
"other" and unmatched paths to "unmatched".
"""

from __future__ import annotations

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Without this every counter and histogram child also exports a `_created` series (a timestamp
# per label set): twice the series for nothing a dashboard reads.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONFIDENCE_BUCKETS = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests",
            "HTTP requests by method, route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time from request to response by method, route and status",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter("predictions", "Predictions by predicted label", ["label"], registry=self.registry)
        self.confidence = Histogram(
            "prediction_confidence_ratio",
            "Probability (0-1) of the predicted label",
            buckets=CONFIDENCE_BUCKETS,
            registry=self.registry,
        )
        self.model_info = Gauge(
            "model_info", "The model in service (value 1)", ["name", "version"], registry=self.registry
        )
        self.reloads = Counter("model_reloads", "Model loads by result", ["result"], registry=self.registry)
        self.feedback = Counter(
            "feedback",
            "People's verdicts by model version and outcome (confirmed, corrected, duplicate)",
            ["model_version", "outcome"],
            registry=self.registry,
        )
        # `.labels()` builds and locks on every call; the label sets are few, so keep their children.
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._prediction_children: dict[str, Counter] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            labels = (method, route, str(status))
            children = (self.requests.labels(*labels), self.latency.labels(*labels))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_predictions(self, labels: list[str], confidences: list[float]) -> None:
        for label, confidence in zip(labels, confidences, strict=True):
            child = self._prediction_children.get(label)
            if child is None:
                child = self._prediction_children[label] = self.predictions.labels(label)
            child.inc()
            self.confidence.observe(confidence)

    def set_model(self, name: str, version: str) -> None:
        self.model_info.clear()
        self.model_info.labels(name, version).set(1)
