"""Cancelling through the SDK while real qclusters run the batch."""

import json
from collections import Counter

import pytest

from tests.factories import CHAT, jsonl, request_line
from tests.helpers import wait_for

pytestmark = pytest.mark.subprocess


def test_cancel_mid_batch_keeps_completed_lines_and_cancels_the_rest(
    openai_client, processes, subprocess_env
):
    env = {**subprocess_env, "ENGINE": "test", "CHUNK_SIZE": "50"}
    processes.qcluster(env)
    processes.qcluster(env, cluster="engine")

    content = jsonl([request_line(f"c{i}", "[[sleep:0.01]] candidate") for i in range(600)])
    input_file = openai_client.files.create(file=("in.jsonl", content), purpose="batch")
    batch = openai_client.batches.create(
        input_file_id=input_file.id, endpoint=CHAT, completion_window="24h"
    )
    wait_for(
        lambda: openai_client.batches.retrieve(batch.id).request_counts.completed >= 60,
        timeout=300,
        message=processes.logs,
    )

    cancelling = openai_client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling"
    done = wait_for(
        lambda: (b := openai_client.batches.retrieve(batch.id)).status == "cancelled" and b,
        timeout=300,
        message=processes.logs,
    )

    output = [
        json.loads(x) for x in openai_client.files.content(done.output_file_id).text.splitlines()
    ]
    errors = [
        json.loads(x) for x in openai_client.files.content(done.error_file_id).text.splitlines()
    ]
    assert 60 <= len(output) < 600
    assert Counter(x["custom_id"] for x in output + errors) == Counter(
        {f"c{i}": 1 for i in range(600)}
    )
    assert {e["error"]["code"] for e in errors} == {"batch_cancelled"}
    assert done.request_counts.model_dump() == {
        "total": 600,
        "completed": len(output),
        "failed": len(errors),
    }
    assert done.cancelled_at >= done.cancelling_at
