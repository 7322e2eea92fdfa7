"""The `openai` engine against a real `vllm serve` of the tiny model on 127.0.0.1."""

import os
import subprocess
import sys

import httpx
import pytest
from openai.types.chat import ChatCompletion

from batches.engines.base import EngineRequest
from batches.engines.openai import OpenAIEngine
from batches.engines.params import CHAT, COMPLETIONS
from tests.helpers import free_port, start_process_group, stop_process_group, wait_for

pytestmark = [pytest.mark.engine, pytest.mark.subprocess]


@pytest.fixture(scope="module")
def vllm_server(tiny_model, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("vllm") / "serve.log"
    command = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(tiny_model),
        "--served-model-name",
        "tiny-chat",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--distributed-executor-backend",
        "uni",
        "--enforce-eager",
        "--kv-cache-memory-bytes",
        str(256 * 2**20),
    ]
    with open(log, "wb") as output:
        server = start_process_group(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "VLLM_HOST_IP": "127.0.0.1"},
        )
    url = f"http://127.0.0.1:{port}/v1"

    def answering() -> bool:
        if server.poll() is not None:
            pytest.fail(f"vllm serve exited ({server.returncode}):\n{log.read_text()[-3000:]}")
        try:
            return httpx.get(f"{url}/models", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        # It starts in ~30 s on an idle machine; a loaded two-core one needs far more.
        wait_for(answering, timeout=600, interval=0.5, message=f"vllm serve at {url}")
        yield url
    finally:
        # vllm serve spawns an engine-core process: stop the whole group.
        stop_process_group(server)


def engine(*urls, concurrency=8) -> OpenAIEngine:
    return OpenAIEngine(
        "tiny-chat", urls=list(urls), api_key="", concurrency=concurrency, timeout=60
    )


def run(target, requests) -> dict:
    return {r.key: r for r in target.run(requests, should_stop=lambda: False)}


def chat(i, content="Evaluate this candidate.", **fields) -> EngineRequest:
    body = {"model": "tiny-chat", "messages": [{"role": "user", "content": content}], **fields}
    return EngineRequest(key=i, endpoint=CHAT, body=body)


def test_it_runs_chat_and_completions_on_the_server(vllm_server):
    results = run(
        engine(vllm_server),
        [
            chat(0, max_tokens=6, ignore_eos=True),
            EngineRequest(
                key=1,
                endpoint=COMPLETIONS,
                body={
                    "model": "tiny-chat",
                    "prompt": "Once upon",
                    "max_tokens": 3,
                    "ignore_eos": True,
                },
            ),
        ],
    )
    first = ChatCompletion.model_validate(results[0].body)
    assert first.usage.completion_tokens == 6 == results[0].completion_tokens
    assert results[0].prompt_tokens > 0 and results[0].status_code == 200
    assert results[1].body["object"] == "text_completion" and results[1].completion_tokens == 3


def test_many_requests_run_with_bounded_concurrency(vllm_server):
    results = run(engine(vllm_server, concurrency=4), [chat(i, max_tokens=4) for i in range(40)])
    assert sorted(results) == list(range(40))
    assert all(r.status_code == 200 for r in results.values())


def test_server_errors_map_to_request_errors(vllm_server):
    results = run(
        engine(vllm_server),
        [
            chat(0, "word " * 5000, max_tokens=3),  # longer than the model's context
            EngineRequest(
                key=1,
                endpoint=CHAT,
                body={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
            ),
            chat(2, temperature="hot"),  # refused before it is sent, as with vLLM in-process
        ],
    )
    assert results[0].status_code == 400 and not results[0].transient
    assert results[1].status_code == 404 and results[1].body["error"]["code"] == "404"
    assert results[2].status_code == 400 and results[2].body["error"]["param"] == "temperature"


def test_an_unreachable_server_is_a_transient_failure():
    results = run(engine(f"http://127.0.0.1:{free_port()}/v1"), [chat(0)])
    assert results[0].status_code == 503 and results[0].transient


def test_requests_go_round_robin_to_the_servers(vllm_server):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    results = run(
        engine(vllm_server, dead, concurrency=1), [chat(i, max_tokens=2) for i in range(4)]
    )
    assert sorted(r.status_code for r in results.values()) == [200, 200, 503, 503]


@pytest.mark.django_db(transaction=True)  # the result writer has its own connection
def test_a_batch_runs_through_the_openai_engine(vllm_server, alice, settings):
    from batches import engines
    from batches.pipeline.execution import chunk_run_next
    from batches.pipeline.finalize import batch_finalize
    from tests.factories import chat_requests, ingest

    settings.ENGINE = "openai"
    settings.OPENAI_ENGINE_URLS = [vllm_server]
    engines._loaded.clear()
    try:
        batch = ingest(alice, chat_requests(20, max_tokens=4))
        while chunk_run_next() is not None:
            pass
        batch_finalize(batch_id=batch.pk)
        batch.refresh_from_db()
    finally:
        engines._loaded.clear()
    assert batch.status == "completed"
    assert (batch.completed_requests, batch.failed_requests) == (20, 0)
    assert batch.output_tokens == 20 * 4
