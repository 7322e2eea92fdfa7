"""Liveness and readiness on both ports; metrics on the API's."""

import httpx
import pytest
from django.test import Client
from django.utils import timezone
from django_q.models import Schedule
from prometheus_client.parser import text_string_to_metric_families

from batches import engines
from batches.models import Heartbeat
from batches.pipeline import heartbeats
from batches.pipeline.reconcile import reconcile
from tests.factories import make_batch


@pytest.fixture(params=["api", "viewer"])
def port_client(request, settings):
    if request.param == "api":
        settings.ROOT_URLCONF = settings.API_URLCONF
    return Client()


def test_healthz_answers_on_both_ports_without_a_database(port_client):
    response = port_client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_needs_the_database_the_control_cluster_and_a_loaded_engine(port_client, db):
    response = port_client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {
        "database": "ok",
        "control": "no recent heartbeat",
        "engine": "no worker with a loaded model",
    }
    reconcile()  # a control worker beats
    engines._loaded.clear()
    heartbeats.engine_beat()  # an engine worker still loading its model
    assert port_client.get("/readyz").json()["checks"]["engine"] == "no worker with a loaded model"
    engines.get_engine("tiny-chat")
    heartbeats.engine_beat()
    response = port_client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["engine"] == "ok (1 worker(s), tiny-chat)"
    Heartbeat.objects.update(beat_at=timezone.now() - heartbeats.STALE)
    assert port_client.get("/readyz").status_code == 503


def test_no_heartbeat_schedule_is_left_on_the_engine_cluster(db):
    """Engine workers beat from a thread and load their model at start
    (tests/operations/test_workers.py); the old once-a-minute schedule is gone."""
    assert not Schedule.objects.filter(name="batchserver: engine heartbeat").exists()
    assert not Schedule.objects.filter(cluster="engine").exists()


@pytest.fixture
def api_client(settings):
    settings.ROOT_URLCONF = settings.API_URLCONF
    return Client()


def test_metrics_are_prometheus_text_from_the_database(api_client, owner):
    make_batch(owner, count=3)
    text = api_client.get("/metrics").content.decode()
    assert 'batchserver_requests{status="completed"} 3.0' in text
    assert 'batchserver_tokens{kind="output"}' in text
    assert 'batchserver_batches{status="completed"} 1.0' in text
    assert 'batchserver_queue_depth{kind="pending_chunks"} 0.0' in text
    assert "batchserver_chunk_duration_seconds_bucket" in text
    assert "batchserver_batch_duration_seconds_count" in text
    assert "batchserver_engine_throughput_requests_per_second" in text


def http_responses(client, **labels) -> float:
    """The counter batchserver_http_requests_total for these labels, as scraped."""
    text = client.get("/metrics").content.decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "batchserver_http_requests_total" and sample.labels == labels:
                return sample.value
    return 0.0


def test_metrics_count_api_responses_by_route_and_status(api_client, alice_key):
    models = {"method": "GET", "route": "v1/models", "status": "401"}
    missing = {"method": "GET", "route": "v1/files/<str:file_id>", "status": "404"}
    before = http_responses(api_client, **models), http_responses(api_client, **missing)
    for _ in range(3):
        api_client.get("/v1/models")
    api_client.get("/v1/files/file-nope", headers={"Authorization": f"Bearer {alice_key}"})
    api_client.get("/not/a/route")
    after = http_responses(api_client, **models), http_responses(api_client, **missing)
    assert after == (before[0] + 3, before[1] + 1)
    assert http_responses(api_client, method="GET", route="unmatched", status="404") >= 1
    text = api_client.get("/metrics").content.decode()
    assert 'batchserver_http_request_duration_seconds_count{route="v1/models"}' in text


def test_viewer_responses_are_not_counted(client, settings, db):
    healthz = {"method": "GET", "route": "healthz", "status": "200"}
    viewer_urlconf = settings.ROOT_URLCONF
    settings.ROOT_URLCONF = settings.API_URLCONF
    before = http_responses(Client(), **healthz)
    settings.ROOT_URLCONF = viewer_urlconf
    assert client.get("/healthz").status_code == 200
    settings.ROOT_URLCONF = settings.API_URLCONF
    assert http_responses(Client(), **healthz) == before


def test_metrics_can_require_a_token(api_client, settings, db):
    settings.METRICS_TOKEN = "scrape-me"
    assert api_client.get("/metrics").status_code == 401
    response = api_client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert response.status_code == 200


def test_the_viewer_port_does_not_serve_metrics(client, db):
    assert client.get("/metrics").status_code == 404


def test_probes_are_exempt_from_the_https_redirect(settings, db):
    settings.SECURE_SSL_REDIRECT = True
    client = Client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/admin/login/").status_code == 301


def test_serve_exposes_health_on_both_ports(live_server):
    assert httpx.get(f"{live_server.url}/healthz").json() == {"status": "ok"}
