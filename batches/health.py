"""Liveness, readiness and Prometheus metrics, for both ports.

/healthz answers while the process runs. /readyz answers 200 when the database
answers and a live control worker and a live engine worker holding a model have
beaten lately (batches.pipeline.heartbeats: every 10 s; a process of this host
that is gone stops counting at once); 503 otherwise, with what failed, logged
as a warning.
/metrics reads the batch figures from the database at scrape time, so every
process reports the same numbers. The API's HTTP responses are counted in each
worker process; under gunicorn, prometheus_client's multiprocess mode sums the
workers' counts (deploy/gunicorn/api.py sets its directory up).
"""

import hmac
import os
import time
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, F, Q, Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.log import log_response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

from batches.models import Batch, Chunk, WebhookDelivery
from batches.pipeline import heartbeats

CHUNK_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)
BATCH_BUCKETS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600)
HTTP_METHODS = {"GET", "HEAD", "POST", "DELETE", "OPTIONS", "PUT", "PATCH"}

# Not in prometheus_client's global registry: /metrics builds its own per scrape.
# Labels are bounded: a route is a URL pattern ("v1/files/<str:file_id>"), never a path.
HTTP_REQUESTS = Counter(
    "batchserver_http_requests",
    "API responses by method, route and status code.",
    ["method", "route", "status"],
    registry=None,
)
HTTP_DURATION = Histogram(
    "batchserver_http_request_duration_seconds",
    "API time to the response's headers (a streamed body is not counted), by route.",
    ["route"],
    registry=None,
)


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as error:
        checks["database"] = f"unreachable: {type(error).__name__}"
        response = JsonResponse({"status": "unready", "checks": checks}, status=503)
        log_response(
            "Not ready: database %s",
            checks["database"],
            response=response,
            request=request,
            level="warning",
        )
        return response
    checks["control"] = "ok" if heartbeats.control_alive() else "no recent heartbeat"
    engines_up = heartbeats.engine_models()
    checks["engine"] = (
        f"ok ({len(engines_up)} worker(s), {', '.join(sorted(set(engines_up)))})"
        if engines_up
        else "no worker with a loaded model"
    )
    ready = all(value.startswith("ok") for value in checks.values())
    response = JsonResponse(
        {"status": "ready" if ready else "unready", "checks": checks}, status=200 if ready else 503
    )
    if not ready:
        # A state, not a fault (a worker starting or loading its model): one
        # WARNING line, where Django would log any 503 at ERROR.
        log_response(
            "Not ready: %s",
            ", ".join(f"{name} {value}" for name, value in checks.items() if value != "ok"),
            response=response,
            request=request,
            level="warning",
        )
    return response


def metrics(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    sent = request.headers.get("Authorization", "")
    # Constant time, like API keys: the comparison must not tell how much of a guess matched.
    if token and not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        return HttpResponse(
            "metrics need the bearer token\n", status=401, content_type="text/plain"
        )
    registry = CollectorRegistry()
    registry.register(DatabaseCollector())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client.multiprocess import MultiProcessCollector

        MultiProcessCollector(registry)
    else:
        registry.register(HTTP_REQUESTS)
        registry.register(HTTP_DURATION)
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class ApiMetricsMiddleware:
    """Counts every API response, whatever answered it (a view, a redirect, an
    error page), for /metrics. The viewer's responses are not counted."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        # The URLconf Django resolved with: the request's own (the API's WSGI
        # entry point sets it), else ROOT_URLCONF.
        if getattr(request, "urlconf", settings.ROOT_URLCONF) == settings.API_URLCONF:
            match = request.resolver_match
            route = match.route if match else "unmatched"
            method = request.method if request.method in HTTP_METHODS else "other"
            HTTP_REQUESTS.labels(method, route, str(response.status_code)).inc()
            HTTP_DURATION.labels(route).observe(time.perf_counter() - started)
        return response


class DatabaseCollector:
    """Metrics computed from the database at each scrape."""

    def collect(self):
        now = timezone.now()
        totals = Batch.objects.aggregate(
            completed=Sum("completed_requests"),
            failed=Sum("failed_requests"),
            input=Sum("input_tokens"),
            output=Sum("output_tokens"),
            cached=Sum("cached_tokens"),
        )
        running = Batch.objects.filter(
            status__in=[Batch.Status.IN_PROGRESS, Batch.Status.FINALIZING]
        ).aggregate(
            pending=Sum(F("total_requests") - F("completed_requests") - F("failed_requests"))
        )

        requests = GaugeMetricFamily(
            "batchserver_requests", "Batch requests by status.", labels=["status"]
        )
        requests.add_metric(["completed"], totals["completed"] or 0)
        requests.add_metric(["failed"], totals["failed"] or 0)
        requests.add_metric(["pending"], running["pending"] or 0)
        yield requests

        tokens = GaugeMetricFamily("batchserver_tokens", "Tokens processed.", labels=["kind"])
        for kind in ("input", "output", "cached"):
            tokens.add_metric([kind], totals[kind] or 0)
        yield tokens

        batches = GaugeMetricFamily("batchserver_batches", "Batches by status.", labels=["status"])
        counts = dict(Batch.objects.values_list("status").annotate(n=Count("pk")).order_by())
        for status in Batch.Status.values:
            batches.add_metric([status], counts.get(status, 0))
        yield batches

        queue = GaugeMetricFamily(
            "batchserver_queue_depth", "Work waiting and running.", labels=["kind"]
        )
        chunk_counts = Chunk.objects.filter(status__in=Chunk.OPEN_STATUSES).aggregate(
            pending=Count("pk", filter=Q(status=Chunk.Status.PENDING)),
            running=Count("pk", filter=Q(status=Chunk.Status.RUNNING)),
        )
        queue.add_metric(["pending_chunks"], chunk_counts["pending"])
        queue.add_metric(["running_chunks"], chunk_counts["running"])
        queue.add_metric(["pending_requests"], running["pending"] or 0)
        queue.add_metric(
            ["pending_webhooks"],
            WebhookDelivery.objects.filter(
                delivered_at__isnull=True, next_attempt_at__isnull=False
            ).count(),
        )
        yield queue

        recent = Chunk.objects.filter(
            status=Chunk.Status.DONE, finished_at__gte=now - timedelta(hours=1)
        ).values_list("started_at", "finished_at", "size")
        durations, finished_lately = [], 0
        for started_at, finished_at, size in recent:
            durations.append((finished_at - started_at).total_seconds())
            if finished_at >= now - timedelta(minutes=5):
                finished_lately += size
        yield _histogram(
            "batchserver_chunk_duration_seconds",
            "Chunk run time, chunks finished in the last hour.",
            durations,
            CHUNK_BUCKETS,
        )
        yield _histogram(
            "batchserver_batch_duration_seconds",
            "Creation to completion, batches completed in the last 24 hours.",
            [
                (completed - created).total_seconds()
                for created, completed in Batch.objects.filter(
                    completed_at__gte=now - timedelta(hours=24)
                ).values_list("created_at", "completed_at")
            ],
            BATCH_BUCKETS,
        )
        throughput = GaugeMetricFamily(
            "batchserver_engine_throughput_requests_per_second",
            "Requests finished by the engines per second, over the last five minutes.",
        )
        throughput.add_metric([], finished_lately / 300)
        yield throughput


def _histogram(
    name: str, documentation: str, values: list[float], buckets
) -> HistogramMetricFamily:
    counts = [sum(1 for v in values if v <= bound) for bound in buckets]
    family = HistogramMetricFamily(name, documentation)
    family.add_metric(
        [],
        [(str(bound), count) for bound, count in zip(buckets, counts, strict=True)]
        + [("+Inf", len(values))],
        sum_value=sum(values),
    )
    return family
