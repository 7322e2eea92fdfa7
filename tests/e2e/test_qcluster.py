"""End to end: the official SDK against a live server, real qclusters, real vLLM."""

import json
from collections import Counter

import pytest
from openai.types.chat import ChatCompletion

from tests.factories import CHAT, chat_requests
from tests.helpers import wait_for

pytestmark = [pytest.mark.engine, pytest.mark.subprocess]


def test_a_batch_runs_on_vllm_from_upload_to_download(
    openai_client, processes, subprocess_env, tiny_model, settings
):
    env = {**subprocess_env, "ENGINE": "vllm", "CHUNK_SIZE": "64"}
    processes.qcluster(env)
    processes.qcluster(env, cluster="engine")

    content = chat_requests(300, max_tokens=16)
    input_file = openai_client.files.create(file=("candidates.jsonl", content), purpose="batch")
    batch = openai_client.batches.create(
        input_file_id=input_file.id,
        endpoint=CHAT,
        completion_window="24h",
        metadata={"source": "e2e"},
    )

    progress = []

    def finished():
        current = openai_client.batches.retrieve(batch.id)
        progress.append((current.status, current.request_counts.completed))
        return current if current.status in {"completed", "failed"} else None

    batch = wait_for(finished, timeout=180, interval=0.3, message=processes.logs)
    assert batch.status == "completed", batch.errors
    assert batch.request_counts.model_dump() == {"total": 300, "completed": 300, "failed": 0}
    assert batch.usage.output_tokens > 0
    assert any(status == "in_progress" for status, _ in progress)

    output = openai_client.files.content(batch.output_file_id).text.splitlines()
    lines = [json.loads(line) for line in output]
    counts = Counter(line["custom_id"] for line in lines)
    assert counts == Counter({f"req-{i}": 1 for i in range(300)})
    for line in lines:
        assert line["error"] is None and line["response"]["status_code"] == 200
        completion = ChatCompletion.model_validate(line["response"]["body"])
        assert completion.model == "tiny-chat"
        assert 0 < completion.usage.completion_tokens <= 16
        assert completion.choices[0].message.role == "assistant"
    assert batch.error_file_id is None
    # Five chunks ran on one engine worker, which loaded the model once.
    assert processes.logs().count("Loaded tiny-chat from") == 1
