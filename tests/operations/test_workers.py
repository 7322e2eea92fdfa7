"""What each worker process does beside its tasks: beats, dead workers' chunks,
the model at start, handing a chunk back when its cluster stops."""

import logging
import os
import signal
import socket
import subprocess
import sys
from datetime import timedelta

import psutil
import pytest
from django.test import Client
from django.utils import timezone
from django_q.models import OrmQ

from batches import engines
from batches.models import Batch, Chunk, Heartbeat, Request
from batches.pipeline import execution, heartbeats, workers
from batches.pipeline.reconcile import recover_lapsed_chunks
from tests.factories import chat_requests, ingest
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
HOST = socket.gethostname()


def gone_pid() -> int:
    """The pid of a process of this host that has exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def readyz(settings):
    settings.ROOT_URLCONF = settings.API_URLCONF
    return lambda: Client().get("/readyz")


@pytest.fixture
def running_chunk(alice, settings):
    """A chunk some worker claimed; set its holder with `hold`."""
    settings.CHUNK_SIZE = 10
    batch = ingest(alice, chat_requests(10))
    chunk = Chunk.objects.get(batch=batch)
    OrmQ.objects.all().delete()

    def hold(holder: str, *, lease: float = 600, started: float = 0) -> Chunk:
        now = timezone.now()
        Chunk.objects.filter(pk=chunk.pk).update(
            status=Chunk.Status.RUNNING,
            leased_by=holder,
            lease_expires_at=now + timedelta(seconds=lease),
            started_at=now - timedelta(seconds=started),
        )
        return chunk

    return hold


def test_a_dead_workers_chunk_is_released_at_once_not_when_its_lease_lapses(running_chunk):
    chunk = running_chunk(f"{HOST}:{gone_pid()}", lease=600)
    assert recover_lapsed_chunks() == 1
    chunk.refresh_from_db()
    assert (chunk.status, chunk.leased_by, chunk.lease_expires_at) == ("pending", "", None)
    assert OrmQ.objects.filter(key="engine").count() == 1  # a turn to run it


def test_a_live_holders_chunk_is_kept(running_chunk):
    running_chunk(heartbeats.worker_id(), lease=600)  # this very process
    assert recover_lapsed_chunks() == 0


def test_a_pid_reused_by_a_newer_process_is_not_the_holder(running_chunk):
    # This process's pid, but the chunk was claimed before this process started.
    started = timezone.now().timestamp() - psutil.Process().create_time() + 60
    running_chunk(heartbeats.worker_id(), lease=600, started=started)
    assert recover_lapsed_chunks() == 1


def test_another_hosts_holder_keeps_its_chunk_until_its_lease_lapses(running_chunk):
    running_chunk("elsewhere:123", lease=600)
    assert recover_lapsed_chunks() == 0
    running_chunk("elsewhere:123", lease=-1)
    assert recover_lapsed_chunks() == 1


def test_a_worker_renews_the_leases_it_holds_and_no_other(running_chunk, settings):
    settings.CHUNK_LEASE_SECONDS = 30
    chunk = running_chunk(heartbeats.worker_id(), lease=1)
    assert execution.leases_renew() == 1
    chunk.refresh_from_db()
    assert chunk.lease_expires_at > timezone.now() + timedelta(seconds=25)
    running_chunk("elsewhere:123", lease=1)
    assert execution.leases_renew() == 0


def test_the_lease_is_short_by_default():
    from batchserver import settings as defaults

    assert defaults.CHUNK_LEASE_SECONDS <= 45


@pytest.fixture
def worker(monkeypatch):
    """`workers.start` as a worker process runs it, undone at the end."""
    previous = signal.getsignal(workers.HAND_BACK_SIGNAL)
    monkeypatch.setattr(heartbeats, "BEAT_SECONDS", 0.05)
    stops = []

    def start(*, engine: bool):
        stops.append(workers.start(engine=engine))

    yield start
    for stop in stops:
        stop()
    signal.signal(workers.HAND_BACK_SIGNAL, previous)


def test_an_engine_worker_loads_its_model_at_start_and_is_ready_at_once(worker, readyz, caplog):
    engines._loaded.clear()
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = readyz()
    assert response.status_code == 503
    # A state, not a fault: a warning line, no ERROR, no traceback.
    logged = [r for r in caplog.records if r.name == "django.request"]
    assert [(r.levelname, r.exc_info) for r in logged] == [("WARNING", None)]
    assert "no worker with a loaded model" in logged[0].getMessage()

    worker(engine=False)
    worker(engine=True)
    assert engines.loaded_model() == "tiny-chat"
    response = readyz()
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["engine"] == "ok (1 worker(s), tiny-chat)"


def test_workers_beat_from_a_thread_and_a_clean_stop_removes_the_beat(worker):
    worker(engine=True)
    name = f"{heartbeats.ENGINE_PREFIX}{heartbeats.worker_id()}"
    first = Heartbeat.objects.get(name=name).beat_at
    wait_for(lambda: Heartbeat.objects.get(name=name).beat_at > first, timeout=300)
    assert heartbeats.engine_models() == ["tiny-chat"]

    stop = workers.start(engine=False)  # the same process as a control worker
    assert heartbeats.control_alive()
    stop()
    assert not Heartbeat.objects.exists()


def test_the_hand_back_signal_reaches_an_engine_worker(worker, monkeypatch):
    monkeypatch.setattr(execution, "_handing_back", False)
    worker(engine=True)
    os.kill(os.getpid(), workers.HAND_BACK_SIGNAL)
    wait_for(lambda: execution._handing_back, timeout=300)


def test_a_beat_of_a_process_that_is_gone_does_not_count(readyz):
    now = timezone.now()
    for prefix in (heartbeats.CONTROL_PREFIX, heartbeats.ENGINE_PREFIX):
        Heartbeat.objects.create(
            name=f"{prefix}{HOST}:{gone_pid()}", beat_at=now, details={"model": "tiny-chat"}
        )
    response = readyz()
    assert response.status_code == 503
    assert response.json()["checks"] == {
        "database": "ok",
        "control": "no recent heartbeat",
        "engine": "no worker with a loaded model",
    }


def test_another_hosts_beat_counts_while_it_is_fresh(readyz):
    Heartbeat.objects.create(name="control:elsewhere:1", beat_at=timezone.now())
    beat = Heartbeat.objects.create(
        name="engine:elsewhere:2", beat_at=timezone.now(), details={"model": "tiny-chat"}
    )
    assert readyz().status_code == 200
    beat.beat_at = timezone.now() - heartbeats.STALE - timedelta(seconds=1)
    beat.save()
    assert readyz().status_code == 503
    assert heartbeats.STALE.total_seconds() <= 60


def test_a_chunk_is_handed_back_when_its_worker_stops(alice, settings, monkeypatch):
    """Mid-chunk: pending again, lease cleared, a turn queued, answers kept, and
    the requests the engine was running not charged an attempt."""
    settings.CHUNK_SIZE = 100
    batch = ingest(alice, chat_requests(100))
    OrmQ.objects.all().delete()
    monkeypatch.setattr(execution, "_handing_back", False)
    add = execution.ResultWriter.add

    def add_then_stop(writer, result):
        add(writer, result)
        if len(writer.answered) == 20:
            execution.hand_back()

    monkeypatch.setattr(execution.ResultWriter, "add", add_then_stop)
    execution.chunk_run_next()

    chunk = Chunk.objects.get(batch=batch)
    assert (chunk.status, chunk.leased_by, chunk.lease_expires_at) == ("pending", "", None)
    assert OrmQ.objects.filter(key="engine").count() == 1
    requests = Request.objects.filter(batch=batch)
    assert requests.filter(status=Request.Status.COMPLETED).count() == 20
    assert set(requests.filter(status="pending").values_list("attempts", flat=True)) == {0}
    batch.refresh_from_db()
    assert batch.status == Batch.Status.IN_PROGRESS and batch.completed_requests == 20

    # No chunk starts on a worker that stops; its turn goes back to the queue.
    assert execution.chunk_run_next() is None
    assert OrmQ.objects.filter(key="engine").count() == 2
    assert Chunk.objects.get(batch=batch).status == "pending"
