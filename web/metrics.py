"""Prometheus metrics at /metrics, with prometheus-client (its exposition format, its process collector).

Per app, a registry of its own (so that apps in one process never share counts). Requests are timed where the
request log is written (web/app.py), by endpoint (the route, never the URL: no query text or id in a label) and
search mode; everything else is read from the knowledge base when Prometheus scrapes. Labels stay bounded: the
endpoints, the modes, confident or not.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterator

from flask import Flask, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from web.loading import Loading

BUCKETS = (0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24)
WRITES = ("documents.add_document", "documents.delete_document")
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")


class Metrics:
    def __init__(self, app: Flask) -> None:
        self.app = app
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Histogram("kb_request_duration_seconds", "Requests answered, by endpoint and search mode.",
                                  ["endpoint", "method", "mode"], buckets=BUCKETS, registry=self.registry)
        self.searches = Counter("kb_searches", "Searches answered, by whether a passage answered confidently.",
                                ["confident"], registry=self.registry)
        self.writes = Histogram("kb_write_duration_seconds", "Document writes (add, upload, delete), acknowledged.",
                                buckets=BUCKETS, registry=self.registry)
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes, CPU seconds, open files
        self.registry.register(_KnowledgeBase(app))

    def observe(self, seconds: float, status: int) -> None:
        """One answered request (from web/app.py's after_request)."""
        endpoint = request.endpoint or "unmatched"
        method = request.method if request.method in METHODS else "other"  # a client may send any token
        mode = g.get("search_mode") or ""
        self.requests.labels(endpoint, method, mode).observe(seconds)
        if endpoint in WRITES and status < 300:
            self.writes.observe(seconds)
        confident = g.get("search_confident")
        if confident is not None:
            self.searches.labels("true" if confident else "false").inc()


class _KnowledgeBase(Collector):
    """What the knowledge base knows at scrape time: its size, the cache, writes waiting, the sync, its store."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[Any]:
        base = self.app.extensions.get("kb")
        ready = GaugeMetricFamily("kb_ready", "1 once the model and the index are loaded, 0 while loading or failed.")
        ready.add_metric([], 0 if isinstance(base, Loading) or base is None else 1)
        yield ready
        if isinstance(base, Loading) or base is None:
            return
        documents, passages = base.counts()
        yield GaugeMetricFamily("kb_documents", "Documents in the knowledge base.", value=documents)
        yield GaugeMetricFamily("kb_passages", "Passages indexed.", value=passages)
        searcher = base.searcher.current()
        yield CounterMetricFamily("kb_answer_cache_hits", "Answers served from the answer cache.",
                                  value=searcher.cache_hits)
        yield CounterMetricFamily("kb_answers", "Answers given by the search pipeline (cache hits included).",
                                  value=searcher.answered)
        if base.serving:
            yield GaugeMetricFamily("kb_write_queue", "Writes waiting for the writer.", value=base.library.queued)
        if base.watching is not None and base.watching.state.last_sync:
            at = datetime.strptime(base.watching.state.last_sync, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
            yield GaugeMetricFamily("kb_last_sync_timestamp_seconds", "When the folder watch's last sync ended.",
                                    value=at.timestamp())
        families: dict[str, GaugeMetricFamily] = {}
        for name, labels, value in base.store.facts():
            if name not in families:
                families[name] = GaugeMetricFamily(f"kb_{name}", _HELP.get(name, name), labels=sorted(labels))
            families[name].add_metric([labels[key] for key in sorted(labels)], value)
        yield from families.values()


_HELP = {
    "index_age_seconds": "Seconds since the index last changed (a write, a sync or a build).",
    "pg_pool_connections": "PostgreSQL connections open in the pool.",
    "pg_pool_in_use": "PostgreSQL connections of the pool in use.",
    "pg_replica_lag_seconds": "How far the standby that reads go to is behind the primary (replay lag).",
}
