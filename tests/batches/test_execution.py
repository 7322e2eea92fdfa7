"""Chunks run on the deterministic test engine; the writer thread needs committed data."""

import json
import threading
from pathlib import Path

import pytest
from django.db import connections
from openai.types import Completion
from openai.types.chat import ChatCompletion

from batches import services
from batches.models import Batch, Chunk, File, Request
from batches.pipeline.execution import LeaseLost, ResultWriter, chunk_run, chunk_run_next
from batches.pipeline.finalize import batch_finalize
from tests.factories import COMPLETIONS, chat_requests, ingest, jsonl, request_line
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def run_all(batch: Batch) -> Batch:
    for chunk in Chunk.objects.filter(batch=batch).order_by("index"):
        chunk_run(chunk_id=chunk.pk)
    batch_finalize(batch_id=batch.pk)
    batch.refresh_from_db()
    return batch


def read_jsonl(file: File | None) -> list[dict]:
    if file is None:
        return []
    return [json.loads(line) for line in Path(file.content.path).read_text().splitlines()]


def test_chunks_record_each_result_and_finalize_writes_openai_lines(alice, settings):
    settings.CHUNK_SIZE = 3
    batch = ingest(alice, chat_requests(7, max_tokens=2))
    chunks = list(Chunk.objects.filter(batch=batch).order_by("index"))

    chunk_run(chunk_id=chunks[0].pk)
    batch.refresh_from_db()
    assert (batch.status, batch.completed_requests, batch.failed_requests) == ("in_progress", 3, 0)
    assert batch.output_tokens == 3 * 2  # "echo: evaluate ..." cut at max_tokens

    for chunk in chunks[1:]:
        chunk_run(chunk_id=chunk.pk)
    batch.refresh_from_db()
    assert batch.status == Batch.Status.FINALIZING
    assert batch.finalizing_at is not None
    assert set(Chunk.objects.values_list("status", flat=True)) == {Chunk.Status.DONE}

    batch_finalize(batch_id=batch.pk)
    batch.refresh_from_db()
    assert batch.status == Batch.Status.COMPLETED and batch.completed_at is not None
    assert batch.error_file is None
    lines = read_jsonl(batch.output_file)
    assert [line["custom_id"] for line in lines] == [f"req-{i}" for i in range(7)]
    first = lines[0]
    assert set(first) == {"id", "custom_id", "response", "error"}
    assert first["id"].startswith("batch_req_") and first["error"] is None
    assert first["response"]["status_code"] == 200
    assert first["response"]["request_id"]
    completion = ChatCompletion.model_validate(first["response"]["body"])
    assert completion.choices[0].message.content == "echo: evaluate"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 2
    assert len({line["id"] for line in lines}) == 7
    request = Request.objects.get(custom_id="req-0")
    assert (request.status, request.status_code, request.attempts) == ("completed", 200, 1)
    assert request.finished_at is not None


def test_completions_endpoint_returns_text_completions(alice):
    line = {
        "custom_id": "c1",
        "method": "POST",
        "url": COMPLETIONS,
        "body": {"model": "tiny-chat", "prompt": "Once upon a time", "n": 2},
    }
    batch = run_all(ingest(alice, jsonl([line]), endpoint=COMPLETIONS))
    body = read_jsonl(batch.output_file)[0]["response"]["body"]
    completion = Completion.model_validate(body)
    assert completion.object == "text_completion"
    assert [c.index for c in completion.choices] == [0, 1]


def test_a_failing_request_fails_alone(alice):
    batch = run_all(
        ingest(
            alice,
            jsonl(
                [
                    request_line("a"),
                    request_line("bad-param", temperature="hot"),
                    request_line("engine-error", "[[fail:500]]"),
                    request_line("b"),
                ]
            ),
        )
    )
    assert batch.status == Batch.Status.COMPLETED
    assert (batch.completed_requests, batch.failed_requests, batch.total_requests) == (2, 2, 4)
    assert [line["custom_id"] for line in read_jsonl(batch.output_file)] == ["a", "b"]
    errors = {line["custom_id"]: line for line in read_jsonl(batch.error_file)}
    assert errors["bad-param"]["response"]["status_code"] == 400
    assert errors["bad-param"]["response"]["body"]["error"]["param"] == "temperature"
    assert errors["engine-error"]["response"]["status_code"] == 500
    assert errors["engine-error"]["error"] is None


def test_a_running_chunk_is_not_taken_by_another_worker(alice):
    batch = ingest(alice, chat_requests(2))
    chunk = Chunk.objects.get(batch=batch)
    Chunk.objects.filter(pk=chunk.pk).update(status=Chunk.Status.RUNNING, leased_by="other:1")
    assert chunk_run_next() is None
    chunk_run(chunk_id=chunk.pk)
    assert Request.objects.filter(status=Request.Status.PENDING).count() == 2
    Chunk.objects.filter(pk=chunk.pk).update(status=Chunk.Status.PENDING, leased_by="")
    assert chunk_run_next() == chunk
    assert not Request.objects.filter(status=Request.Status.PENDING).exists()


def test_a_worker_that_lost_its_lease_stops_writing(alice, monkeypatch):
    batch = ingest(alice, chat_requests(3))
    chunk = Chunk.objects.get(batch=batch)
    monkeypatch.setattr("batches.pipeline.execution.FLUSH_MAX_RESULTS", 1)
    original = ResultWriter._write

    def steal_after_first_write(writer, results, attempts):
        status = original(writer, results, attempts)
        Chunk.objects.filter(pk=chunk.pk).update(leased_by="another-worker")
        return status

    monkeypatch.setattr(ResultWriter, "_write", steal_after_first_write)
    with pytest.raises(LeaseLost):
        chunk_run(chunk_id=chunk.pk)
    batch.refresh_from_db()
    assert batch.completed_requests == Request.objects.filter(status="completed").count() == 1
    assert Chunk.objects.get().status == Chunk.Status.RUNNING


def test_cancel_stops_the_running_chunk_and_accounts_for_every_line(alice, settings):
    settings.CHUNK_SIZE = 100
    batch = ingest(
        alice,
        chat_requests(300, model="tiny-chat").replace(b"evaluate", b"[[sleep:0.03]] evaluate"),
    )
    first, *others = Chunk.objects.filter(batch=batch).order_by("index")

    def run_in_a_worker_thread():
        try:
            chunk_run(chunk_id=first.pk)
        finally:
            connections.close_all()  # this thread's own connection

    runner = threading.Thread(target=run_in_a_worker_thread)
    runner.start()
    wait_for(
        lambda: Request.objects.filter(batch=batch, status="completed").exists(),
        timeout=300,
        interval=0.05,
        message="the chunk's first result",
    )

    services.batch_cancel(batch=batch)
    runner.join(timeout=300)
    assert not runner.is_alive()

    batch.refresh_from_db()
    assert batch.status == Batch.Status.CANCELLING
    assert batch.finalize_requested_at is not None
    assert Chunk.objects.get(pk=first.pk).status == Chunk.Status.CANCELLED
    assert {c.status for c in Chunk.objects.filter(pk__in=[c.pk for c in others])} == {"cancelled"}
    batch_finalize(batch_id=batch.pk)
    batch.refresh_from_db()

    assert batch.status == Batch.Status.CANCELLED and batch.cancelled_at is not None
    completed = read_jsonl(batch.output_file)
    errors = read_jsonl(batch.error_file)
    assert 0 < len(completed) < 100
    assert sorted(line["custom_id"] for line in completed + errors) == sorted(
        f"req-{i}" for i in range(300)
    )
    assert {line["error"]["code"] for line in errors} == {"batch_cancelled"}
    assert all(line["response"] is None for line in errors)
    assert (batch.completed_requests, batch.failed_requests) == (len(completed), len(errors))
    assert Request.objects.filter(status=Request.Status.CANCELLED).count() == len(errors)


def test_finalizing_twice_writes_the_files_once(alice):
    batch = run_all(ingest(alice, chat_requests(2)))
    output_file = batch.output_file
    batch_finalize(batch_id=batch.pk)
    batch.refresh_from_db()
    assert batch.output_file == output_file
    assert File.objects.filter(purpose=File.Purpose.BATCH_OUTPUT).count() == 1


def test_a_response_with_a_nul_character_is_stored(alice, monkeypatch):
    """Models emit NUL now and then; PostgreSQL refuses it in JSON."""
    from batches.engines.testing import DeterministicTestEngine

    original = DeterministicTestEngine._answer

    def answer_with_nul(engine, request):
        result = original(engine, request)
        result.body["choices"][0]["message"]["content"] = "before\x00after"
        return result

    monkeypatch.setattr(DeterministicTestEngine, "_answer", answer_with_nul)
    batch = run_all(ingest(alice, chat_requests(2)))
    assert (batch.status, batch.completed_requests) == (Batch.Status.COMPLETED, 2)
    (first, _) = read_jsonl(batch.output_file)
    assert first["response"]["body"]["choices"][0]["message"]["content"] == "before\ufffdafter"


def test_an_engine_that_raises_fails_only_the_request_that_fails_alone(alice, settings, caplog):
    """The double raises for the whole window holding `[[raise]]`, as a vLLM step fails
    for every sequence in it; the chunk goes on, and only the culprit fails, at once."""
    settings.CHUNK_SIZE = 20
    poisoned = 5
    batch = ingest(
        alice,
        jsonl(
            [
                request_line(f"r{i}", "[[raise]] hi" if i == poisoned else f"candidate {i}")
                for i in range(20)
            ]
        ),
    )
    chunk = Chunk.objects.get(batch=batch)

    chunk_run(chunk_id=chunk.pk)  # returns: an engine error is not a dead worker

    assert Chunk.objects.get(pk=chunk.pk).status == Chunk.Status.DONE
    batch_finalize(batch_id=batch.pk)
    batch.refresh_from_db()
    assert batch.status == Batch.Status.COMPLETED
    assert (batch.completed_requests, batch.failed_requests) == (19, 1)
    (error,) = read_jsonl(batch.error_file)
    assert error["custom_id"] == f"r{poisoned}" and error["error"] is None
    assert error["response"]["status_code"] == 500
    assert error["response"]["body"]["error"] == {
        "message": "RuntimeError: Provoked engine failure.",
        "type": "server_error",
        "param": None,
        "code": "engine_error",
    }
    assert [line["custom_id"] for line in read_jsonl(batch.output_file)] == [
        f"r{i}" for i in range(20) if i != poisoned
    ]
    # One attempt each: the window's run and its single reruns are one attempt.
    assert set(Request.objects.values_list("attempts", flat=True)) == {1}
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


def test_a_dead_engine_is_unloaded_and_charges_only_what_it_held(alice, settings, monkeypatch):
    from batches import engines
    from batches.engines.base import EngineDead
    from batches.engines.testing import DeterministicTestEngine

    settings.CHUNK_SIZE = 20
    monkeypatch.setattr(DeterministicTestEngine, "window", 4)
    batch = ingest(alice, chat_requests(20))
    original = DeterministicTestEngine._answer

    answered: list[int] = []

    def die_at_the_third_answer(engine, request):
        if len(answered) == 2:
            raise EngineDead("EngineCore encountered an issue.")
        answered.append(request.key)
        return original(engine, request)

    monkeypatch.setattr(DeterministicTestEngine, "_answer", die_at_the_third_answer)
    with pytest.raises(EngineDead):
        chunk_run(chunk_id=Chunk.objects.get(batch=batch).pk)
    assert engines.loaded_model() is None  # the next chunk loads a fresh engine
    attempts = dict(Request.objects.order_by("line").values_list("custom_id", "attempts"))
    assert attempts == {f"req-{i}": 1 if i < 4 else 0 for i in range(20)}
