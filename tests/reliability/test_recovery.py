"""Leases, the reconciler, expiry and retries, with the deterministic engine."""

import json
import os
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from batches import engines, services
from batches.models import Batch, Chunk, Request
from batches.pipeline.execution import chunk_run, chunk_run_next
from batches.pipeline.finalize import batch_finalize
from batches.pipeline.reconcile import reconcile
from tests.factories import chat_requests, ingest, jsonl, request_line
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def lines(file) -> list[dict]:
    if file is None:
        return []
    return [json.loads(x) for x in Path(file.content.path).read_text().splitlines()]


def finish(batch: Batch) -> Batch:
    while chunk_run_next() is not None:
        pass
    batch.refresh_from_db()
    if batch.finalize_requested_at and not batch.is_terminal:
        batch_finalize(batch_id=batch.pk)
        batch.refresh_from_db()
    return batch


def test_the_reconciler_is_scheduled_every_minute():
    schedule = Schedule.objects.get(name="batchserver: reconcile")
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (
        "batches.tasks.reconcile",
        Schedule.MINUTES,
        1,
    )
    assert schedule.repeats == -1


def test_a_lapsed_chunk_runs_again_without_rerunning_answered_requests(alice, settings):
    settings.CHUNK_SIZE = 10
    batch = ingest(alice, chat_requests(10))
    chunk = Chunk.objects.get(batch=batch)
    done = list(Request.objects.filter(batch=batch).order_by("line")[:4])
    Request.objects.filter(pk__in=[r.pk for r in done]).update(
        status=Request.Status.COMPLETED, status_code=200, response={"kept": True}
    )
    Batch.objects.filter(pk=batch.pk).update(completed_requests=4)
    # A worker claimed the chunk, answered four requests, and died.
    Chunk.objects.filter(pk=chunk.pk).update(
        status=Chunk.Status.RUNNING,
        leased_by="dead-host:123",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    OrmQ.objects.all().delete()

    assert reconcile()["chunks_recovered"] == 1
    assert OrmQ.objects.filter(key="engine").count() >= 1  # a turn for the engine cluster
    batch = finish(batch)

    assert batch.status == Batch.Status.COMPLETED
    assert (batch.completed_requests, batch.failed_requests) == (10, 0)
    output = lines(batch.output_file)
    assert [x["custom_id"] for x in output] == [f"req-{i}" for i in range(10)]
    kept = [x for x in output if x["response"]["body"] == {"kept": True}]
    assert len(kept) == 4  # answered before the crash: not run again


def test_a_running_chunk_keeps_its_lease(alice, settings):
    settings.CHUNK_LEASE_SECONDS = 60
    batch = ingest(alice, chat_requests(3))
    chunk = Chunk.objects.get(batch=batch)
    chunk_run(chunk_id=chunk.pk)
    chunk.refresh_from_db()
    assert chunk.status == Chunk.Status.DONE and chunk.attempts == 1
    assert reconcile()["chunks_recovered"] == 0


def test_missing_finalization_and_lost_turns_are_put_right(alice, settings):
    settings.CHUNK_SIZE = 2
    batch = ingest(alice, chat_requests(4))
    OrmQ.objects.all().delete()  # the turns were lost with the broker
    assert reconcile()["turns_added"] == 2
    assert OrmQ.objects.filter(key="engine").count() == 2
    assert reconcile()["turns_added"] == 0  # not twice
    for chunk in Chunk.objects.filter(batch=batch):
        Chunk.objects.filter(pk=chunk.pk).update(status=Chunk.Status.DONE)
    assert reconcile()["finalizations"] == 1
    batch.refresh_from_db()
    assert batch.status == Batch.Status.FINALIZING


def test_stale_validation_and_finalization_are_queued_again_once(alice, settings):
    settings.RECONCILE_STALE_SECONDS = 60
    file = services.file_create(
        owner=alice, uploaded=SimpleUploadedFile("in.jsonl", chat_requests(2)), purpose="batch"
    )
    batch = services.batch_create(
        owner=alice,
        input_file_id=file.public_id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
    )
    OrmQ.objects.all().delete()
    Batch.objects.filter(pk=batch.pk).update(
        validation_queued_at=timezone.now() - timedelta(hours=1)
    )
    assert reconcile()["restarted"] == 1
    assert reconcile()["restarted"] == 0
    assert OrmQ.objects.filter(key="batchserver").count() == 1


def test_a_batch_past_its_window_expires_keeping_what_completed(alice, settings):
    settings.CHUNK_SIZE = 100
    content = jsonl([request_line(f"c{i}", "[[sleep:0.03]] hi") for i in range(200)])
    batch = ingest(alice, content)
    first = Chunk.objects.filter(batch=batch).order_by("index").first()

    def worker():
        try:
            chunk_run(chunk_id=first.pk)
        finally:
            connections.close_all()

    runner = threading.Thread(target=worker)
    runner.start()
    wait_for(
        lambda: Request.objects.filter(batch=batch, status="completed").exists(),
        timeout=300,
        interval=0.05,
        message="the chunk's first result",
    )
    Batch.objects.filter(pk=batch.pk).update(expires_at=timezone.now())
    assert reconcile()["expired"] == 1
    runner.join(timeout=300)
    assert not runner.is_alive()
    batch.refresh_from_db()
    assert batch.status == Batch.Status.FINALIZING and batch.ending == "expired"
    assert set(Chunk.objects.filter(batch=batch).values_list("status", flat=True)) == {"cancelled"}
    batch_finalize(batch_id=batch.pk)
    batch.refresh_from_db()

    assert batch.status == Batch.Status.EXPIRED and batch.expired_at is not None
    output, errors = lines(batch.output_file), lines(batch.error_file)
    assert 0 < len(output) < 100
    assert sorted(x["custom_id"] for x in output + errors) == sorted(f"c{i}" for i in range(200))
    assert {e["error"]["code"] for e in errors} == {"batch_expired"}
    assert (batch.completed_requests, batch.failed_requests) == (len(output), len(errors))


def test_a_validating_batch_past_its_window_expires(alice, settings):
    settings.COMPLETION_WINDOW_SECONDS = 0
    file = services.file_create(
        owner=alice, uploaded=SimpleUploadedFile("a", chat_requests(1)), purpose="batch"
    )
    batch = services.batch_create(
        owner=alice,
        input_file_id=file.public_id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
    )
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.VALIDATING)
    assert reconcile()["expired"] == 1
    batch.refresh_from_db()
    assert batch.status == Batch.Status.EXPIRED


def test_transient_failures_are_retried_then_reported(alice, settings):
    settings.MAX_REQUEST_ATTEMPTS = 3
    engines._loaded.clear()  # a fresh test engine: its flaky counters start at zero
    batch = finish(
        ingest(
            alice,
            jsonl(
                [
                    request_line("ok"),
                    request_line("flaky-twice", "[[flaky:2]] hi"),
                    request_line("always-500", "[[fail:500]] hi"),
                    request_line("bad-request", "hi", temperature="hot"),
                ]
            ),
        )
    )
    assert batch.status == Batch.Status.COMPLETED
    rows = {r.custom_id: r for r in Request.objects.filter(batch=batch)}
    assert (rows["flaky-twice"].status, rows["flaky-twice"].attempts) == ("completed", 3)
    assert (rows["always-500"].status, rows["always-500"].attempts) == ("failed", 3)
    assert (rows["bad-request"].status, rows["bad-request"].attempts) == ("failed", 1)
    errors = {e["custom_id"]: e for e in lines(batch.error_file)}
    assert errors["always-500"]["response"]["status_code"] == 500
    assert errors["bad-request"]["response"]["status_code"] == 400
    assert (batch.completed_requests, batch.failed_requests) == (2, 2)


def test_a_request_whose_worker_keeps_dying_is_given_up(alice, settings):
    settings.MAX_REQUEST_ATTEMPTS = 3
    batch = ingest(alice, chat_requests(2))
    poison = Request.objects.filter(batch=batch).order_by("line").first()
    Request.objects.filter(pk=poison.pk).update(attempts=3)  # three workers died running it
    batch = finish(batch)
    (error,) = lines(batch.error_file)
    assert error["custom_id"] == poison.custom_id
    assert error["response"]["status_code"] == 500
    assert "Gave up after 3 attempts" in error["response"]["body"]["error"]["message"]
    assert (batch.completed_requests, batch.failed_requests) == (1, 1)


def test_stale_upload_leftovers_are_removed(settings):
    old = Path(settings.FILE_UPLOAD_TEMP_DIR) / "tmpabc.upload.jsonl"
    fresh = Path(settings.FILE_UPLOAD_TEMP_DIR) / "tmpdef.upload.jsonl"
    old.write_bytes(b"half")
    fresh.write_bytes(b"being written")
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    assert reconcile()["temp_files_removed"] == 1
    assert not old.exists() and fresh.exists()
    fresh.unlink()


class WorkerKilled(BaseException):
    """Stands in for SIGKILL: nothing in the worker catches it."""


def test_a_worker_that_keeps_dying_charges_only_the_requests_its_engine_held(
    alice, settings, monkeypatch
):
    from batches.engines.testing import DeterministicTestEngine

    settings.MAX_REQUEST_ATTEMPTS = 3
    settings.CHUNK_SIZE = 40
    monkeypatch.setattr(DeterministicTestEngine, "window", 4)
    batch = ingest(alice, chat_requests(40))
    chunk = Chunk.objects.get(batch=batch)
    original = DeterministicTestEngine._answer
    deaths = []

    def die_at_the_first_answer(engine, request):
        if len(deaths) < 3:
            deaths.append(request.key)
            raise WorkerKilled
        return original(engine, request)

    monkeypatch.setattr(DeterministicTestEngine, "_answer", die_at_the_first_answer)
    for _ in range(3):
        with pytest.raises(WorkerKilled):
            chunk_run_next()  # the engine admitted its first window of 4, then the worker died
        Chunk.objects.filter(pk=chunk.pk).update(
            leased_by="dead-host:123", lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
        assert reconcile()["chunks_recovered"] == 1

    batch = finish(batch)
    assert batch.status == Batch.Status.COMPLETED
    assert (batch.completed_requests, batch.failed_requests) == (36, 4)
    errors = lines(batch.error_file)
    assert [e["custom_id"] for e in errors] == [f"req-{i}" for i in range(4)]
    assert all(
        "Gave up after 3 attempts" in e["response"]["body"]["error"]["message"] for e in errors
    )
    attempts = dict(Request.objects.filter(batch=batch).values_list("custom_id", "attempts"))
    assert attempts == {f"req-{i}": 3 if i < 4 else 1 for i in range(40)}
