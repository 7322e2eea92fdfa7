"""Proof by killing: SIGKILL the workers mid-chunk, and the API mid-upload."""

import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import openai
import pytest
from django.conf import settings

from batches.models import File
from batches.pipeline.reconcile import reconcile
from tests.factories import CHAT, chat_requests, jsonl, request_line
from tests.helpers import free_port, wait_for

pytestmark = pytest.mark.subprocess


def kill_group(process) -> None:
    """SIGKILL the process and all it started (they share its session)."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_a_batch_completes_exactly_once_after_its_workers_are_killed(
    openai_client, processes, subprocess_env
):
    env = {**subprocess_env, "ENGINE": "test", "CHUNK_SIZE": "50", "CHUNK_LEASE_SECONDS": "2"}
    processes.qcluster(env)
    engine = processes.qcluster(env, cluster="engine")
    content = jsonl([request_line(f"c{i}", "[[sleep:0.01]] candidate") for i in range(400)])
    input_file = openai_client.files.create(file=("in.jsonl", content), purpose="batch")
    batch = openai_client.batches.create(
        input_file_id=input_file.id, endpoint=CHAT, completion_window="24h"
    )
    wait_for(
        lambda: openai_client.batches.retrieve(batch.id).request_counts.completed >= 80,
        timeout=60,
        message=processes.logs(),
    )

    kill_group(engine)  # mid-chunk: the cluster and its worker, no goodbye
    before = openai_client.batches.retrieve(batch.id)
    assert before.status == "in_progress" and before.request_counts.completed < 400
    time.sleep(2.5)  # the dead worker's lease lapses
    done = reconcile()  # what the schedule does every minute
    assert done["chunks_recovered"] == 1 and done["turns_added"] >= 1
    processes.qcluster(env, cluster="engine")

    done = wait_for(
        lambda: (b := openai_client.batches.retrieve(batch.id)).status == "completed" and b,
        timeout=90,
        message=processes.logs(),
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


def start_api(processes, env, port: int):
    api = processes.start(
        f"api-{port}-{time.monotonic()}",
        [sys.executable, "-m", "gunicorn", "-c", str(settings.BASE_DIR / "deploy/gunicorn/api.py")],
        {**env, "API_BIND": f"127.0.0.1:{port}"},
    )
    wait_for(
        lambda: _answers(f"http://127.0.0.1:{port}/v1/models"), timeout=30, message=processes.logs()
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
    sent = threading.Event()

    head = (
        b'--cut\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b'--cut\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\n\r\n'
    )
    block, blocks, tail = b"x" * (256 * 1024), 200, b"\r\n--cut--\r\n"

    def slow_body():
        yield head
        for _ in range(blocks):
            yield block
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
                timeout=30,
            )
        except httpx.HTTPError as error:
            outcome["error"] = error

    uploader = threading.Thread(target=upload)
    uploader.start()
    sent.wait(timeout=10)
    time.sleep(0.3)
    kill_group(api)
    uploader.join(timeout=30)

    assert "error" in outcome  # the client saw the connection drop
    assert not File.objects.exists()
    assert sorted(storage.rglob("*")) == stored_before  # nothing half-registered

    start_api(processes, subprocess_env, port)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=alice_key, max_retries=0)
    retried = client.files.create(file=("big.jsonl", chat_requests(50)), purpose="batch")
    assert client.files.content(retried.id).content == chat_requests(50)
    assert list(File.objects.values_list("public_id", flat=True)) == [retried.id]
