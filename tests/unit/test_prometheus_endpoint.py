"""The classifier's Prometheus endpoint: scraped over real HTTP on loopback, parsed with
prometheus-client's own text parser."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from classifier.errors import ConfigError
from classifier.metrics import Metrics
from classifier.predictions import ModelInfo
from classifier.prometheus_endpoint import (
    ClassifierCollector,
    IdentityLabels,
    MetricsEndpoint,
    MetricsEndpointConfig,
)

LABELS = IdentityLabels("hub.azure-devices.net", "edge-1", "classifier", "instance-a")
IDENTITY = {
    "iothub": "hub.azure-devices.net",
    "edge_device": "edge-1",
    "module_name": "classifier",
    "instance_number": "instance-a",
}


class Model:
    """Stands in for the pipeline's current model reference, which a hot swap replaces."""

    info = ModelInfo("seed-cnn", "1", "ab" * 32, "CPUExecutionProvider")


@pytest.fixture(scope="module")
def collector() -> ClassifierCollector:
    return ClassifierCollector(Metrics(), lambda: Model.info, lambda: 5, LABELS, 1700000000.0)


@pytest.fixture(scope="module")
def endpoint(collector: ClassifierCollector) -> Iterator[MetricsEndpoint]:
    # One server for the module: stopping one waits out its half-second poll.
    started = MetricsEndpoint.start(MetricsEndpointConfig(port=0, host="127.0.0.1"), collector)
    assert started is not None
    yield started
    started.stop()


@pytest.fixture
def metrics(collector: ClassifierCollector) -> Metrics:
    collector.metrics = Metrics()
    return collector.metrics


def scrape(endpoint: MetricsEndpoint) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    url = f"http://127.0.0.1:{endpoint.port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        family.name: [(s.name, s.labels, s.value) for s in family.samples]
        for family in text_string_to_metric_families(text)
    }


def value(families, family: str, sample: str, **labels: str) -> float:
    for name, sample_labels, number in families[family]:
        if name == sample and all(sample_labels.get(k) == v for k, v in labels.items()):
            return float(number)
    raise AssertionError(f"no {sample} {labels} in {families[family]}")


def test_every_series_is_prefixed_and_carries_the_iot_edge_identity_labels(endpoint, metrics):
    metrics.count("frames_scored")
    metrics.observe("decode", 2.0)
    families = scrape(endpoint)
    assert families and all(name.startswith("classifier_") for name in families)
    for samples in families.values():
        for _, labels, _ in samples:
            assert {k: labels[k] for k in IDENTITY} == IDENTITY


def test_counters_move_as_frames_flow(endpoint, metrics):
    before = value(scrape(endpoint), "classifier_frames_scored", "classifier_frames_scored_total")
    metrics.count("frames_received", 3)
    metrics.count("frames_scored", 2)
    after = scrape(endpoint)
    assert before == 0.0
    assert value(after, "classifier_frames_scored", "classifier_frames_scored_total") == 2.0
    assert value(after, "classifier_frames_received", "classifier_frames_received_total") == 3.0


def test_failure_codes_become_a_label(endpoint, metrics):
    metrics.count("frames_failed.corrupt_image", 2)
    metrics.count("frames_failed.dropped_queue_full")
    metrics.count("model_update_failures.bad_checksum")
    families = scrape(endpoint)
    family = "classifier_frames_failed"
    assert value(families, family, f"{family}_total", code="corrupt_image") == 2.0
    assert value(families, family, f"{family}_total", code="dropped_queue_full") == 1.0
    updates = "classifier_model_update_failures"
    assert value(families, updates, f"{updates}_total", code="bad_checksum") == 1.0


def test_counters_added_later_appear_without_changes(endpoint, metrics):
    metrics.count("model_swaps")
    metrics.count("brand_new_thing", 4)
    families = scrape(endpoint)
    assert value(families, "classifier_model_swaps", "classifier_model_swaps_total") == 1.0
    assert value(families, "classifier_brand_new_thing", "classifier_brand_new_thing_total") == 4.0
    assert value(families, "classifier_model_rollbacks", "classifier_model_rollbacks_total") == 0.0


def test_model_info_and_queue_depth_are_read_at_scrape_time(endpoint, monkeypatch):
    first = scrape(endpoint)
    monkeypatch.setattr(
        Model, "info", replace(Model.info, version="2", provider="CUDAExecutionProvider")
    )
    second = scrape(endpoint)
    info = "classifier_model_info"
    assert value(first, info, info, model_version="1", provider="CPUExecutionProvider") == 1.0
    assert value(second, info, info, model_version="2", provider="CUDAExecutionProvider") == 1.0
    assert value(second, "classifier_queue_depth", "classifier_queue_depth") == 5.0


def test_stage_latencies_are_cumulative_histograms_in_seconds(endpoint, metrics):
    for ms in (0.5, 3.0, 3.0, 40.0):
        metrics.observe("decode", ms)
    metrics.observe("inference_batch", 12.0)
    families = scrape(endpoint)
    family = "classifier_frame_stage_duration_seconds"
    buckets = [
        (float(labels["le"]), number)
        for name, labels, number in families[family]
        if name.endswith("_bucket") and labels["stage"] == "decode"
    ]
    counts = [number for _, number in buckets]
    assert counts == sorted(counts) and buckets[-1] == (float("inf"), 4.0)
    at_10ms = max(n for le, n in buckets if le <= 0.010)
    assert at_10ms == 3.0
    assert value(families, family, f"{family}_sum", stage="decode") == pytest.approx(0.0465)
    batch = "classifier_inference_batch_duration_seconds"
    assert value(families, batch, f"{batch}_count") == 1.0


def test_batch_sizes_are_a_histogram_of_frames_per_inference_call(endpoint, metrics):
    for size in (1, 8, 8, 3):
        metrics.observe_size("batch_size", size)
    families = scrape(endpoint)
    family = "classifier_batch_size"
    assert value(families, family, f"{family}_bucket", le="1.0") == 1.0
    assert value(families, family, f"{family}_bucket", le="4.0") == 2.0
    assert value(families, family, f"{family}_bucket", le="8.0") == 4.0
    assert value(families, family, f"{family}_sum") == 20.0


def test_a_taken_port_leaves_the_module_running_without_an_endpoint(endpoint, metrics, caplog):
    collector = ClassifierCollector(metrics, lambda: Model.info, lambda: 0, LABELS)
    config = MetricsEndpointConfig(port=endpoint.port, host="127.0.0.1")
    assert MetricsEndpoint.start(config, collector) is None
    assert "metrics endpoint not started" in caplog.text


def test_the_endpoint_is_off_unless_a_port_is_set():
    assert MetricsEndpointConfig.from_env({}) == MetricsEndpointConfig(None, "127.0.0.1")
    config = MetricsEndpointConfig.from_env({"METRICS_PORT": "9600", "METRICS_HOST": "0.0.0.0"})
    assert config == MetricsEndpointConfig(9600, "0.0.0.0")
    assert MetricsEndpoint.start(MetricsEndpointConfig(None), None) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("port", ["http", "0", "65536", "-1"])
def test_a_bad_port_is_refused_by_name(port):
    with pytest.raises(ConfigError, match=f"METRICS_PORT='{port}'"):
        MetricsEndpointConfig.from_env({"METRICS_PORT": port})


def test_identity_comes_from_iot_edge_or_the_development_connection_string():
    edge = IdentityLabels.from_env(
        {"IOTEDGE_IOTHUBHOSTNAME": "h.net", "IOTEDGE_DEVICEID": "d", "IOTEDGE_MODULEID": "m"}
    )
    dev = IdentityLabels.from_env(
        {
            "EdgeHubConnectionString": "HostName=h2;GatewayHostName=g;DeviceId=d2;ModuleId=m2;SharedAccessKey=k"
        }
    )
    assert (edge.iothub, edge.edge_device, edge.module_name) == ("h.net", "d", "m")
    assert (dev.iothub, dev.edge_device, dev.module_name) == ("h2", "d2", "m2")
    assert edge.instance_number != IdentityLabels.from_env({}).instance_number


def test_captures_and_their_drops_are_counted_per_policy(endpoint, metrics):
    metrics.count("captures.low_confidence", 3)
    metrics.count("captures_dropped.random")
    families = scrape(endpoint)
    captures, dropped = "classifier_captures", "classifier_captures_dropped"
    assert value(families, captures, f"{captures}_total", code="low_confidence") == 3.0
    assert value(families, dropped, f"{dropped}_total", code="random") == 1.0
