"""Gauges read from the running services when /metrics is scraped: images per collection and
queries waiting per batcher (the counters themselves live in search_by_image/metrics.py)."""

from __future__ import annotations

import weakref
from collections.abc import Iterator

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from search_by_image.serving.service import SearchService


class _Collections(Collector):
    """Images per collection and queries waiting per batcher, from every running service."""

    def __init__(self) -> None:
        self.services: weakref.WeakSet[SearchService] = weakref.WeakSet()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        images = GaugeMetricFamily(
            "sbi_collection_images", "Images in a collection's served index", labels=["collection"]
        )
        waiting = GaugeMetricFamily(
            "sbi_batcher_queue_depth", "Queries waiting for the model, by model", labels=["model"]
        )
        for service in list(self.services):
            for name, collection in service.collections.items():
                snapshot = collection.snapshot
                images.add_metric([name], len(snapshot.store) if snapshot else 0)
            for spec, (_, batcher) in service.embedders.loaded().items():
                waiting.add_metric([spec.model], batcher.queue_depth)
        yield images
        yield waiting


_collections = _Collections()
REGISTRY.register(_collections)


def watch_service(service: SearchService) -> None:
    """Report `service`'s collections and batchers for as long as it lives."""
    _collections.services.add(service)


def forget_service(service: SearchService) -> None:
    _collections.services.discard(service)
