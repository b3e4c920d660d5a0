"""Prometheus metrics over HTTP, for IoT Edge's metrics collector module (or any scraper).

Read at scrape time from the module's own ``Metrics`` and model info, so nothing here sits on
the frame path and a counter added anywhere in the module appears without changes here.
Follows IoT Edge's custom-metrics conventions: names start with the module's name
(``classifier_``); every series carries ``iothub``, ``edge_device``, ``module_name`` (from the
IoT Edge environment) and ``instance_number`` (new at every start, as edgeHub and edgeAgent
do, so restarts and counter resets line up). Latencies are histograms in seconds.

Counter names map as ``frames_scored`` -> ``classifier_frames_scored_total`` and
``frames_failed.<code>`` -> ``classifier_frames_failed_total{code="<code>"}``.

Settings: ``METRICS_PORT`` (unset: no endpoint; the images set 9600, IoT Edge's metrics port)
and ``METRICS_HOST`` (default 127.0.0.1; the images set 0.0.0.0 so other modules on the
IoT Edge network can scrape it, while no port is published on the host).
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from classifier.errors import ConfigError
from classifier.metrics import HistogramExport, Metrics
from classifier.predictions import ModelInfo

__all__ = [
    "ClassifierCollector",
    "IdentityLabels",
    "MetricsEndpoint",
    "MetricsEndpointConfig",
]

log = logging.getLogger(__name__)

PREFIX = "classifier"
# Counters exported at 0 before their first event, so rate() and alerts work from the start.
KNOWN_COUNTERS = {
    "messages_received": "Messages received on the frames input",
    "messages_unknown_input": "Messages received on an input the module does not read",
    "frames_received": "Frames accepted for scoring (a message may hold several)",
    "frames_scored": "Frames scored and sent as predictions",
    "frames_dropped": "Frames dropped by the queue's overflow policy",
    "batches": "Inference calls",
    "emit_failures": "Outcomes that could not be sent to edgeHub",
    "model_swaps": "Models swapped in while running",
    "model_rollbacks": "Model swaps rolled back",
}
# Counters with a per-code breakdown (``name.<code>``): declared even before any code occurs.
KNOWN_CODED_COUNTERS = {
    "frames_failed": "Frames refused or not scored, by error code",
    "model_update_failures": "Model updates that failed, by error code",
    "captures": "Frames captured for labelling and written to storage, by policy (code)",
    "captures_dropped": "Frames a capture policy chose but never stored, by policy (code)",
}
# Per-frame stages share one histogram family; other histograms get their own.
FRAME_STAGES = ("queue", "decode", "preprocess", "total")
# Every 4th bound of Metrics' 1.25x buckets (x2.44 apart, 0.05 ms .. 80 s): few series per
# histogram for an uplink that pays per message, each bound exact in the source buckets.
_BUCKET_STRIDE = 4
_SIZE_BOUNDS = tuple(2**i for i in range(11))  # 1 .. 1024 frames
_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")


@dataclass(frozen=True)
class MetricsEndpointConfig:
    port: int | None  # None: no endpoint
    host: str = "127.0.0.1"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MetricsEndpointConfig:
        raw_port = (env.get("METRICS_PORT") or "").strip()
        host = (env.get("METRICS_HOST") or "").strip() or cls.host
        if not raw_port:
            return cls(None, host)
        try:
            port = int(raw_port)
        except ValueError:
            port = -1
        if not 1 <= port <= 65535:
            raise ConfigError(
                f"invalid configuration: METRICS_PORT={raw_port!r}: expected a port 1-65535 "
                "(unset for no metrics endpoint)"
            )
        return cls(port, host)


@dataclass(frozen=True)
class IdentityLabels:
    """Labels every series carries, from the environment IoT Edge gives the module."""

    iothub: str
    edge_device: str
    module_name: str
    instance_number: str

    @classmethod
    def from_env(cls, env: Mapping[str, str], instance: str | None = None) -> IdentityLabels:
        # Outside IoT Edge (development) the connection string names the same identity.
        fields = dict(
            part.split("=", 1)
            for part in (env.get("EdgeHubConnectionString") or "").split(";")
            if "=" in part
        )
        return cls(
            iothub=env.get("IOTEDGE_IOTHUBHOSTNAME") or fields.get("HostName", ""),
            edge_device=env.get("IOTEDGE_DEVICEID") or fields.get("DeviceId", ""),
            module_name=env.get("IOTEDGE_MODULEID") or fields.get("ModuleId", PREFIX),
            instance_number=instance or str(uuid.uuid4()),
        )

    def names(self) -> list[str]:
        return ["iothub", "edge_device", "module_name", "instance_number"]

    def values(self) -> list[str]:
        return [self.iothub, self.edge_device, self.module_name, self.instance_number]


class ClassifierCollector(Collector):
    """Builds every family from the module's state when scraped."""

    def __init__(
        self,
        metrics: Metrics,
        model_info: Callable[[], ModelInfo],
        queue_depth: Callable[[], int],
        labels: IdentityLabels,
        started_s: float | None = None,
    ) -> None:
        self.metrics = metrics
        self.model_info = model_info
        self.queue_depth = queue_depth
        self.labels = labels
        self.started_s = time.time() if started_s is None else started_s

    def describe(self) -> Iterable[Metric]:
        return []  # nothing to check at registration; collect() runs only when scraped

    def collect(self) -> Iterable[Metric]:
        export = self.metrics.export()
        yield from self._counters(export.counters)
        yield from self._gauges()
        yield from self._latencies(export.histograms)
        for name, sizes in sorted(export.sizes.items()):
            yield self._size_histogram(name, sizes)

    def _counters(self, counters: Mapping[str, int]) -> Iterable[Metric]:
        plain: dict[str, int] = dict.fromkeys(KNOWN_COUNTERS, 0)
        coded: dict[str, dict[str, int]] = {name: {} for name in KNOWN_CODED_COUNTERS}
        for key, value in counters.items():
            name, _, code = key.partition(".")
            if code:
                coded.setdefault(name, {})[code] = value
            else:
                plain[name] = value
        names, values = self.labels.names(), self.labels.values()
        for name, value in sorted(plain.items()):
            family = CounterMetricFamily(
                _metric_name(name), KNOWN_COUNTERS.get(name, f"Count of {name}"), labels=names
            )
            family.add_metric(values, value)
            yield family
        for name, by_code in sorted(coded.items()):
            help_text = KNOWN_CODED_COUNTERS.get(name, f"Count of {name}, by code")
            family = CounterMetricFamily(_metric_name(name), help_text, labels=[*names, "code"])
            for code, value in sorted(by_code.items()):
                family.add_metric([*values, code], value)
            yield family

    def _gauges(self) -> Iterable[Metric]:
        names, values = self.labels.names(), self.labels.values()
        depth = GaugeMetricFamily(
            f"{PREFIX}_queue_depth", "Frames waiting to be scored", labels=names
        )
        depth.add_metric(values, self.queue_depth())
        yield depth
        info = self.model_info()
        model = GaugeMetricFamily(
            f"{PREFIX}_model_info",
            "The model in use (always 1; the labels say which, and on which provider)",
            labels=[*names, "model_name", "model_version", "model_sha256", "provider"],
        )
        model.add_metric([*values, info.name, info.version, info.sha256, info.provider], 1)
        yield model
        started = GaugeMetricFamily(
            f"{PREFIX}_start_time_seconds", "When this instance started (Unix time)", labels=names
        )
        started.add_metric(values, self.started_s)
        yield started

    def _latencies(self, histograms: Mapping[str, HistogramExport]) -> Iterable[Metric]:
        names, values = self.labels.names(), self.labels.values()
        stages = HistogramMetricFamily(
            f"{PREFIX}_frame_stage_duration_seconds",
            "Time per frame in each pipeline stage (total: received to scored)",
            labels=[*names, "stage"],
        )
        for stage in FRAME_STAGES:
            if stage in histograms:
                buckets, total_s = _buckets(histograms[stage])
                stages.add_metric([*values, stage], buckets, total_s)
        yield stages
        for name, histogram in sorted(histograms.items()):
            if name in FRAME_STAGES:
                continue
            family = HistogramMetricFamily(
                f"{_metric_name(name)}_duration_seconds", f"Duration of {name}", labels=names
            )
            buckets, total_s = _buckets(histogram)
            family.add_metric(values, buckets, total_s)
            yield family

    def _size_histogram(self, name: str, sizes: Mapping[int, int]) -> Metric:
        family = HistogramMetricFamily(
            _metric_name(name), f"Distribution of {name} (frames per inference call)",
            labels=self.labels.names(),
        )  # fmt: skip
        buckets = []
        for bound in _SIZE_BOUNDS:
            cumulative = sum(n for size, n in sizes.items() if size <= bound)
            buckets.append((str(float(bound)), float(cumulative)))
        buckets.append(("+Inf", float(sum(sizes.values()))))
        total = float(sum(size * n for size, n in sizes.items()))
        family.add_metric(self.labels.values(), buckets, total)
        return family


def _metric_name(name: str) -> str:
    return f"{PREFIX}_{_NAME_UNSAFE.sub('_', name)}"


def _buckets(histogram: HistogramExport) -> tuple[list[tuple[str, float]], float]:
    """Cumulative Prometheus buckets (seconds) at every ``_BUCKET_STRIDE``-th source bound."""
    buckets = []
    for i in range(0, len(histogram.bounds_ms), _BUCKET_STRIDE):
        le_s = histogram.bounds_ms[i] / 1000
        buckets.append((f"{le_s:.6g}", float(sum(histogram.counts[: i + 1]))))
    buckets.append(("+Inf", float(histogram.total)))
    return buckets, histogram.sum_ms / 1000


class MetricsEndpoint:
    """The HTTP server (prometheus-client's, on a daemon thread) serving one collector."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self.server = server
        self.thread = thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    @classmethod
    def start(
        cls, config: MetricsEndpointConfig, collector: ClassifierCollector
    ) -> MetricsEndpoint | None:
        """Serves ``/metrics``; None when switched off or the port cannot be had.

        A metrics endpoint is worth less than the stream it observes: a taken port is logged
        as an error and the module goes on scoring without it.
        """
        if config.port is None:
            return None
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        try:
            server, thread = start_http_server(config.port, config.host, registry)
        except OSError as e:
            log.error("metrics endpoint not started on %s:%s: %s", config.host, config.port, e)
            return None
        log.info("Prometheus metrics on http://%s:%d/metrics", config.host, config.port)
        return cls(server, thread)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
