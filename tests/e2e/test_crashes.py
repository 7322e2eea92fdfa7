"""Proof by killing: SIGKILL the workers mid-chunk, and the API mid-upload."""

import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
import openai
import psutil
import pytest
from django.conf import settings
from django.utils import timezone
from django_q.models import Schedule

from batches.apps import RECONCILE_SCHEDULE
from batches.models import Chunk, File
from batches.pipeline.reconcile import reconcile
from tests.factories import CHAT, chat_requests, jsonl, request_line
from tests.helpers import free_port, wait_for

pytestmark = pytest.mark.subprocess


def kill_group(process) -> None:
    """SIGKILL the process and all it started (they share its session), and
    wait until every one of them is gone (on a loaded machine a killed worker
    can take a moment to die)."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()

    def gone() -> bool:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, timeout=120, interval=0.05)


def test_a_batch_completes_exactly_once_after_its_workers_are_killed(
    openai_client, processes, subprocess_env
):
    env = {**subprocess_env, "ENGINE": "test", "CHUNK_SIZE": "50", "CHUNK_LEASE_SECONDS": "2"}
    # The reconciler runs below, when the test says: not also on its schedule.
    Schedule.objects.filter(name=RECONCILE_SCHEDULE).update(
        next_run=timezone.now() + timedelta(hours=1)
    )
    processes.qcluster(env)
    engine = processes.qcluster(env, cluster="engine")
    content = jsonl([request_line(f"c{i}", "[[sleep:0.01]] candidate") for i in range(400)])
    input_file = openai_client.files.create(file=("in.jsonl", content), purpose="batch")
    batch = openai_client.batches.create(
        input_file_id=input_file.id, endpoint=CHAT, completion_window="24h"
    )
    wait_for(
        lambda: (
            openai_client.batches.retrieve(batch.id).request_counts.completed >= 80
            and held_by(engine)
        ),
        timeout=300,
        message=processes.logs,
    )

    kill_group(engine)  # mid-chunk: the cluster and its worker, no goodbye
    before = openai_client.batches.retrieve(batch.id)
    assert before.status == "in_progress" and before.request_counts.completed < 400
    # No wait for the lease: its holder was a process of this host, and is gone.
    done = reconcile()  # what the schedule does every minute
    assert done["chunks_recovered"] == 1 and done["turns_added"] >= 1
    processes.qcluster(env, cluster="engine")

    done = wait_for(
        lambda: (b := openai_client.batches.retrieve(batch.id)).status == "completed" and b,
        timeout=300,
        message=processes.logs,
    )
    output = [
        json.loads(x) for x in openai_client.files.content(done.output_file_id).text.splitlines()
    ]
    errors = (
        [json.loads(x) for x in openai_client.files.content(done.error_file_id).text.splitlines()]
        if done.error_file_id
        else []
    )
    assert Counter(x["custom_id"] for x in output + errors) == Counter(
        {f"c{i}": 1 for i in range(400)}
    )
    assert errors == []
    assert done.request_counts.model_dump() == {"total": 400, "completed": 400, "failed": 0}


def exactly_once(client, batch_id: str, count: int, *, logs) -> None:
    """The batch completes with every custom_id c0..c{count-1} once in its output."""
    done = wait_for(
        lambda: (b := client.batches.retrieve(batch_id)).status == "completed" and b,
        timeout=300,
        message=logs,
    )
    assert done.error_file_id is None
    output = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    assert Counter(x["custom_id"] for x in output) == Counter({f"c{i}": 1 for i in range(count)})
    assert done.request_counts.model_dump() == {"total": count, "completed": count, "failed": 0}


def create_batch(client, count: int, sleep: float):
    content = jsonl([request_line(f"c{i}", f"[[sleep:{sleep}]] candidate") for i in range(count)])
    input_file = client.files.create(file=("in.jsonl", content), purpose="batch")
    return client.batches.create(
        input_file_id=input_file.id, endpoint=CHAT, completion_window="24h"
    )


def held_by(process) -> Chunk | None:
    """A running chunk whose lease holder is one of `process`'s workers."""
    pids = {child.pid for child in psutil.Process(process.pid).children(recursive=True)}
    for chunk in Chunk.objects.filter(status=Chunk.Status.RUNNING):
        if int(chunk.leased_by.rpartition(":")[2]) in pids:
            return chunk
    return None


# A lease far longer than any deadline below: a chunk that runs again in time
# was recognised as its dead worker's, not waited out.
LONG_LEASE = {"ENGINE": "test", "CHUNK_LEASE_SECONDS": "3600"}


def test_a_killed_workers_chunk_runs_again_as_soon_as_an_engine_starts(
    openai_client, processes, subprocess_env
):
    env = {**subprocess_env, **LONG_LEASE, "CHUNK_SIZE": "100"}
    processes.qcluster(env)
    engine = processes.qcluster(env, cluster="engine")
    batch = create_batch(openai_client, 300, 0.01)
    chunk = wait_for(lambda: held_by(engine), timeout=300, message=processes.logs)

    kill_group(engine)
    processes.qcluster(env, cluster="engine")  # a restart, with no old worker alive
    wait_for(
        lambda: Chunk.objects.filter(pk=chunk.pk, status=Chunk.Status.DONE).exists(),
        timeout=300,
        message=processes.logs,
    )
    exactly_once(openai_client, batch.id, 300, logs=processes.logs)


def test_a_live_engine_takes_over_the_chunk_of_one_that_died(
    openai_client, processes, subprocess_env
):
    env = {**subprocess_env, **LONG_LEASE, "CHUNK_SIZE": "50"}
    processes.qcluster(env)
    doomed = processes.qcluster(env, cluster="engine")
    processes.qcluster(env, cluster="engine")
    batch = create_batch(openai_client, 300, 0.04)
    chunk = wait_for(lambda: held_by(doomed), timeout=300, message=processes.logs)

    kill_group(doomed)  # the other engine keeps running and beating
    wait_for(
        lambda: Chunk.objects.filter(pk=chunk.pk, status=Chunk.Status.DONE).exists(),
        timeout=300,
        message=processes.logs,
    )
    exactly_once(openai_client, batch.id, 300, logs=processes.logs)


def test_a_stopped_engine_hands_its_running_chunk_back(openai_client, processes, subprocess_env):
    """SIGTERM mid-chunk (as Ctrl-C under serve, or systemctl stop): the engine
    exits within seconds, its chunk is pending again with no lease, and the
    next engine resumes it without running an answered request twice."""
    env = {**subprocess_env, **LONG_LEASE, "CHUNK_SIZE": "400"}
    processes.qcluster(env)
    engine = processes.qcluster(env, cluster="engine")
    batch = create_batch(openai_client, 400, 0.05)  # one chunk of 20 s
    wait_for(
        lambda: openai_client.batches.retrieve(batch.id).request_counts.completed >= 20,
        timeout=300,
        message=processes.logs,
    )

    started = time.monotonic()
    engine.send_signal(signal.SIGTERM)
    # Without a clean stop the cluster waits forever on its dead sentinel;
    # how fast it stops is measured in bench/recovery.py, not asserted here.
    engine.wait(timeout=300)
    print(f"busy engine stopped in {time.monotonic() - started:.1f} s")
    assert engine.returncode == 0
    chunk = Chunk.objects.get(batch__public_id=batch.id)
    assert (chunk.status, chunk.leased_by, chunk.lease_expires_at) == ("pending", "", None)
    assert openai_client.batches.retrieve(batch.id).request_counts.completed < 400

    processes.qcluster(env, cluster="engine")
    exactly_once(openai_client, batch.id, 400, logs=processes.logs)


def start_api(processes, env, port: int):
    api = processes.start(
        f"api-{port}-{time.monotonic()}",
        [sys.executable, "-m", "gunicorn", "-c", str(settings.BASE_DIR / "deploy/gunicorn/api.py")],
        {**env, "API_BIND": f"127.0.0.1:{port}"},
    )
    wait_for(
        lambda: _answers(f"http://127.0.0.1:{port}/v1/models"), timeout=300, message=processes.logs
    )
    return api


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 401
    except httpx.TransportError:
        return False


def test_an_upload_cut_by_a_killed_server_leaves_nothing_and_the_retry_works(
    processes, subprocess_env, alice_key
):
    port = free_port()
    api = start_api(processes, subprocess_env, port)
    url = f"http://127.0.0.1:{port}/v1/files"
    storage = Path(settings.STORAGES["default"]["OPTIONS"]["location"])
    stored_before = sorted(storage.rglob("*"))
    # Set once a few MiB reached the server, so the kill lands mid-upload.
    sent = threading.Event()

    head = (
        b'--cut\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b'--cut\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\n\r\n'
    )
    block, blocks, tail = b"x" * (256 * 1024), 200, b"\r\n--cut--\r\n"

    def slow_body():
        yield head
        for number in range(blocks):
            yield block
            if number == 8:
                sent.set()
            time.sleep(0.01)
        yield tail

    outcome = {}

    def upload():
        try:
            outcome["response"] = httpx.post(
                url,
                content=slow_body(),
                headers={
                    "Authorization": f"Bearer {alice_key}",
                    "Content-Type": "multipart/form-data; boundary=cut",
                    # As the SDK does: Django's multipart parser needs the length.
                    "Content-Length": str(len(head) + len(block) * blocks + len(tail)),
                },
                timeout=300,
            )
        except httpx.HTTPError as error:
            outcome["error"] = error

    uploader = threading.Thread(target=upload)
    uploader.start()
    assert sent.wait(timeout=300), processes.logs()
    kill_group(api)
    uploader.join(timeout=300)
    assert not uploader.is_alive()

    assert "error" in outcome  # the client saw the connection drop
    assert not File.objects.exists()
    assert sorted(storage.rglob("*")) == stored_before  # nothing half-registered

    start_api(processes, subprocess_env, port)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=alice_key, max_retries=0)
    retried = client.files.create(file=("big.jsonl", chat_requests(50)), purpose="batch")
    assert client.files.content(retried.id).content == chat_requests(50)
    assert list(File.objects.values_list("public_id", flat=True)) == [retried.id]
